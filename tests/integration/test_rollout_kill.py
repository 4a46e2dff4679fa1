"""Kill a 20-pod rollout (realistic per-phase delays of the simulated kubelet) at random points, then re-run it.

Two kill modes:

* ``tree``: SIGKILL the playbook and every descendant found by parent pid in /proc (ansible-core's worker calls
  setsid(), so the worker and the module are outside the playbook's process group); the module really dies
  mid-batch.
* ``group``: SIGKILL the playbook's process group only (what a naive kill does); the worker and the module in
  their own session survive and finish their batch while the re-run starts.

After each kill the same rollout is run again and must converge: every pod on the new image, Ready, same uid and
app container, exactly one twin on a real image. A watch from the test process over every pod update asserts that
no pod that served ever had zero serving twins, and a foreign writer's annotations are never lost.

``MESHOPS_CHAOS_KILL_POINTS`` (default 1 per mode; ``make chaos``: 30) sets the number of points,
``MESHOPS_CHAOS_SEED`` the random points; the figures are printed as JSON lines (``chaoskit.report``).
"""

import random
import subprocess
import time

import pytest

from chaoskit import (
    REALISTIC_DELAYS, ForeignWriter, ServingWatch, descendants, env_int, kill_group, kill_tree, real_twins, report,
    wait_gone,
)
from test_rollout import (
    ANSIBLE_BIN, EMPTY, PLAYBOOKS, ROOT, ansible_env, container_ids, images, is_ready, pods_of, run_playbook,
    sidecarset_doc, total_changed, wait_ready, write_yaml,
)
from workloads import create_injected_deployment

PODS = 20


def start_rollout(kube, sidecarset, namespace):
    cmd = [str(ANSIBLE_BIN / "ansible-playbook"), str(PLAYBOOKS / "rollout.yml"), "-e", "rollout_sidecarset=" + sidecarset,
           "-e", "rollout_namespace=" + namespace, "-e", "rollout_timeout=120"]
    return subprocess.Popen(cmd, cwd=str(ROOT), env=ansible_env(kube), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def make_apps(kube, namespace):
    v1 = sidecarset_doc("mesh/proxy:v1", max_unavailable="50%")
    for name in ("left", "right"):
        create_injected_deployment(kube, v1, name, namespace, PODS // 2, labels={"mesh": "on"}, app_image="app:1",
                                   container="app", grace_period=0, annotations=REALISTIC_DELAYS)
    return {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, PODS, timeout=180)}


def check_converged(kube, namespace, before, version):
    """Every pod on ``mesh/proxy:v<version>``, Ready, the same uid and app container, one real twin."""
    pods = pods_of(kube, namespace)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods} == {n: p["metadata"]["uid"] for n, p in before.items()}
    for pod in pods:
        name = pod["metadata"]["name"]
        assert real_twins(pod, "proxy", EMPTY) and len(real_twins(pod, "proxy", EMPTY)) == 1, (name, images(pod))
        real = [images(pod)[t] for t in real_twins(pod, "proxy", EMPTY)]
        assert real == ["mesh/proxy:v%d" % version], (name, images(pod))
        assert is_ready(pod), name
        assert container_ids(pod)["app"] == container_ids(before[name])["app"], name


def in_flight(kube, namespace):
    """Pods with both twins on real images now (between an Upgrade and its Reset)."""
    return sum(1 for p in pods_of(kube, namespace) if len(real_twins(p, "proxy", EMPTY)) == 2)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tree", "group"])
def test_killed_rollouts_converge(nodesim, namespace, tmp_path, mode):
    kube = nodesim
    points = env_int("MESHOPS_CHAOS_KILL_POINTS", 1)
    rand = random.Random(env_int("MESHOPS_CHAOS_SEED", 17) + (0 if mode == "tree" else 1000))
    before = make_apps(kube, namespace)
    started = time.monotonic()
    figures = {"fault": "kill-" + mode, "pods": PODS, "trials": 0, "converged": 0, "killed_mid_batch": 0, "survivors": 0}
    with ServingWatch(kube, namespace) as watcher, ForeignWriter(kube, namespace, sorted(before)) as foreign:
        # a full run first, to know how long one takes
        start = time.monotonic()
        path = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable="50%"))
        proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace})
        assert proc.returncode == 0, proc.stdout[-3000:]
        full = time.monotonic() - start
        check_converged(kube, namespace, before, 2)
        figures["full_run_seconds"] = round(full, 1)

        for index in range(points):
            version = 3 + index
            delay = rand.uniform(0.05, 0.95) * full
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc("mesh/proxy:v%d" % version, max_unavailable="50%"))
            victim = start_rollout(kube, path, namespace)
            time.sleep(delay)
            figures["trials"] += 1
            survivors = []
            if victim.poll() is None:
                figures["killed_mid_batch"] += 1 if in_flight(kube, namespace) else 0
                if mode == "tree":
                    killed = kill_tree(victim.pid)
                    assert not wait_gone(killed, 10), "processes of the killed run still alive: %s" % killed
                else:
                    survivors = kill_group(victim.pid)
                    figures["survivors"] += len(survivors)
            victim.wait(timeout=30)
            assert not (mode == "tree" and descendants(victim.pid))
            extra = {"rollout_sidecarset": path, "rollout_namespace": namespace, "rollout_timeout": 120}
            proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", extra)
            assert proc.returncode == 0, "kill after %.1fs of v%d: %s" % (delay, version, proc.stdout[-4000:])
            # the orphans of a group kill finish their batch; the pods must then be as the re-run left them
            assert not wait_gone(survivors, 180), "the orphaned module did not finish"
            check_converged(kube, namespace, before, version)
            figures["converged"] += 1
        again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace})
        assert again.returncode == 0 and total_changed(again) == 0, again.stdout[-3000:]
    lost = foreign.lost()
    figures.update(zero_serving_moments=len(watcher.zero_serving), foreign_annotations_lost=len(lost),
                   foreign_writes=foreign.count, max_not_ready=watcher.max_not_ready, pod_events=watcher.events,
                   seconds=round(time.monotonic() - started, 1))
    report(figures)
    assert not watcher.zero_serving, watcher.zero_serving[:10]
    assert not lost, lost
    if points >= 10:
        assert figures["killed_mid_batch"] >= 1, figures
