"""Two rollouts of the same SidecarSet at once (a user double-clicking an AWX job template).

No lock: both runs plan the same Kruise order from the pods, every write carries the pod's resourceVersion and is
re-planned from the stored pod on a conflict, so the second writer of a pod finds it already upgraded and waits or
resets (docs/design.md, "Concurrent runs"). Must hold: both runs succeed, every pod converged with exactly one
real twin, no moment with zero serving twins, no foreign annotation lost, and at most maxUnavailable pods not
Ready at once (the runs work on the same batches, not on twice as many pods).

``MESHOPS_CHAOS_TWICE_TRIALS`` (default 1; ``make chaos``: 5) repeats it with a new version each time.
"""

import random
import re
import subprocess
import time

import pytest

from chaoskit import ForeignWriter, ServingWatch, env_int, real_twins, report
from test_rollout import (
    ANSIBLE_BIN, EMPTY, PLAYBOOKS, ROOT, ansible_env, images, pods_of, run_playbook, sidecarset_doc, total_changed, write_yaml,
)
from test_rollout_kill import PODS, check_converged, make_apps


def recap_changed(stdout):
    return total_changed(type("Completed", (), {"stdout": stdout}))


@pytest.mark.slow
def test_two_rollouts_at_once_converge(nodesim, namespace, tmp_path):
    kube = nodesim
    trials = env_int("MESHOPS_CHAOS_TWICE_TRIALS", 1)
    rand = random.Random(env_int("MESHOPS_CHAOS_SEED", 17))
    before = make_apps(kube, namespace)
    started = time.monotonic()
    figures = {"fault": "two-rollouts-at-once", "pods": PODS, "trials": 0, "converged": 0, "both_succeeded": 0,
               "changed_by_both": 0}
    with ServingWatch(kube, namespace) as watcher, ForeignWriter(kube, namespace, sorted(before)) as foreign:
        for trial in range(trials):
            version = 2 + trial
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc("mesh/proxy:v%d" % version, max_unavailable="50%"))
            cmd = [str(ANSIBLE_BIN / "ansible-playbook"), str(PLAYBOOKS / "rollout.yml"), "-e", "rollout_sidecarset=" + path,
                   "-e", "rollout_namespace=" + namespace, "-e", "rollout_timeout=120"]
            runs = []
            for index in range(2):
                if index:
                    time.sleep(rand.uniform(0.0, 2.0))  # the second click
                runs.append(subprocess.Popen(cmd, cwd=str(ROOT), env=ansible_env(kube), stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True))
            outputs = [run.communicate(timeout=400)[0] for run in runs]
            figures["trials"] += 1
            codes = [run.returncode for run in runs]
            assert codes == [0, 0], "\n\n".join(out[-3000:] for out in outputs)
            figures["both_succeeded"] += 1
            figures["changed_by_both"] += 1 if all(recap_changed(out) for out in outputs) else 0
            check_converged(kube, namespace, before, version)
            figures["converged"] += 1
        again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace})
        assert again.returncode == 0 and total_changed(again) == 0, again.stdout[-3000:]
    lost = foreign.lost()
    figures.update(zero_serving_moments=len(watcher.zero_serving), foreign_annotations_lost=len(lost),
                   foreign_writes=foreign.count, max_not_ready=watcher.max_not_ready, max_unavailable=PODS // 2,
                   seconds=round(time.monotonic() - started, 1))
    report(figures)
    assert not watcher.zero_serving, watcher.zero_serving[:10]
    assert not lost, lost
    assert watcher.max_not_ready <= PODS // 2, figures


@pytest.mark.slow
def test_two_rollouts_of_different_versions_at_once_leave_no_pod_corrupted(nodesim, namespace, tmp_path):
    """Two operators at once, v2 and v3 of the same SidecarSet: each pod's last writer wins (no lock, see
    docs/design.md); no pod is corrupted (exactly one real twin, v2 or v3, serving throughout), and a re-run of
    v3 brings every pod to v3."""
    kube = nodesim
    before = make_apps(kube, namespace)
    runs = []
    with ServingWatch(kube, namespace) as watcher:
        for version in (2, 3):
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc("mesh/proxy:v%d" % version, max_unavailable="50%"))
            cmd = [str(ANSIBLE_BIN / "ansible-playbook"), str(PLAYBOOKS / "rollout.yml"), "-e", "rollout_sidecarset=" + path,
                   "-e", "rollout_namespace=" + namespace, "-e", "rollout_timeout=120"]
            runs.append(subprocess.Popen(cmd, cwd=str(ROOT), env=ansible_env(kube), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))
            time.sleep(1.0)
        outputs = [run.communicate(timeout=400)[0] for run in runs]
        for out, run in zip(outputs, runs):
            assert run.returncode == 0 or ("Traceback" not in out and "fatal:" in out), out[-3000:]
        mixed = {}
        for pod in pods_of(kube, namespace):
            (real,) = [images(pod)[t] for t in real_twins(pod, "proxy", EMPTY)]
            assert real in ("mesh/proxy:v2", "mesh/proxy:v3"), images(pod)
            mixed[real] = mixed.get(real, 0) + 1
        again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace})
        assert again.returncode == 0, again.stdout[-3000:]
        check_converged(kube, namespace, before, 3)
    failures = [(re.findall(r'"msg": "(.*)"', out) or [""])[-1][:300] for out, run in zip(outputs, runs) if run.returncode]
    report({"fault": "two-versions-at-once", "pods": PODS, "return_codes": [r.returncode for r in runs], "after_both": mixed,
            "failures": failures,
            "zero_serving_moments": len(watcher.zero_serving), "max_not_ready": watcher.max_not_ready})
    assert not watcher.zero_serving, watcher.zero_serving[:10]
