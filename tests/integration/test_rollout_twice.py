"""Two rollouts of the same SidecarSet at once (a user double-clicking an AWX job template).

No lock: both runs plan the same Kruise order from the pods, every write carries the pod's resourceVersion and is
re-planned from the stored pod on a conflict, so the second writer of a pod finds it already upgraded and waits or
resets (docs/faults.md, "Decisions"). Must hold: both runs succeed, every pod converged with exactly one real
twin, no moment with zero serving twins, no foreign annotation lost, and at most maxUnavailable pods not Ready at
once (the runs work on the same batches, not on twice as many pods). The runs go through ``tools/faultproxy``
without faults, to count the API requests of a double run against a single one (``extra_api_requests``).

``MESHOPS_CHAOS_TWICE_TRIALS`` (default 1; ``make chaos``: 5) repeats it with a new version each time.
"""

import random
import re
import subprocess
import time

import pytest

from chaoskit import ForeignWriter, ServingWatch, check_converged, env_int, final_check, proxy_kubeconfig, real_twins
from faultproxy import FaultProxy
from test_rollout import EMPTY, PLAYBOOKS, images, pods_of, run_playbook, sidecarset_doc, total_changed, write_yaml
from test_rollout_kill import PODS, make_apps, start_rollout


def recap_changed(stdout):
    return total_changed(type("Completed", (), {"stdout": stdout}))


def run_together(kube, paths, namespace, env, gap):
    """Start one rollout per SidecarSet file, ``gap()`` seconds apart; return (return codes, outputs)."""
    runs = []
    for index, path in enumerate(paths):
        if index:
            time.sleep(gap())
        runs.append(start_rollout(kube, path, namespace, env, output=subprocess.PIPE))
    outputs = [run.communicate(timeout=400)[0] for run in runs]
    return [run.returncode for run in runs], outputs


@pytest.mark.slow
def test_two_rollouts_at_once_converge(nodesim, namespace, tmp_path):
    kube = nodesim
    trials = env_int("MESHOPS_CHAOS_TWICE_TRIALS", 1)
    rand = random.Random(env_int("MESHOPS_CHAOS_SEED", 17))
    before = make_apps(kube, namespace)
    started = time.monotonic()
    figures = {"fault": "two-rollouts-at-once", "pods": PODS, "trials": 0, "converged": 0, "both_succeeded": 0,
               "changed_by_both": 0}
    with FaultProxy(kube.host, seed=17) as proxy, ServingWatch(kube, namespace) as watcher, \
            ForeignWriter(kube, namespace, sorted(before)) as foreign:
        env = proxy_kubeconfig(kube, proxy, tmp_path / "proxy-kubeconfig")
        # one run alone first: the API requests of a single rollout of these pods
        counted = proxy.stats["requests"]
        path = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable="50%"))
        single = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace}, env=env)
        assert single.returncode == 0, single.stdout[-3000:]
        baseline = proxy.stats["requests"] - counted
        counted = proxy.stats["requests"]
        for trial in range(trials):
            version = 3 + trial
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc("mesh/proxy:v%d" % version, max_unavailable="50%"))
            codes, outputs = run_together(kube, [path, path], namespace, env, lambda: rand.uniform(0.0, 2.0))  # the second click
            figures["trials"] += 1
            assert codes == [0, 0], "\n\n".join(out[-3000:] for out in outputs)
            figures["both_succeeded"] += 1
            figures["changed_by_both"] += 1 if all(recap_changed(out) for out in outputs) else 0
            check_converged(kube, namespace, before, "mesh/proxy:v%d" % version)
            figures["converged"] += 1
        if env:
            figures.update(baseline_api_requests=baseline, extra_api_requests=proxy.stats["requests"] - counted - trials * baseline)
        again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace}, env=env)
        final_check(figures, watcher, foreign, started, rerun=again, max_not_ready=PODS // 2)


@pytest.mark.slow
def test_two_rollouts_of_different_versions_at_once_leave_no_pod_corrupted(nodesim, namespace, tmp_path):
    """Two operators at once, v2 and v3 of the same SidecarSet: each pod's last writer wins (no lock, see
    docs/faults.md); no pod is corrupted (exactly one real twin, v2 or v3, serving throughout), and a re-run of
    v3 brings every pod to v3."""
    kube = nodesim
    before = make_apps(kube, namespace)
    started = time.monotonic()
    with ServingWatch(kube, namespace) as watcher, ForeignWriter(kube, namespace, sorted(before)) as foreign:
        paths = [write_yaml(tmp_path / ("v%d.yaml" % v), sidecarset_doc("mesh/proxy:v%d" % v, max_unavailable="50%")) for v in (2, 3)]
        codes, outputs = run_together(kube, paths, namespace, None, lambda: 1.0)
        for out, code in zip(outputs, codes):
            assert code == 0 or ("Traceback" not in out and "fatal:" in out), out[-3000:]
        mixed = {}
        for pod in pods_of(kube, namespace):
            (real,) = [images(pod)[t] for t in real_twins(pod, "proxy", EMPTY)]
            assert real in ("mesh/proxy:v2", "mesh/proxy:v3"), images(pod)
            mixed[real] = mixed.get(real, 0) + 1
        again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": paths[1], "rollout_namespace": namespace})
        assert again.returncode == 0, again.stdout[-3000:]
        check_converged(kube, namespace, before, "mesh/proxy:v3")
        failures = [(re.findall(r'"msg": "(.*)"', out) or [""])[-1][:300] for out, code in zip(outputs, codes) if code]
        figures = {"fault": "two-versions-at-once", "pods": PODS, "trials": 1, "converged": 1, "return_codes": codes,
                   "after_both": mixed, "failures": failures}
        final_check(figures, watcher, foreign, started)
