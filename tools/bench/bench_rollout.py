"""Benchmark: the rollout playbook over 1,000 pods (maxUnavailable 10%) against a naive per-pod k8s patch.

Issue 5: "rollout of 1,000 pods with the simulator at zero delays and maxUnavailable 10%: seconds and per-pod
overhead; beside it, in the same run, a naive playbook that patches each pod's image with kubernetes.core.k8s
one host at a time for 100 pods, scaled per pod. Target: <= 30 ms per pod for ours, for all three phases, and
at least 10x less per pod than the naive playbook."

Runs against the local control plane (tools/cluster/up.sh; started if needed) or $KUBECONFIG. Every pod carries
the node simulator's zero-delay annotations, so the figures are the cost of the tooling itself.

* ours: ``BENCH_ROLLOUT_PODS`` (1000) injected pods in one namespace (4 Deployments), then
  ``ansible-playbook playbooks/rollout.yml`` with the MOSN SidecarSet v1 -> v2, ``rollout_max_unavailable=10%``
  (upgrade, migration and reset of every pod); every pod must end ``done`` in the report.
* naive: ``BENCH_NAIVE_PODS`` (100) injected pods in another namespace; an inventory of the pod names and a
  ``serial: 1`` play with one ``kubernetes.core.k8s state=patched`` task (the container image, strategic merge
  on the container name) -- a single write per pod, no hand-over.

Both are wall-clock times of the whole ``ansible-playbook`` process. Prints three JSON lines
(``rollout_1000``, ``naive_k8s_patch_100``, ``rollout_vs_naive``). A small callback plugin records per-task
time so the ``rollout_1000`` line says where the time goes (``tasks``) and how many module calls it made.
Knobs: BENCH_ROLLOUT_PODS, BENCH_NAIVE_PODS, BENCH_ROLLOUT_DEPLOYMENTS (4), BENCH_KEEP=1 (keep namespaces).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
import conftest  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from modrun import ANSIBLE_PLAYBOOK, ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from workloads import create_injected_deployment, mosn_raw, write_yaml  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
from bench_upgrade import Kube as BenchKube  # noqa: E402  pylint: disable=wrong-import-position
from benchenv import stamp  # noqa: E402  pylint: disable=wrong-import-position

PODS = int(os.environ.get("BENCH_ROLLOUT_PODS", "1000"))
NAIVE_PODS = int(os.environ.get("BENCH_NAIVE_PODS", "100"))
DEPLOYMENTS = max(1, min(int(os.environ.get("BENCH_ROLLOUT_DEPLOYMENTS", "4")), PODS))
MAX_UNAVAILABLE = "10%"
V1, V2 = "tinyqian/mosn:v1", "tinyqian/mosn:v2"
ZERO = {"nodesim.meshops.io/%s" % k: "0" for k in ("pull-delay", "start-delay", "post-start-duration", "termination-delay")}
TARGET_MS_PER_POD = 30
TARGET_RATIO = 10

# Per-task wall time, written as JSON at the end of the play (ansible-core ships no profile_tasks).
TIMER_CALLBACK = '''
import json, os, time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = {}
        self.current = None
        self.started = time.monotonic()

    def _close(self):
        if self.current is not None:
            key, t0 = self.current
            self.tasks[key]["seconds"] += time.monotonic() - t0
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        key = "%s | %s" % (task.action, task.get_name())
        self.tasks.setdefault(key, {"action": task.action, "seconds": 0.0, "starts": 0, "runs": 0, "items": 0})
        self.tasks[key]["starts"] += 1
        self.current = (key, time.monotonic())

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _count(self, field):
        if self.current is not None:
            self.tasks[self.current[0]][field] += 1

    def v2_runner_on_ok(self, result):
        self._count("runs")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count("runs")

    def v2_runner_item_on_ok(self, result):
        self._count("items")

    def v2_runner_item_on_failed(self, result):
        self._count("items")

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ["BENCH_TIMER_OUT"], "w") as handle:
            json.dump({"seconds": time.monotonic() - self.started, "tasks": self.tasks}, handle)
'''


class Kube(BenchKube):
    """The benchmark's cluster handle (bench_upgrade's), plus a cheap raw pod list."""

    def pods(self, namespace):
        """Live pods as plain dicts (raw JSON: much cheaper than the client's models for 1,000 pods)."""
        resp = self.core.list_namespaced_pod(namespace, _preload_content=False)
        return [p for p in json.loads(resp.data)["items"] if not p["metadata"].get("deletionTimestamp")]


def ready(pod):
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and len(statuses) == len(pod["spec"]["containers"]) and all(s.get("ready") for s in statuses)


def wait_all_ready(kube, counts, timeout):
    """Wait until each namespace of ``counts`` has exactly that many ready pods; return the pods."""
    deadline = time.monotonic() + timeout
    while True:
        found = {ns: kube.pods(ns) for ns in counts}
        if all(len(found[ns]) == n and all(ready(p) for p in found[ns]) for ns, n in counts.items()):
            return found
        if time.monotonic() > deadline:
            raise SystemExit("pods not ready after %ss: %s" % (timeout, {
                ns: "%d/%d ready" % (sum(1 for p in pods if ready(p)), counts[ns]) for ns, pods in found.items()}))
        time.sleep(1)


def playbook(args, env, tmp, timeout):
    """Run ansible-playbook with the per-task timer; return (wall seconds, completed process, timer data)."""
    timer = os.path.join(tmp, "timer-%d.json" % time.monotonic_ns())
    env = ansible_env(dict(env, ANSIBLE_CALLBACK_PLUGINS=os.path.join(tmp, "callbacks"), ANSIBLE_CALLBACKS_ENABLED="bench_timer",
                           BENCH_TIMER_OUT=timer))
    start = time.monotonic()
    proc = subprocess.run([ANSIBLE_PLAYBOOK] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("ansible-playbook %s failed (rc %d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    with open(timer) as handle:
        return wall, proc, json.load(handle)


def images(pod):
    return [c["image"] for c in pod["spec"]["containers"] if c["name"].startswith("mosn")]


def bench_ours(kube, namespace, tmp, per_call, old, new):
    """One rollout of every pod of ``namespace`` from ``old`` to ``new`` with ``rollout_batches_per_call``."""
    sidecarset = write_yaml(os.path.join(tmp, "mosn-%s.yaml" % new.rsplit(":", 1)[1]), mosn_raw(new))
    report_path = os.path.join(tmp, "rollout-report-%d.json" % per_call)
    before = {p["metadata"]["uid"] for p in kube.pods(namespace)}
    wall, dummy, timer = playbook([
        os.path.join(ROOT, "playbooks", "rollout.yml"),
        "-e", "rollout_sidecarset=%s" % sidecarset, "-e", "rollout_namespace=%s" % namespace,
        "-e", "rollout_max_unavailable=%s" % MAX_UNAVAILABLE, "-e", "rollout_report_path=%s" % report_path,
        "-e", "rollout_timeout=600", "-e", "rollout_batches_per_call=%d" % per_call,
    ], kube.env, tmp, timeout=900)
    with open(report_path) as handle:
        report = json.load(handle)
    pods = report["pods"]
    done = sum(1 for p in pods if p.get("phase") == "done")
    after = kube.pods(namespace)
    same_pods = {p["metadata"]["uid"] for p in after} == before
    on_new = sum(1 for p in after if new in images(p) and old not in images(p))
    tasks = timer["tasks"]
    module_calls = {}
    for task in tasks.values():
        if task["action"].startswith("meshops.sidecarset."):
            name = task["action"].rsplit(".", 1)[1]
            module_calls[name] = module_calls.get(name, 0) + (task["items"] or task["runs"])
    batches = report["batches"]
    batch_seconds = sum(b["seconds"] for b in batches)
    top = sorted(tasks.items(), key=lambda kv: -kv[1]["seconds"])[:8]
    phase_ms = {}
    for phase in ("upgrade", "migration", "reset"):
        values = [p.get("timings", {}).get(phase) for p in pods if p.get("timings", {}).get(phase) is not None]
        if values:
            phase_ms[phase] = round(1000 * sum(values) / len(values), 1)
    line = {
        "bench": "rollout_%d%s" % (PODS, "" if per_call == 1 else "_batches_per_call_%d" % per_call),
        "pods": PODS,
        "max_unavailable": MAX_UNAVAILABLE,
        "rollout_batches_per_call": per_call,
        "images": "%s -> %s" % (old, new),
        "done": done,
        "all_done": done == PODS and len(pods) == PODS,
        "same_pods": same_pods,
        "pods_on_new_image": on_new,
        "seconds": round(wall, 3),
        "ms_per_pod": round(1000 * wall / PODS, 2),
        "seconds_role": float(report["result"]["seconds"]),
        "batches": len(batches),
        "batch_sizes": sorted({b["size"] for b in batches}),
        "seconds_in_batches": round(batch_seconds, 3),
        "seconds_per_batch": round(batch_seconds / len(batches), 3) if batches else None,
        "module_calls": sum(module_calls.values()),
        "module_calls_by_module": module_calls,
        "mean_pod_phase_ms": phase_ms,
        "tasks": [{"task": key, "seconds": round(t["seconds"], 3), "runs": t["starts"]} for key, t in top],
    }
    return line


NAIVE_PLAY = """\
- name: Naive - patch each pod's sidecar image, one host at a time
  hosts: pods
  serial: 1
  connection: local
  gather_facts: false
  tasks:
    - name: Patch the image
      kubernetes.core.k8s:
        state: patched
        api_version: v1
        kind: Pod
        name: "{{ inventory_hostname }}"
        namespace: "%(namespace)s"
        definition:
          spec:
            containers:
              - name: mosn-1
                image: "%(image)s"
"""


def bench_naive(kube, namespace, tmp):
    names = sorted(p["metadata"]["name"] for p in kube.pods(namespace))
    inventory = os.path.join(tmp, "naive-inventory.ini")
    with open(inventory, "w") as handle:
        handle.write("[pods]\n" + "".join("%s\n" % n for n in names))
        handle.write("\n[pods:vars]\nansible_connection=local\nansible_python_interpreter=%s\n" % sys.executable)
    play = os.path.join(tmp, "naive.yml")
    with open(play, "w") as handle:
        handle.write(NAIVE_PLAY % {"namespace": namespace, "image": V2})
    wall, proc, dummy = playbook(["-i", inventory, play], kube.env, tmp, timeout=900)
    changed = sum(1 for line in proc.stdout.splitlines() if line.startswith("changed: ["))
    patched = sum(1 for p in kube.pods(namespace) if any(c["name"] == "mosn-1" and c["image"] == V2 for c in p["spec"]["containers"]))
    return {
        "bench": "naive_k8s_patch_%d" % len(names),
        "pods": len(names),
        "changed": changed,
        "patched": patched,
        "seconds": round(wall, 3),
        "ms_per_pod": round(1000 * wall / len(names), 2),
        "reference_ms_per_pod_2_cores": 500,
    }


def main():
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        subprocess.run([os.path.join(ROOT, "tools", "cluster", "up.sh")], check=True, stdout=subprocess.DEVNULL)
        kubeconfig = os.path.join(ROOT, ".cluster", "kubeconfig")
    kubeconfig = os.path.abspath(kubeconfig)
    kube = Kube(kubeconfig)
    suffix = int(time.time())
    ours_ns, naive_ns = "bench-rollout-%d" % suffix, "bench-naive-%d" % suffix
    tmp = tempfile.mkdtemp(prefix="bench-rollout-")
    os.makedirs(os.path.join(tmp, "callbacks"))
    with open(os.path.join(tmp, "callbacks", "bench_timer.py"), "w") as handle:
        handle.write(TIMER_CALLBACK)
    created = []
    try:
        for namespace in (ours_ns, naive_ns):
            kube.core.create_namespace({"metadata": {"name": namespace}})
            created.append(namespace)
        start = time.monotonic()
        share, extra = divmod(PODS, DEPLOYMENTS)
        for index in range(DEPLOYMENTS):
            create_injected_deployment(kube, mosn_raw(V1), "app-%d" % index, ours_ns, share + (1 if index < extra else 0), annotations=ZERO)
        create_injected_deployment(kube, mosn_raw(V1), "naive", naive_ns, NAIVE_PODS, annotations=ZERO)
        wait_all_ready(kube, {ours_ns: PODS, naive_ns: NAIVE_PODS}, timeout=600)
        print("# %d + %d pods ready in %.1f s" % (PODS, NAIVE_PODS, time.monotonic() - start), file=sys.stderr, flush=True)

        # the default (one sidecar_upgrade invocation per batch), then back with the batches grouped
        per_batch = bench_ours(kube, ours_ns, tmp, 1, V1, V2)
        print(json.dumps(stamp(per_batch)), flush=True)
        grouped = bench_ours(kube, ours_ns, tmp, 0, V2, V1)
        print(json.dumps(stamp(grouped)), flush=True)
        naive = bench_naive(kube, naive_ns, tmp)
        print(json.dumps(stamp(naive)), flush=True)
        for ours in (per_batch, grouped):
            ratio = naive["ms_per_pod"] / ours["ms_per_pod"] if ours["ms_per_pod"] else None
            print(json.dumps(stamp({
                "bench": "rollout_vs_naive",
                "rollout_batches_per_call": ours["rollout_batches_per_call"],
                "ours_ms_per_pod": ours["ms_per_pod"],
                "naive_ms_per_pod": naive["ms_per_pod"],
                "ratio": round(ratio, 1) if ratio else None,
                "target_ms_per_pod": TARGET_MS_PER_POD,
                "target_ratio": TARGET_RATIO,
                "target_ok": bool(ours["all_done"] and ours["same_pods"] and ours["ms_per_pod"] <= TARGET_MS_PER_POD
                                  and ratio and ratio >= TARGET_RATIO),
            })), flush=True)
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            for namespace in created:
                try:
                    kube.core.delete_namespace(namespace)
                except Exception as exc:  # pylint: disable=broad-except
                    print("# could not delete namespace %s: %s" % (namespace, exc), file=sys.stderr)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
