"""Scale check of the local control plane + nodesim: N pods via Deployments, then an in-place image
change of one container on every pod.

    PYTHONPATH=tools .venv/bin/python -m nodesim.bench [--kubeconfig .cluster/kubeconfig] [--pods 1000]

Measured on 2 cores (default delays): 1,000 two-container pods Running/Ready 23 s after the
Deployments were created; 1,000 sequential pod patches 32 s, all upgraded 12 s after the last one.
"""

import argparse
import json
import os
import sys
import time

from kubeclient import SMP, KubeClient


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(prog="nodesim.bench")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or os.path.join(root, ".cluster", "kubeconfig"))
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the namespace")
    args = parser.parse_args(argv)
    kube = KubeClient(args.kubeconfig, pool_size=16, quiet_tls=True)
    core, apps = kube.core, kube.apps
    ns = kube.create_namespace("bench-%d" % int(time.time()))
    kube.wait_default_service_account(ns, timeout=60)

    def pods():
        return kube.list_pods(ns)[0]

    def wait(label, predicate, start):
        while True:
            items = pods()
            done = sum(1 for p in items if predicate(p))
            elapsed = time.monotonic() - start
            print("%7.1fs %s %d/%d" % (elapsed, label, done, args.pods), flush=True)
            if done >= args.pods or elapsed > args.timeout:
                return elapsed, done
            time.sleep(2)

    def ready(p):
        return any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])

    per = args.pods // args.deployments
    args.pods = per * args.deployments
    result = {"pods": args.pods}
    try:
        t0 = time.monotonic()
        for i in range(args.deployments):
            labels = {"app": "d%d" % i}
            apps.create_namespaced_deployment(ns, {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d%d" % i},
                "spec": {"replicas": per, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                             {"name": "app", "image": "nginx:1.20"},
                             {"name": "proxy", "image": "mesh/proxy:1.0"}]}}}})
        result["ready_s"], result["ready"] = wait("ready", ready, t0)
        t1 = time.monotonic()
        for p in pods():
            core.patch_namespaced_pod(p["metadata"]["name"], ns,
                                      {"spec": {"containers": [{"name": "proxy", "image": "mesh/proxy:1.1"}]}},
                                      _content_type=SMP, _preload_content=False)
        result["patch_s"] = time.monotonic() - t1

        def upgraded(p):
            return ready(p) and any(
                cs["name"] == "proxy" and cs["image"] == "mesh/proxy:1.1" and cs["ready"] and cs["restartCount"] == 1
                for cs in (p.get("status") or {}).get("containerStatuses") or [])

        result["upgraded_s"], result["upgraded"] = wait("upgraded", upgraded, t1)
    finally:
        if not args.keep:
            core.delete_namespace(ns)
    print(json.dumps(result))
    return 0 if result.get("upgraded") == args.pods else 1


if __name__ == "__main__":
    sys.exit(main())
