"""Kill ansible-playbook (the whole process group, SIGKILL) at 10 points of a 20-pod rollout; re-running converges."""

import os
import signal
import subprocess
import time

import pytest

from test_rollout import (
    ANSIBLE_BIN, PLAYBOOKS, ROOT, ansible_env, container_ids, is_ready, make_app, pods_of, run_playbook,
    sidecarset_doc, total_changed, wait_ready, working_image, write_yaml,
)


def start_rollout(kube, sidecarset, namespace):
    cmd = [str(ANSIBLE_BIN / "ansible-playbook"), str(PLAYBOOKS / "rollout.yml"), "-e", "rollout_sidecarset=" + sidecarset,
           "-e", "rollout_namespace=" + namespace, "-e", "rollout_timeout=120"]
    return subprocess.Popen(cmd, cwd=str(ROOT), env=ansible_env(kube), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.slow
def test_killed_rollouts_converge(nodesim, namespace, tmp_path):
    kube = nodesim
    v1 = sidecarset_doc("mesh/proxy:v1", max_unavailable="50%")
    make_app(kube, namespace, "left", 10, v1)
    make_app(kube, namespace, "right", 10, v1)
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 20)}

    def converged(version):
        pods = pods_of(kube, namespace)
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods} == {n: p["metadata"]["uid"] for n, p in before.items()}
        for pod in pods:
            assert working_image(pod) == "mesh/proxy:v%d" % version, pod["metadata"]["name"]
            assert is_ready(pod), pod["metadata"]["name"]
            assert container_ids(pod)["app"] == container_ids(before[pod["metadata"]["name"]])["app"]

    # a full run first, to know how long one takes
    start = time.monotonic()
    path = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable="50%"))
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace})
    assert proc.returncode == 0, proc.stdout[-3000:]
    full = time.monotonic() - start
    converged(2)

    points = [full * (i + 0.5) / 10 for i in range(10)]
    for index, delay in enumerate(points):
        version = 3 + index
        path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc("mesh/proxy:v%d" % version, max_unavailable="50%"))
        victim = start_rollout(kube, path, namespace)
        time.sleep(delay)
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        extra = {"rollout_sidecarset": path, "rollout_namespace": namespace, "rollout_timeout": 120}
        proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", extra)
        assert proc.returncode == 0, "kill after %.1fs of v%d: %s" % (delay, version, proc.stdout[-4000:])
        converged(version)
    again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace})
    assert again.returncode == 0 and total_changed(again) == 0, again.stdout[-3000:]
