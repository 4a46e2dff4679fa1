"""API faults between the collection and the API server (tools/faultproxy), in the middle of ``sidecar_upgrade``
and of a rollout: dropped connections, latency 200 ms +- 100 ms, the API cut for 30 s (refused, or a black hole),
5xx and 429 bursts (also 5xx answers to writes that landed).

The module talks to the proxy (a kubeconfig with the proxy's plain-HTTP URL and the cluster's token); the test
watches and checks the pods directly. Each fault starts once the first Upgrade write is seen. The faulted run
either completes or stops with a clear message (no traceback); after the fault heals a re-run completes; no pod
ever has zero serving twins, none ends with two real twins, no foreign annotation is lost, and every pod's
working twin carries the version of the run that upgraded it (a retried Upgrade never bumps it twice).

``MESHOPS_CHAOS_API_TRIALS`` (default 1; ``make chaos``: 3) trials per fault; ``MESHOPS_CHAOS_CUT_SECONDS``
(default 30) the length of the cut. Figures as JSON lines (``chaoskit.report``), ``extra_api_requests`` against a
fault-free run of the same size.
"""

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from chaoskit import (
    REALISTIC_DELAYS, ForeignWriter, ServingWatch, env_int, final_check, proxy_kubeconfig, real_twins, serving_twins,
)
from faultproxy import FaultProxy
from modrun import run_module
from test_rollout import EMPTY, PLAYBOOKS, images, pods_of, run_playbook, sidecarset_doc, wait_ready, write_yaml
from workloads import create_injected_deployment

PODS = 6
CUT = env_int("MESHOPS_CHAOS_CUT_SECONDS", 30)
BASELINE = {}


def proxy_env(kube, proxy, path):
    env = proxy_kubeconfig(kube, proxy, path)
    if env is None:
        pytest.skip("the fault proxy needs a bearer-token kubeconfig (plain HTTP on its side)")
    return env


def pod_reads(proxy):
    """From the proxy's log of one run: the number of pod LISTs and the resourceVersion of every pod WATCH."""
    lists, watches = 0, []
    for method, target in list(proxy.log):
        parts = urlsplit(target)
        if method != "GET" or not parts.path.endswith("/pods"):
            continue
        query = parse_qs(parts.query)
        if (query.get("watch") or [""])[0] in ("true", "1"):
            watches.append((query.get("resourceVersion") or [""])[0])
        else:
            lists += 1
    return lists, watches


@pytest.fixture
def proxy(kube):
    with FaultProxy(kube.host, seed=17) as running:
        yield running


def working_version(pod):
    annotations = pod["metadata"].get("annotations") or {}
    twin = real_twins(pod, "proxy", EMPTY)
    return annotations.get("version.sidecarset.kruise.io/" + twin[0]) if len(twin) == 1 else None


def first_upgrade_seen(kube, namespace, image, timeout=60):
    kube.wait_for(lambda: any(image in images(p).values() for p in pods_of(kube, namespace)), timeout=timeout, interval=0.05,
                  message="the first Upgrade write")


FAULTS = {
    # name: (apply(proxy), heal(proxy), seconds the fault lasts; None = until the run ends)
    "drop": (lambda p: p.drop(0.2, first=4), lambda p: p.drop(0), None),
    "reset-connections": (None, None, None),  # reset every open connection (watches too) every 2 s
    "latency": (lambda p: p.latency(0.2, 0.1), lambda p: p.latency(0), None),
    "cut": (lambda p: p.cut("refuse"), lambda p: p.heal(), CUT),
    "blackhole": (lambda p: p.cut("blackhole"), lambda p: p.heal(), CUT),
    "5xx-burst": (lambda p: (p.burst(503, 6), p.burst(500, 3, forward=True)), None, None),
    "429-burst": (lambda p: p.burst(429, 10), None, None),
    # every connection cut, and the next 2 watches answered 410 Expired (as after an etcd compaction): re-list
    "expired-watch": (lambda p: (p.expire_watches(2), p.reset_all()), None, None),
    # throttled from the first request of the module (discovery, the pod LIST), not from the first Upgrade write
    "429-at-start": (lambda p: p.burst(429, 4), None, None),
}
AT_START = ("429-at-start",)
SHORT = ["drop", "reset-connections", "latency", "5xx-burst", "429-burst", "expired-watch", "429-at-start"]


def inject_fault(proxy, name, stop):
    apply, heal, seconds = FAULTS[name]
    if name == "reset-connections":
        while not stop.wait(2.0):
            proxy.reset_all()
        return
    apply(proxy)
    if seconds is not None:
        stop.wait(seconds)
    elif heal is not None:
        stop.wait()
    if heal is not None:
        heal(proxy)


def upgrade_through(kube, env, namespace, path, image, fault, proxy):
    """One ``sidecar_upgrade`` through the proxy; the fault starts at the first Upgrade write."""
    stop = threading.Event()
    injector = None
    if fault in AT_START:
        FAULTS[fault][0](proxy)
    elif fault:
        def later():
            first_upgrade_seen(kube, namespace, image)
            inject_fault(proxy, fault, stop)
        injector = threading.Thread(target=later, daemon=True)
        injector.start()
    proxy.log.clear()
    try:
        result, proc = run_module("sidecar_upgrade", dict(sidecarset=path, namespace=namespace, timeout=120, concurrency=4),
                                  env=env, timeout=400)
    finally:
        stop.set()
        if injector is not None:
            injector.join(CUT + 10)
        proxy.clear()
    return result, proc


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS) if env_int("MESHOPS_CHAOS_API_ALL", 0) else SHORT)
def test_api_fault_during_sidecar_upgrade(nodesim, namespace, tmp_path, proxy, fault):
    kube = nodesim
    trials = env_int("MESHOPS_CHAOS_API_TRIALS", 1)
    env = proxy_env(kube, proxy, tmp_path / "proxy-kubeconfig")
    v1 = sidecarset_doc("mesh/proxy:v1")
    create_injected_deployment(kube, v1, "app", namespace, PODS, labels={"mesh": "on"}, app_image="app:1", container="app",
                               grace_period=0, annotations=REALISTIC_DELAYS)
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, PODS, timeout=120)}
    figures = {"fault": "api-" + fault, "pods": PODS, "trials": 0, "converged": 0, "first_run_completed": 0,
               "extra_api_requests": 0, "double_bumps": 0, "pod_lists": 0, "watches": 0, "watches_from_version": 0}
    if "requests" not in BASELINE:
        path = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2"))
        result, proc = upgrade_through(kube, env, namespace, path, "mesh/proxy:v2", None, proxy)
        assert not result.get("failed") and result["summary"]["done"] == PODS, proc.stdout[-3000:]
        BASELINE["requests"] = result["api_requests"]["total"]
        BASELINE["lists"] = pod_reads(proxy)[0]
        start_version = 3
    else:
        start_version = 2
    started = time.monotonic()
    messages = []
    with ServingWatch(kube, namespace) as watcher, ForeignWriter(kube, namespace, sorted(before)) as foreign:
        for trial in range(trials):
            version = start_version + trial
            image = "mesh/proxy:v%d" % version
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc(image))
            first, proc = upgrade_through(kube, env, namespace, path, image, fault, proxy)
            lists, watches = pod_reads(proxy)
            figures["pod_lists"] += lists
            figures["watches"] += len(watches)
            figures["watches_from_version"] += sum(1 for rv in watches if rv not in ("", "0"))
            if fault == "reset-connections":
                # every cut watch re-established from its last resourceVersion: no re-list
                assert lists == BASELINE["lists"] and len(watches) > 1 and "" not in watches, (lists, watches)
            if fault == "expired-watch":
                # each 410 Expired answered by a re-list, then a watch from the new list's version
                assert lists >= BASELINE["lists"] + 2, (lists, watches)
            figures["trials"] += 1
            figures["extra_api_requests"] += first.get("api_requests", {}).get("total", BASELINE["requests"]) - BASELINE["requests"]
            if first.get("failed"):
                text = first.get("msg", "") + " ".join(str(p.get("reason", "")) for p in first.get("pods") or [])
                messages.append(text[:300])
                # a clear message: what failed and why, not a traceback nor an "unexpected ... a bug" report
                assert text.strip() and "Traceback" not in text and "a bug of" not in text, proc.stdout[-3000:]
            else:
                assert first["summary"]["done"] == PODS, proc.stdout[-3000:]
                figures["first_run_completed"] += 1
            again, proc = upgrade_through(kube, env, namespace, path, image, None, proxy)
            assert not again.get("failed") and again["summary"]["done"] == PODS, proc.stdout[-3000:]
            pods = pods_of(kube, namespace)
            assert {p["metadata"]["uid"] for p in pods} == {p["metadata"]["uid"] for p in before.values()}
            run_versions = {str(first.get("version")), str(again.get("version"))}
            for pod in pods:
                assert [images(pod)[t] for t in real_twins(pod, "proxy", EMPTY)] == [image], images(pod)
                assert serving_twins(pod, "proxy", EMPTY), pod["metadata"]["name"]
                # the working twin carries the version of the run that upgraded it, bumped once
                if working_version(pod) not in run_versions:
                    figures["double_bumps"] += 1
            figures["converged"] += 1
        figures.update(baseline_api_requests=BASELINE["requests"], baseline_pod_lists=BASELINE["lists"],
                       proxy=dict(proxy.stats, by_method=None), messages=messages[:3])
        final_check(figures, watcher, foreign, started)
    assert figures["double_bumps"] == 0, figures


@pytest.mark.slow
def test_api_faults_during_a_rollout(nodesim, namespace, tmp_path, proxy):
    """A 10-pod rollout (2 batches) through the proxy with 200 ms +- 100 ms latency, dropped connections and a 5xx
    burst at the first Upgrade write; with ``MESHOPS_CHAOS_API_ALL=1`` (``make chaos``) also the API cut for
    ``MESHOPS_CHAOS_CUT_SECONDS`` during a second rollout.
    Each completes or stops with a clear message; a re-run completes."""
    kube = nodesim
    env = proxy_env(kube, proxy, tmp_path / "proxy-kubeconfig")
    count = 10
    v1 = sidecarset_doc("mesh/proxy:v1", max_unavailable="50%")
    create_injected_deployment(kube, v1, "app", namespace, count, labels={"mesh": "on"}, app_image="app:1", container="app",
                               grace_period=0, annotations=REALISTIC_DELAYS)
    before = wait_ready(kube, namespace, count, timeout=120)
    results = []
    with ServingWatch(kube, namespace) as watcher:
        cases = [(2, ("latency", "drop", "5xx-burst"))] + ([(3, ("cut",))] if env_int("MESHOPS_CHAOS_API_ALL", 0) else [])
        for version, faults in cases:
            image = "mesh/proxy:v%d" % version
            path = write_yaml(tmp_path / ("v%d.yaml" % version), sidecarset_doc(image, max_unavailable="50%"))
            stop = threading.Event()

            def later(faults=faults, image=image, stop=stop):
                first_upgrade_seen(kube, namespace, image)
                threads = [threading.Thread(target=inject_fault, args=(proxy, f, stop), daemon=True) for f in faults]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            injector = threading.Thread(target=later, daemon=True)
            injector.start()
            extra = {"rollout_sidecarset": path, "rollout_namespace": namespace, "rollout_timeout": 120}
            first = run_playbook(kube, PLAYBOOKS / "rollout.yml", extra, env=env)
            stop.set()
            injector.join(CUT + 10)
            proxy.clear()
            if first.returncode != 0:
                assert "Traceback" not in first.stdout and ("fatal:" in first.stdout or "FAILED" in first.stdout), first.stdout[-3000:]
            again = run_playbook(kube, PLAYBOOKS / "rollout.yml", extra, env=env)
            assert again.returncode == 0, again.stdout[-3000:]
            results.append({"faults": list(faults), "first_run_ok": first.returncode == 0})
            for pod in pods_of(kube, namespace):
                assert [images(pod)[t] for t in real_twins(pod, "proxy", EMPTY)] == [image], images(pod)
        assert {p["metadata"]["uid"] for p in pods_of(kube, namespace)} == {p["metadata"]["uid"] for p in before}
        figures = {"fault": "api-rollout", "pods": count, "trials": len(results), "converged": len(results), "runs": results,
                   "proxy": dict(proxy.stats, by_method=None)}
        final_check(figures, watcher)
