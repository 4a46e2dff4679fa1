"""Benchmark: the rollout playbook over 1,000 pods (maxUnavailable 10%): the continuous window against lock-step
batches, with realistic migration times and with zero delays, and a naive per-pod k8s patch beside them.

Issue 13: "1,000 pods, maxUnavailable 10%, per-pod migration times drawn from a realistic distribution (lognormal,
median 3 s, some pods 20 s): makespan of the window and of lock-step batches in the same run, and the lower bound
max(sum of durations / window, longest duration); target: window within 1.10x of the bound. With zero delays: at
most 20 ms per pod for the whole playbook." Issue 5's naive comparison (``kubernetes.core.k8s`` patch, one host at
a time, 100 pods, scaled per pod) is kept.

Runs against the local control plane (tools/cluster/up.sh; started if needed) or $KUBECONFIG. ``BENCH_ROLLOUT_PODS``
(1000) injected pods in one namespace (4 Deployments); every pod carries the node simulator's zero-delay
annotations and a rule giving the ``tinyqian/mosn:slow-*`` images a postStart hook of ``lognormal(3s, 0.9)``
(docs/nodesim.md: drawn once per pod from its name, so the window and the batches see the same per-pod durations;
about 2% of the pods over 20 s). Five rollouts of the same pods, each the whole ``ansible-playbook
playbooks/rollout.yml``, every pod through upgrade, migration and reset:

* ``rollout_1000_zero_window``: v1 -> v2 with zero delays, ``rollout_strategy=window`` (the default);
* ``rollout_1000_zero_batches``: v2 -> v1 with zero delays, ``rollout_strategy=batches``, batches grouped
  (``rollout_batches_per_call=0``, the faster lock-step form);
* ``rollout_1000_lognormal_window``: v1 -> slow-a, window;
* ``rollout_1000_lognormal_batches``: slow-a -> slow-b, lock-step batches (grouped);
* ``rollout_1000_lognormal_window_longest_first``: slow-b -> slow-a, window, the pods taken longest first by their
  durations in the report of ``rollout_1000_lognormal_window`` (``rollout_longest_first_from``).

The lognormal lines give the makespan (the first pod's start to the last pod's end, from the report), the lower
bound ``max(sum(d) / window, max(d))`` over the per-pod durations ``d`` of that run (each pod's start to its end),
the ideal greedy window over the same durations in the order the pods started (``ideal_window_s``: what a window
with no overhead at all reaches in Kruise's order), and the ratios. ``rollout_window_vs_batches`` compares the two.
Knobs: BENCH_ROLLOUT_PODS, BENCH_NAIVE_PODS (100; 0 skips), BENCH_ROLLOUT_DEPLOYMENTS (4), BENCH_DISTRIBUTION
(``lognormal(3s, 0.9)``), BENCH_KEEP=1 (keep namespaces), BENCH_REPORTS=DIR (keep each run's report, timeline
picture and ansible-playbook output there).

Each rollout line also says where the CPU went (``cpu_s``: seconds per control-plane component, read from /proc for
the process groups up.sh recorded, and for ``ansible-playbook`` with every process it waited for; ``cpu_total_s``,
``cpu_ms_per_pod``): with ``cores`` cores, ``cpu_total_s / cores`` is the least wall time the run could take here.
"""

import glob
import heapq
import json
import os
import re
import resource
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
from benchenv import stamp  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tools"))
from kubeclient import KubeClient, pod_ready as ready  # noqa: E402  pylint: disable=wrong-import-position

PODS = int(os.environ.get("BENCH_ROLLOUT_PODS", "1000"))
NAIVE_PODS = int(os.environ.get("BENCH_NAIVE_PODS", "100"))
DEPLOYMENTS = max(1, min(int(os.environ.get("BENCH_ROLLOUT_DEPLOYMENTS", "4")), PODS))
MAX_UNAVAILABLE = "10%"
V1, V2 = "tinyqian/mosn:v1", "tinyqian/mosn:v2"
SLOW_A, SLOW_B = "tinyqian/mosn:slow-a", "tinyqian/mosn:slow-b"
DISTRIBUTION = os.environ.get("BENCH_DISTRIBUTION", "lognormal(3s, 0.9)")
ZERO = {"nodesim.meshops.io/%s" % k: "0" for k in ("pull-delay", "start-delay", "termination-delay")}
# postStart: none for every image, the distribution for the slow-* images (later rules win)
ZERO["nodesim.meshops.io/rules"] = json.dumps([{"image": "*", "postStartDuration": 0},
                                               {"image": "tinyqian/mosn:slow-*", "postStartDuration": DISTRIBUTION}])
TARGET_MS_PER_POD = 20
TARGET_RATIO = 10
TARGET_BOUND_RATIO = 1.10

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


def component_cpu(state_dir):
    """CPU seconds (user + system) used so far by each control-plane component whose pid file is in ``state_dir``
    (up.sh starts each with setsid: its process group), from /proc; ``{}`` when the cluster is not ours."""
    groups = {}
    for path in glob.glob(os.path.join(state_dir, "*.pid")):
        try:
            with open(path) as handle:
                groups[int(handle.read().strip())] = os.path.basename(path)[:-len(".pid")]
        except (OSError, ValueError):
            continue
    ticks = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(groups.values(), 0.0)
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pgid = int(fields[2])  # fields after the command: state ppid pgrp ... utime(11) stime(12)
        if pgid in groups:
            used[groups[pgid]] += (int(fields[11]) + int(fields[12])) / float(ticks)
    return used


def request_counts(kube):
    """The API server's ``apiserver_request_total`` so far, summed per ``VERB resource[/subresource]`` (its /metrics);
    ``{}`` when it cannot be read."""
    try:
        method, url, headers, body, dummy = kube.api_client.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        resp = kube.api_client.call_api(method, url, header_params=headers, body=body)
        resp.read()
        text = resp.data.decode("utf-8")
    except Exception:  # pylint: disable=broad-except
        return {}
    counts = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{"):].rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        key = "%s %s%s" % (labels.get("verb"), labels.get("resource"), "/" + labels["subresource"] if labels.get("subresource") else "")
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


def request_figures(before, after):
    """API requests during one rollout: in all and per pod, and the most frequent kinds per pod."""
    diff = dict((key, after[key] - before.get(key, 0.0)) for key in after if after[key] - before.get(key, 0.0) > 0)
    top = sorted(diff.items(), key=lambda kv: -kv[1])[:8]
    return {"api_requests": int(sum(diff.values())), "api_requests_per_pod": round(sum(diff.values()) / PODS, 2),
            "api_requests_per_pod_by_kind": dict((key, round(value / PODS, 2)) for key, value in top)}


def cpu_figures(before, after, playbook_cpu):
    """Where the CPU of one rollout went: seconds per component and for the playbook (ansible and its modules)."""
    cpu = {name: round(after.get(name, 0.0) - before.get(name, 0.0), 2) for name in sorted(after)}
    cpu["ansible-playbook"] = round(playbook_cpu, 2)
    return {"cpu_s": cpu, "cpu_total_s": round(sum(cpu.values()), 2),
            "cpu_ms_per_pod": round(1000 * sum(cpu.values()) / PODS, 2), "cores": os.cpu_count()}


def playbook(args, env, tmp, timeout):
    """Run ansible-playbook with the per-task timer; return (wall seconds, completed process, timer data, CPU seconds
    of the playbook and every process it waited for)."""
    timer = os.path.join(tmp, "timer-%d.json" % time.monotonic_ns())
    env = ansible_env(dict(env, ANSIBLE_CALLBACK_PLUGINS=os.path.join(tmp, "callbacks"), ANSIBLE_CALLBACKS_ENABLED="bench_timer",
                           BENCH_TIMER_OUT=timer))
    start = time.monotonic()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([ANSIBLE_PLAYBOOK] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    finished = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = finished.ru_utime + finished.ru_stime - children.ru_utime - children.ru_stime
    if proc.returncode != 0:
        raise SystemExit("ansible-playbook %s failed (rc %d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    with open(timer) as handle:
        return wall, proc, json.load(handle), cpu


def images(pod):
    return [c["image"] for c in pod["spec"]["containers"] if c["name"].startswith("mosn")]


def greedy_window(durations, window):
    """The makespan of an ideal window (no overhead): each pod, in order, starts when a place frees."""
    places = [0.0] * max(1, window)
    end = 0.0
    for duration in durations:
        start = heapq.heappop(places)
        heapq.heappush(places, start + duration)
        end = max(end, start + duration)
    return end


def schedule_figures(pods, window):
    """Makespan, lower bound and the ideal greedy window of one run, from the report's per-pod start and total."""
    timed = sorted((p["started_at"], p["timings"]["total"]) for p in pods if p.get("started_at") and p.get("timings", {}).get("total") is not None)
    if not timed:
        return {}
    durations = [d for dummy, d in timed]
    makespan = max(s + d for s, d in timed) - timed[0][0]
    bound = max([sum(durations) / window] + durations)
    ideal = greedy_window(durations, window)
    return {
        "makespan_s": round(makespan, 2), "bound_s": round(bound, 2), "ideal_window_s": round(ideal, 2),
        "makespan_vs_bound": round(makespan / bound, 3), "makespan_vs_ideal_window": round(makespan / ideal, 3),
        "ideal_window_vs_bound": round(ideal / bound, 3),
        "sum_durations_s": round(sum(durations), 1), "longest_s": round(max(durations), 2),
        "median_s": round(sorted(durations)[len(durations) // 2], 2), "pods_over_20s": sum(1 for d in durations if d > 20),
    }


def report_file(tmp, label):
    return os.path.join(tmp, "rollout-report-%s.json" % label)


def bench_ours(kube, namespace, tmp, label, strategy, old, new, per_call=0, state_dir=None, extra=()):
    """One rollout of every pod of ``namespace`` from ``old`` to ``new`` (``extra``: more ``-e`` arguments)."""
    sidecarset = write_yaml(os.path.join(tmp, "mosn-%s.yaml" % new.rsplit(":", 1)[1]), mosn_raw(new))
    report_path = report_file(tmp, label)
    before = {p["metadata"]["uid"] for p in kube.pods(namespace)}
    cpu_before = component_cpu(state_dir) if state_dir else {}
    requests_before = request_counts(kube)
    wall, proc, timer, playbook_cpu = playbook([
        os.path.join(ROOT, "playbooks", "rollout.yml"),
        "-e", "rollout_sidecarset=%s" % sidecarset, "-e", "rollout_namespace=%s" % namespace,
        "-e", "rollout_max_unavailable=%s" % MAX_UNAVAILABLE, "-e", "rollout_report_path=%s" % report_path,
        "-e", "rollout_timeout=900", "-e", "rollout_batches_per_call=%d" % per_call, "-e", "rollout_strategy=%s" % strategy,
    ] + list(extra), kube.env, tmp, timeout=1800)
    cpu_after = component_cpu(state_dir) if state_dir else {}
    requests_after = request_counts(kube)
    with open(report_path) as handle:
        report = json.load(handle)
    keep = os.environ.get("BENCH_REPORTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for suffix in (".json", ".svg"):
            shutil.copy(report_path[:-len(".json")] + suffix, os.path.join(keep, "rollout-%s%s" % (label, suffix)))
        with open(os.path.join(keep, "rollout-%s.out" % label), "w") as handle:
            handle.write(proc.stdout)
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
    top = sorted(tasks.items(), key=lambda kv: -kv[1]["seconds"])[:6]
    window = report["plans"][0]["max_unavailable"]
    line = {
        "bench": "rollout_%d_%s" % (PODS, label),
        "pods": PODS,
        "max_unavailable": MAX_UNAVAILABLE,
        "window": window,
        "rollout_strategy": strategy,
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
        "module_calls": sum(module_calls.values()),
        "module_calls_by_module": module_calls,
        "progress_lines": sum(1 for text in proc.stdout.splitlines() if text.startswith("[progress]")),
        "tasks": [{"task": key, "seconds": round(t["seconds"], 3), "runs": t["starts"]} for key, t in top],
    }
    line.update(schedule_figures(pods, window))
    line.update(cpu_figures(cpu_before, cpu_after, playbook_cpu))
    line.update(request_figures(requests_before, requests_after))
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
    wall, proc, dummy, dummy_cpu = playbook(["-i", inventory, play], kube.env, tmp, timeout=900)
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
    state_dir = os.path.dirname(kubeconfig)  # the pid files of a control plane up.sh started (none for another cluster)
    kube = KubeClient(kubeconfig, quiet_tls=True)
    suffix = int(time.time())
    ours_ns, naive_ns = "bench-rollout-%d" % suffix, "bench-naive-%d" % suffix
    tmp = tempfile.mkdtemp(prefix="bench-rollout-")
    os.makedirs(os.path.join(tmp, "callbacks"))
    with open(os.path.join(tmp, "callbacks", "bench_timer.py"), "w") as handle:
        handle.write(TIMER_CALLBACK)
    created = []
    try:
        for namespace in (ours_ns, naive_ns):
            kube.create_namespace(namespace)
            created.append(namespace)
        start = time.monotonic()
        share, extra = divmod(PODS, DEPLOYMENTS)
        for index in range(DEPLOYMENTS):
            create_injected_deployment(kube, mosn_raw(V1), "app-%d" % index, ours_ns, share + (1 if index < extra else 0), annotations=ZERO)
        if NAIVE_PODS:
            create_injected_deployment(kube, mosn_raw(V1), "naive", naive_ns, NAIVE_PODS, annotations=ZERO)
        wait_all_ready(kube, {ours_ns: PODS, naive_ns: NAIVE_PODS} if NAIVE_PODS else {ours_ns: PODS}, timeout=900)
        print("# %d + %d pods ready in %.1f s" % (PODS, NAIVE_PODS, time.monotonic() - start), file=sys.stderr, flush=True)

        zero_window = bench_ours(kube, ours_ns, tmp, "zero_window", "window", V1, V2, state_dir=state_dir)
        zero_window["target_ms_per_pod"] = TARGET_MS_PER_POD
        zero_window["target_ok"] = bool(zero_window["all_done"] and zero_window["same_pods"] and zero_window["ms_per_pod"] <= TARGET_MS_PER_POD)
        print(json.dumps(stamp(zero_window)), flush=True)
        zero_batches = bench_ours(kube, ours_ns, tmp, "zero_batches", "batches", V2, V1, state_dir=state_dir)
        print(json.dumps(stamp(zero_batches)), flush=True)
        slow_window = bench_ours(kube, ours_ns, tmp, "lognormal_window", "window", V1, SLOW_A, state_dir=state_dir)
        slow_window["distribution"] = DISTRIBUTION
        print(json.dumps(stamp(slow_window)), flush=True)
        slow_batches = bench_ours(kube, ours_ns, tmp, "lognormal_batches", "batches", SLOW_A, SLOW_B, state_dir=state_dir)
        slow_batches["distribution"] = DISTRIBUTION
        print(json.dumps(stamp(slow_batches)), flush=True)
        # the same window, the pods taken longest first by their durations in the first lognormal window's report
        history = report_file(tmp, "lognormal_window")
        longest = bench_ours(kube, ours_ns, tmp, "lognormal_window_longest_first", "window", SLOW_B, SLOW_A, state_dir=state_dir,
                             extra=["-e", "rollout_longest_first_from=%s" % history])
        longest["distribution"] = DISTRIBUTION
        print(json.dumps(stamp(longest)), flush=True)
        print(json.dumps(stamp({
            "bench": "rollout_window_vs_batches",
            "distribution": DISTRIBUTION,
            "window_makespan_s": slow_window.get("makespan_s"), "batches_makespan_s": slow_batches.get("makespan_s"),
            "batches_vs_window": round(slow_batches["makespan_s"] / slow_window["makespan_s"], 2) if slow_window.get("makespan_s") else None,
            "bound_s": slow_window.get("bound_s"), "window_vs_bound": slow_window.get("makespan_vs_bound"),
            "ideal_window_vs_bound": slow_window.get("ideal_window_vs_bound"), "window_vs_ideal_window": slow_window.get("makespan_vs_ideal_window"),
            "longest_first_makespan_s": longest.get("makespan_s"), "longest_first_bound_s": longest.get("bound_s"),
            "longest_first_vs_bound": longest.get("makespan_vs_bound"),
            "longest_first_vs_kruise_order": (round(longest["makespan_s"] / slow_window["makespan_s"], 3)
                                              if slow_window.get("makespan_s") and longest.get("makespan_s") else None),
            "target_vs_bound": TARGET_BOUND_RATIO,
            "target_ok": bool(slow_window.get("makespan_vs_bound") and slow_window["makespan_vs_bound"] <= TARGET_BOUND_RATIO),
            "target_ok_longest_first": bool(longest.get("makespan_vs_bound") and longest["makespan_vs_bound"] <= TARGET_BOUND_RATIO),
            "zero_delay_ms_per_pod": {"window": zero_window["ms_per_pod"], "batches": zero_batches["ms_per_pod"]},
        })), flush=True)
        if NAIVE_PODS:
            naive = bench_naive(kube, naive_ns, tmp)
            print(json.dumps(stamp(naive)), flush=True)
            ratio = naive["ms_per_pod"] / zero_window["ms_per_pod"] if zero_window["ms_per_pod"] else None
            print(json.dumps(stamp({
                "bench": "rollout_vs_naive",
                "rollout_strategy": "window",
                "ours_ms_per_pod": zero_window["ms_per_pod"],
                "naive_ms_per_pod": naive["ms_per_pod"],
                "ratio": round(ratio, 1) if ratio else None,
                "target_ratio": TARGET_RATIO,
                "target_ok": bool(ratio and ratio >= TARGET_RATIO),
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
