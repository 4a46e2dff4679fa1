"""Benchmark: sidecar_upgrade over 200 pods, maxUnavailable 100% (one batch), simulator at zero delays.

Runs against the local control plane (tools/cluster/up.sh; started if needed) or $KUBECONFIG. The pods get
the node simulator's per-pod zero-delay annotations, so the figure is the collection's own cost: one
``sidecar_upgrade`` invocation through the real ansible-playbook upgrades all pods (Upgrade, Migration,
Reset). Prints one JSON line: pods, seconds, pods/s, API requests per pod, targets (>= 50 pods/s,
<= 6 requests per pod).
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
import conftest  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position
from workloads import create_injected_deployment, mosn_raw, wait_ready, write_yaml  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchenv import stamp  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tools"))
from kubeclient import KubeClient  # noqa: E402  pylint: disable=wrong-import-position

PODS = int(os.environ.get("BENCH_UPGRADE_PODS", "200"))
ZERO = {"nodesim.meshops.io/%s" % k: "0" for k in ("pull-delay", "start-delay", "post-start-duration", "termination-delay")}


def main():
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        subprocess.run([os.path.join(ROOT, "tools", "cluster", "up.sh")], check=True, stdout=subprocess.DEVNULL)
        kubeconfig = os.path.join(ROOT, ".cluster", "kubeconfig")
    kube = KubeClient(kubeconfig, quiet_tls=True)
    namespace = kube.create_namespace("bench-upgrade-%d" % int(time.time()))
    try:
        create_injected_deployment(kube, mosn_raw(), "bench", namespace, PODS, annotations=ZERO)
        wait_ready(kube, namespace, PODS, timeout=600)
        tmp = "/tmp/bench-upgrade-%s.yaml" % namespace
        path = write_yaml(tmp, mosn_raw("tinyqian/mosn:v2"))
        start = time.monotonic()
        result, proc = run_module("sidecar_upgrade", dict(sidecarset=path, namespace=namespace, timeout=600, concurrency=32), env=kube.env)
        wall = time.monotonic() - start
        if result.get("failed"):
            raise SystemExit(proc.stdout[-3000:])
        start = time.monotonic()
        again, proc = run_module("sidecar_upgrade", dict(sidecarset=path, namespace=namespace, timeout=600), env=kube.env)
        noop = time.monotonic() - start
        os.unlink(tmp)
        inner = max(p["timings"].get("total", 0) for p in result["pods"])
        done = result["summary"]["done"]
        requests = result["api_requests"]["total"]
        line = {
            "bench": "sidecar_upgrade_batch",
            "pods": PODS,
            "done": done,
            "seconds_module": round(inner, 3),
            "seconds_task": round(wall, 3),
            "pods_per_s": round(done / inner, 1) if inner else None,
            "pods_per_s_task": round(done / wall, 1),
            "requests_per_pod": round(requests / PODS, 2),
            "seconds_task_second_run": round(noop, 3),
            "second_run_changed": again.get("changed"),
            "requests": result["api_requests"],
            "target_pods_per_s": 50,
            "target_requests_per_pod": 6,
        }
        line["target_ok"] = done == PODS and (line["pods_per_s"] or 0) >= 50 and line["requests_per_pod"] <= 6
        print(json.dumps(stamp(line)), flush=True)
    finally:
        kube.core.delete_namespace(namespace)


if __name__ == "__main__":
    main()
