"""Kill a 20-pod rollout (realistic per-phase delays of the simulated kubelet) at random points, then re-run it.

Two kill modes:

* ``tree``: SIGKILL the playbook and every descendant found by parent pid in /proc (ansible-core's worker calls
  setsid(), so the worker and the module are outside the playbook's process group); the module really dies
  mid-batch.
* ``group``: SIGKILL the playbook's process group only (what a naive kill does); the worker and the module in
  their own session survive and finish their batch while the re-run starts.

Kill points alternate between a random moment of the run (uniform over the length of a full run) and a random
moment while some pod is between its Upgrade and its Reset (both twins on real images: the hard case), so that
even the short variant kills the module mid-batch.

After each kill the same rollout is run again and must converge: every pod on the new image, Ready, same uid and
app container, exactly one twin on a real image. A watch from the test process over every pod update asserts that
no pod that served ever had zero serving twins, and a foreign writer's annotations are never lost. The runs go
through ``tools/faultproxy`` without faults, to count their API requests (``extra_api_requests``: the killed run
and its re-run against one full run, per point).

``MESHOPS_CHAOS_KILL_POINTS`` (default 2 per mode, one of each kind; ``make chaos``: 30) sets the number of
points, ``MESHOPS_CHAOS_SEED`` the random points; the figures are printed as JSON lines (``chaoskit.report``).
"""

import random
import subprocess
import time

import pytest

from chaoskit import (
    REALISTIC_DELAYS, ForeignWriter, ServingWatch, check_converged, descendants, env_int, final_check, kill_group,
    kill_tree, proxy_kubeconfig, wait_gone,
)
from faultproxy import FaultProxy
from test_rollout import ANSIBLE_BIN, PLAYBOOKS, ROOT, ansible_env, run_playbook, sidecarset_doc, wait_ready, write_yaml
from workloads import create_injected_deployment

PODS = 20


def rollout_cmd(sidecarset, namespace):
    return [str(ANSIBLE_BIN / "ansible-playbook"), str(PLAYBOOKS / "rollout.yml"), "-e", "rollout_sidecarset=" + sidecarset,
            "-e", "rollout_namespace=" + namespace, "-e", "rollout_timeout=120"]


def start_rollout(kube, sidecarset, namespace, env=None, output=subprocess.DEVNULL):
    """``playbooks/rollout.yml`` in the background, in a session of its own (as AWX or a terminal starts it);
    ``output``: ``subprocess.PIPE`` or a file for its stdout and stderr."""
    return subprocess.Popen(rollout_cmd(sidecarset, namespace), cwd=str(ROOT), env=ansible_env(kube, **(env or {})),
                            stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def make_apps(kube, namespace):
    v1 = sidecarset_doc("mesh/proxy:v1", max_unavailable="50%")
    for name in ("left", "right"):
        create_injected_deployment(kube, v1, name, namespace, PODS // 2, labels={"mesh": "on"}, app_image="app:1",
                                   container="app", grace_period=0, annotations=REALISTIC_DELAYS)
    return {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, PODS, timeout=180)}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tree", "group"])
def test_killed_rollouts_converge(nodesim, namespace, tmp_path, mode):
    kube = nodesim
    points = env_int("MESHOPS_CHAOS_KILL_POINTS", 2)
    rand = random.Random(env_int("MESHOPS_CHAOS_SEED", 17) + (0 if mode == "tree" else 1000))
    before = make_apps(kube, namespace)
    started = time.monotonic()
    figures = {"fault": "kill-" + mode, "pods": PODS, "trials": 0, "converged": 0, "killed_mid_batch": 0, "survivors": 0,
               "points_random": 0, "points_mid_batch": 0}
    with FaultProxy(kube.host, seed=17) as proxy, ServingWatch(kube, namespace) as watcher, \
            ForeignWriter(kube, namespace, sorted(before)) as foreign:
        env = proxy_kubeconfig(kube, proxy, tmp_path / "proxy-kubeconfig")
        # a full run first, to know how long one takes and how many API requests it makes
        start, counted = time.monotonic(), proxy.stats["requests"]
        path = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable="50%"))
        proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace}, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:]
        full = time.monotonic() - start
        baseline = proxy.stats["requests"] - counted
        check_converged(kube, namespace, before, "mesh/proxy:v2")
        figures.update(full_run_seconds=round(full, 1), baseline_api_requests=baseline if env else None)
        counted = proxy.stats["requests"]

        for index in range(points):
            version = 3 + index
            mid_batch = index % 2 == 1
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc("mesh/proxy:v%d" % version, max_unavailable="50%"))
            log = tmp_path / ("victim-v%d.log" % version)
            with open(log, "w", encoding="utf-8") as handle:
                victim = start_rollout(kube, path, namespace, env, output=handle)
            launched = time.monotonic()
            if mid_batch:
                # the hard case: a pod between Upgrade and Reset, at a random moment of its hand-over
                found = watcher.wait_in_flight(2 * full + 30, until=lambda proc=victim: proc.poll() is not None)
                assert found or victim.poll() == 0, "v%d: no pod between Upgrade and Reset, the run ended %s:\n%s" % (
                    version, victim.poll(), log.read_text(encoding="utf-8")[-4000:])
                time.sleep(rand.uniform(0.0, 1.5))
                figures["points_mid_batch"] += 1
            else:
                time.sleep(rand.uniform(0.05, 0.95) * full)
                figures["points_random"] += 1
            delay = time.monotonic() - launched
            figures["trials"] += 1
            survivors = []
            if victim.poll() is None:
                figures["killed_mid_batch"] += 1 if watcher.in_flight else 0
                if mode == "tree":
                    killed = kill_tree(victim.pid)
                    assert not wait_gone(killed, 10), "processes of the killed run still alive: %s" % killed
                else:
                    survivors = kill_group(victim.pid)
                    figures["survivors"] += len(survivors)
            victim.wait(timeout=30)
            assert not (mode == "tree" and descendants(victim.pid))
            extra = {"rollout_sidecarset": path, "rollout_namespace": namespace, "rollout_timeout": 120}
            proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", extra, env=env)
            assert proc.returncode == 0, "kill after %.1fs of v%d: %s" % (delay, version, proc.stdout[-4000:])
            # the orphans of a group kill finish their batch; the pods must then be as the re-run left them
            assert not wait_gone(survivors, 180), "the orphaned module did not finish"
            check_converged(kube, namespace, before, "mesh/proxy:v%d" % version)
            figures["converged"] += 1
        if env:
            figures["extra_api_requests"] = proxy.stats["requests"] - counted - points * baseline
        again = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": path, "rollout_namespace": namespace}, env=env)
        final_check(figures, watcher, foreign, started, rerun=again)
    if points >= 2:
        assert figures["killed_mid_batch"] >= 1, figures
