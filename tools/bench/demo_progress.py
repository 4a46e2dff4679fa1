"""A small rollout with realistic migration times, to watch the live progress and get the timeline picture.

``BENCH_PODS`` (60) injected pods in a new namespace (2 Deployments), the new sidecar image with a postStart hook
of ``lognormal(3s, 0.9)`` per pod (docs/nodesim.md), then ``playbooks/rollout.yml`` (maxUnavailable 10%, canary 2,
the default continuous window) with its output passed through to the terminal, the report and the timeline picture
written to ``OUT`` (default ``out/demo-progress``). Uses $KUBECONFIG or the local control plane (.cluster/).
docs/rollout.md shows a capture and the picture.
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
import conftest  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
from bench_rollout import V1, SLOW_A, ZERO, KubeClient, wait_all_ready  # noqa: E402  pylint: disable=wrong-import-position
from modrun import ANSIBLE_PLAYBOOK, ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from workloads import create_injected_deployment, mosn_raw, write_yaml  # noqa: E402  pylint: disable=wrong-import-position

PODS = int(os.environ.get("BENCH_PODS", "60"))


def main():
    kubeconfig = os.path.abspath(os.environ.get("KUBECONFIG") or os.path.join(ROOT, ".cluster", "kubeconfig"))
    out = os.path.abspath(os.environ.get("OUT", os.path.join(ROOT, "out", "demo-progress")))
    os.makedirs(out, exist_ok=True)
    kube = KubeClient(kubeconfig, quiet_tls=True)
    namespace = kube.create_namespace("demo-progress-%d" % int(time.time()))
    try:
        for index in range(2):
            create_injected_deployment(kube, mosn_raw(V1), "app-%d" % index, namespace, PODS // 2 + (index < PODS % 2), annotations=ZERO)
        wait_all_ready(kube, {namespace: PODS}, timeout=600)
        sidecarset = write_yaml(os.path.join(out, "mosn-slow.yaml"), mosn_raw(SLOW_A))
        env = ansible_env(dict(kube.env, ANSIBLE_FORCE_COLOR="0"))
        proc = subprocess.run([ANSIBLE_PLAYBOOK, os.path.join(ROOT, "playbooks", "rollout.yml"),
                               "-e", "rollout_sidecarset=%s" % sidecarset, "-e", "rollout_namespace=%s" % namespace,
                               "-e", "rollout_max_unavailable=10%", "-e", "rollout_canary=2",
                               "-e", "rollout_report_path=%s" % os.path.join(out, "rollout.json")],
                              cwd=ROOT, env=env, check=False)
        print("report: %s, timeline: %s" % (os.path.join(out, "rollout.json"), os.path.join(out, "rollout.svg")))
        return proc.returncode
    finally:
        kube.core.delete_namespace(namespace)


if __name__ == "__main__":
    sys.exit(main())
