"""Benchmark: the rollout race, Kruise's SidecarSet controller against our rollout (issue 14).

The same SidecarSet image change (the MOSN SidecarSet, HotUpgrade, ``maxUnavailable: 10%``) on ``BENCH_RACE_PODS``
(1000) pods on simulated nodes, done once by the real kruise-manager v1.9.0 (tools/kruise/kruise.sh) and once by
``playbooks/rollout.yml``, on one control plane of its own (profile "bench": the node simulator's Events off, plus
an audit log), never the test cluster:

1. ``kruise.sh up`` on ``.bench/cluster-kruise`` with ports of its own (apiserver 18643, etcd 25890/25900, KCM 22357,
   webhook 18976, metrics 18180, health 18100) and kube-apiserver's audit log (level Metadata, every request);
2. Kruise: namespace ``race-kruise``, the SidecarSet (v1alpha1 ``spec.namespace`` = that namespace) created in the
   API, 4 Deployments whose pods Kruise's webhook injects; the image change v1 -> v2 (zero delays), then v2 -> v3
   (the new image's postStart hook, the migration, takes ``lognormal(3s, 0.9)`` per pod, the distribution of
   bench_rollout's window benchmark, drawn by the node simulator from the pod name), each a patch of the
   SidecarSet, Kruise's controller doing the rest; the namespace deleted (every pod gone) and Kruise removed
   (``kruise.sh remove``: no webhooks, no kruise-manager);
3. ours: namespace ``race-ours``, the same Deployments injected by our engine, the same two image changes, each one
   ``ansible-playbook playbooks/rollout.yml`` (``rollout_max_unavailable=10%``) run as a ServiceAccount of its own.

Measured the same way for both:

* **makespan**: from the change (the SidecarSet patch; the playbook's start) until a watch on the namespace has seen
  every pod done (the working twin on the new image, the other on the empty image, both reported running that image
  and ready); ``tool_seconds`` for ours is the playbook's wall time (it ends after the last pod, with its report).
* **API requests per pod**: the audit log's requests (unique auditID) received in that window from the controller:
  kruise-manager by its user agent, ours by the ServiceAccount's user name (the node simulator and the benchmark's
  own watch use the admin token and another user agent; they are counted apart: ``kubelet_requests``). For ours the
  window runs to the playbook's exit.

Prints one JSON line per controller and mode (``kruise_race``) and one comparison line per mode
(``kruise_race_vs``). The issue's target: our makespan at most Kruise's, our requests per pod at most Kruise's.
Knobs: BENCH_RACE_PODS (1000), BENCH_RACE_DEPLOYMENTS (4), BENCH_RACE_MIGRATION (``lognormal(3s, 0.9)``; empty
= the zero-delay race only), BENCH_RACE_TIMEOUT (1800 s per rollout), BENCH_KEEP=1 (keep the control plane).
Needs kruise-manager built (``tools/kruise/kruise.sh build``); tools/bench/run.sh runs it only then.
"""

import calendar
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
import conftest  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from modrun import ANSIBLE_PLAYBOOK, ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from workloads import create_injected_deployment, deployment, mosn_raw, write_yaml  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
from benchenv import stamp  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.join(ROOT, "tools"))
from kubeclient import KubeClient, WaitTimeout  # noqa: E402  pylint: disable=wrong-import-position

PODS = int(os.environ.get("BENCH_RACE_PODS", "1000"))
DEPLOYMENTS = max(1, min(int(os.environ.get("BENCH_RACE_DEPLOYMENTS", "4")), PODS))
MIGRATION = os.environ.get("BENCH_RACE_MIGRATION", "lognormal(3s, 0.9)")   # bench_rollout's (issue 13's window)
TIMEOUT = float(os.environ.get("BENCH_RACE_TIMEOUT", "1800"))
MAX_UNAVAILABLE = "10%"
V1, V2, V3 = "tinyqian/mosn:v1", "tinyqian/mosn:v2", "tinyqian/mosn:v3"
EMPTY = "openkruise/hotupgrade-sample:empty"
TWINS = ("mosn-1", "mosn-2")
NAME = "mosn"
CLUSTER_DIR = os.path.join(ROOT, ".bench", "cluster-kruise")
PORTS = {
    "KRUISE_APISERVER_PORT": "18643", "KRUISE_ETCD_PORT": "25890", "KRUISE_ETCD_PEER_PORT": "25900",
    "KRUISE_KCM_PORT": "22357", "KRUISE_WEBHOOK_PORT": "18976", "KRUISE_METRICS_PORT": "18180", "KRUISE_HEALTH_PORT": "18100",
}
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""
BENCH_AGENT = "meshops-bench-race"
OURS_SA = ("default", "race-ours")


def log(message):
    print("# " + message, file=sys.stderr, flush=True)


def kruise_env():
    env = dict(os.environ, KRUISE_CLUSTER_DIR=CLUSTER_DIR, NODESIM_ARGS="--no-events", REAL_NODES="0", **PORTS)
    env["MESHOPS_APISERVER_ARGS"] = ("--audit-policy-file=%s/audit-policy.yaml --audit-log-path=%s/audit.log "
                                     "--audit-log-format=json --audit-log-maxsize=0" % (CLUSTER_DIR, CLUSTER_DIR))
    return env


def kruise_sh(action, timeout=1800):
    proc = subprocess.run([os.path.join(ROOT, "tools", "kruise", "kruise.sh"), action], cwd=ROOT, env=kruise_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit("kruise.sh %s failed:\n%s%s" % (action, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


class Kube(KubeClient):
    """The benchmark's own client: admin token, a user agent of its own."""

    def __init__(self, kubeconfig):
        super().__init__(kubeconfig, user_agent=BENCH_AGENT, quiet_tls=True)

    def sidecarset(self):
        return self.custom.get_cluster_custom_object("apps.kruise.io", "v1beta1", "sidecarsets", NAME)


def service_account_kubeconfig(kube, path):
    """A kubeconfig for a cluster-admin ServiceAccount of our own (its requests are told apart in the audit log)."""
    namespace, name = OURS_SA
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    kube.rbac.create_cluster_role_binding({
        "metadata": {"name": "race-ours"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    token = kube.core.create_namespaced_service_account_token(name, namespace, {"spec": {"expirationSeconds": 86400}}).status.token
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "race",
                   "clusters": [{"name": "race", "cluster": {"server": kube.host, "insecure-skip-tls-verify": True}}],
                   "users": [{"name": "race-ours", "user": {"token": token}}],
                   "contexts": [{"name": "race", "context": {"cluster": "race", "user": "race-ours"}}]}, handle)
    return "system:serviceaccount:%s:%s" % (namespace, name)


def pod_done(pod, image):
    ann = pod["metadata"].get("annotations") or {}
    try:
        slot = json.loads(ann.get("kruise.io/sidecarset-working-hotupgrade-container", "{}")).get("mosn")
    except ValueError:
        return False
    if slot not in TWINS:
        return False
    other = TWINS[1] if slot == TWINS[0] else TWINS[0]
    spec = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
    if spec.get(slot) != image or spec.get(other) != EMPTY:
        return False
    status = pod.get("status") or {}
    statuses = {s["name"]: s for s in status.get("containerStatuses") or ()}
    return status.get("phase") == "Running" and len(statuses) == len(spec) and all(
        statuses[n].get("ready") and statuses[n].get("image") == spec[n] for n in spec)


class Monitor(threading.Thread):
    """Watches a namespace's pods; ``done_at`` is when every pod was first seen done for ``image``."""

    def __init__(self, kube, namespace, image, count):
        super().__init__(daemon=True)
        self.kube, self.namespace, self.image, self.count = kube, namespace, image, count
        self.state = {}
        self.uids = {}
        self.restarts = {}
        self.done_at = None
        self.stop = False
        self.error = None
        pods, self.rv = kube.list_pods(namespace, live=True)
        for pod in pods:
            self._see(pod)

    def _see(self, pod):
        name = pod["metadata"]["name"]
        self.uids[name] = pod["metadata"]["uid"]
        self.restarts[name] = {s["name"]: s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or ()}
        self.state[name] = pod_done(pod, self.image)
        if self.done_at is None and len(self.state) == self.count and all(self.state.values()):
            self.done_at = time.time()

    def run(self):
        from kubernetes.watch.watch import iter_resp_lines  # pylint: disable=import-outside-toplevel

        while not self.stop and self.done_at is None:
            try:
                resp = self.kube.core.list_namespaced_pod(self.namespace, watch=True, resource_version=self.rv, timeout_seconds=60,
                                                          allow_watch_bookmarks=True, _preload_content=False,
                                                          _request_timeout=(10, 90))
                for line in iter_resp_lines(resp):
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        pods, self.rv = self.kube.list_pods(self.namespace, live=True)
                        for pod in pods:
                            self._see(pod)
                        break
                    self.rv = obj.get("metadata", {}).get("resourceVersion", self.rv)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._see(obj)
                    elif event.get("type") == "DELETED":
                        self.state.pop(obj["metadata"]["name"], None)
                    if self.done_at is not None or self.stop:
                        break
                resp.release_conn()
            except Exception as exc:  # pylint: disable=broad-except
                self.error = repr(exc)
                time.sleep(0.5)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.done_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stop = True
        return self.done_at


def _epoch(stamp_text):
    """RFC 3339 with microseconds (audit's requestReceivedTimestamp) -> epoch seconds."""
    base, dummy, frac = stamp_text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float("0." + frac) if frac else 0.0)


def audit_counts(path, start, end):
    """Requests received in [start, end] (epoch), unique auditID, by client: {client: {"total", "by_verb"}}."""
    seen = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ident = event.get("auditID")
            if ident in seen:
                continue
            received = _epoch(event["requestReceivedTimestamp"])
            if not start <= received <= end:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", event.get("requestURI", "?").split("?")[0])
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            seen[ident] = (event.get("user", {}).get("username", ""), event.get("userAgent", ""),
                           "%s %s" % (event.get("verb"), resource))
    out = {}
    for user, agent, what in seen.values():
        if agent.startswith("kruise-manager"):
            client = "kruise-manager"
        elif user == "system:serviceaccount:%s:%s" % OURS_SA:
            client = "ours"
        elif agent.startswith(BENCH_AGENT):
            client = "bench"
        elif agent.startswith("OpenAPI-Generator"):
            client = "kubelet"     # the node simulator (the admin token; our modules run as the ServiceAccount)
        else:
            client = agent.split("/")[0] or user
        entry = out.setdefault(client, {"total": 0, "by_verb": {}})
        entry["total"] += 1
        entry["by_verb"][what] = entry["by_verb"].get(what, 0) + 1
    return out


def pod_annotations(migration):
    """Zero delays, except the migration (the new image's postStart) of the realistic run's image."""
    rules = [{"pullDelay": 0, "startDelay": 0, "postStartDuration": 0, "terminationDelay": 0}]
    if migration:
        rules.append({"image": V3, "postStartDuration": migration})
    return {"nodesim.meshops.io/rules": json.dumps(rules)}


def sidecarset(namespace, image):
    raw = mosn_raw(image, namespace=namespace)
    raw["spec"]["updateStrategy"]["maxUnavailable"] = MAX_UNAVAILABLE
    return raw


def create_apps(kube, namespace, inject_ours):
    share, extra = divmod(PODS, DEPLOYMENTS)
    for index in range(DEPLOYMENTS):
        replicas = share + (1 if index < extra else 0)
        kwargs = {"annotations": pod_annotations(MIGRATION)}
        if inject_ours:
            create_injected_deployment(kube, sidecarset(namespace, V1), "app-%d" % index, namespace, replicas, **kwargs)
        else:
            kube.apps.create_namespaced_deployment(namespace, deployment("app-%d" % index, namespace, replicas, **kwargs))


def wait_injected_ready(kube, namespace, timeout=900):
    start = time.monotonic()
    monitor = Monitor(kube, namespace, V1, PODS)
    monitor.start()
    if monitor.wait(timeout) is None:
        raise SystemExit("%s: %d pods not all injected and ready at %s after %ss (%d seen)" % (namespace, PODS, V1, timeout, len(monitor.state)))
    log("%s: %d pods ready in %.1f s" % (namespace, PODS, time.monotonic() - start))


def line_for(controller, mode, monitor, start, end_tool, audit, image, extra=None):
    done_at = monitor.done_at
    window_end = max(end_tool or 0, done_at or 0) or time.time()
    counts = audit_counts(audit, start, window_end)
    mine = counts.get(controller, {"total": 0, "by_verb": {}})
    before_restarts, before_uids = monitor.before
    same = monitor.uids == before_uids
    twins_plus_two = sum(1 for n, r in monitor.restarts.items()
                         if sum(r.get(t, 0) - before_restarts.get(n, {}).get(t, 0) for t in TWINS) == 2)
    line = {
        "bench": "kruise_race", "controller": controller, "mode": mode, "pods": PODS, "max_unavailable": MAX_UNAVAILABLE,
        "images": image, "all_done": done_at is not None, "same_pods": same, "pods_with_twin_restarts_plus_2": twins_plus_two,
        "makespan_s": round(done_at - start, 2) if done_at else None,
        "requests": mine["total"], "requests_per_pod": round(mine["total"] / PODS, 2),
        "requests_by_verb": dict(sorted(mine["by_verb"].items(), key=lambda kv: -kv[1])),
        "kubelet_requests_per_pod": round(counts.get("kubelet", {"total": 0})["total"] / PODS, 2),
        "audit_window_s": round(window_end - start, 2),
    }
    line.update(extra or {})
    return line


def race_kruise(kube, namespace, old, new, mode, audit):
    monitor = Monitor(kube, namespace, new, PODS)
    monitor.before = ({n: dict(r) for n, r in monitor.restarts.items()}, dict(monitor.uids))
    obj = kube.sidecarset()
    obj["spec"]["containers"][0]["image"] = new
    monitor.start()
    start = time.time()
    kube.custom.replace_cluster_custom_object("apps.kruise.io", "v1beta1", "sidecarsets", NAME, obj)
    monitor.wait(TIMEOUT)
    status = (kube.sidecarset().get("status") or {})
    return line_for("kruise-manager", mode, monitor, start, None, audit, "%s -> %s" % (old, new),
                    {"kruise_status": {k: status.get(k) for k in ("matchedPods", "updatedPods", "readyPods", "updatedReadyPods")}})


def race_ours(kube, namespace, old, new, mode, audit, kubeconfig, tmp):
    path = write_yaml(os.path.join(tmp, "mosn-%s.yaml" % new.rsplit(":", 1)[1]), sidecarset(namespace, new))
    report_path = os.path.join(tmp, "report-%s.json" % new.rsplit(":", 1)[1])   # no spaces: a -e key=value
    monitor = Monitor(kube, namespace, new, PODS)
    monitor.before = ({n: dict(r) for n, r in monitor.restarts.items()}, dict(monitor.uids))
    monitor.start()
    start = time.time()
    proc = subprocess.run([ANSIBLE_PLAYBOOK, os.path.join(ROOT, "playbooks", "rollout.yml"), "-e", "rollout_sidecarset=%s" % path,
                           "-e", "rollout_namespace=%s" % namespace, "-e", "rollout_max_unavailable=%s" % MAX_UNAVAILABLE,
                           "-e", "rollout_report_path=%s" % report_path, "-e", "rollout_timeout=%d" % TIMEOUT],
                          cwd=ROOT, env=ansible_env({"K8S_AUTH_KUBECONFIG": kubeconfig, "KUBECONFIG": kubeconfig}),
                          capture_output=True, text=True, timeout=TIMEOUT + 300, check=False)
    end = time.time()
    monitor.wait(30)
    if proc.returncode != 0:
        log("rollout.yml failed (rc %d):\n%s%s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    with open(report_path, encoding="utf-8") as handle:
        report = json.load(handle)
    return line_for("ours", mode, monitor, start, end, audit, "%s -> %s" % (old, new), {
        "tool_seconds": round(end - start, 2), "seconds_role": float((report.get("result") or {}).get("seconds") or 0),
        "rc": proc.returncode, "batches": len(report.get("batches") or ()),
        "report_done": sum(1 for p in report.get("pods") or () if p.get("phase") == "done")})


def wait_namespace_gone(kube, namespace, timeout=600):
    try:
        kube.delete_namespace(namespace, wait=timeout)
    except WaitTimeout as exc:
        raise SystemExit(str(exc)) from None


def main():
    if sys.argv[1:] == ["--down"]:     # make clean
        if os.path.isdir(CLUSTER_DIR):
            kruise_sh("down", timeout=300)
        return
    os.makedirs(CLUSTER_DIR, exist_ok=True)
    with open(os.path.join(CLUSTER_DIR, "audit-policy.yaml"), "w", encoding="utf-8") as handle:
        handle.write(AUDIT_POLICY)
    audit = os.path.join(CLUSTER_DIR, "audit.log")
    kruise_sh("down", timeout=300)
    if os.path.exists(audit):
        os.unlink(audit)
    start = time.monotonic()
    kruise_sh("up")
    log("kruise.sh up (its own control plane, audit log on): %.1f s" % (time.monotonic() - start))
    kube = Kube(os.path.join(CLUSTER_DIR, "kubeconfig"))
    tmp = tempfile.mkdtemp(prefix="bench-race-")
    ours_kubeconfig = os.path.join(tmp, "ours.kubeconfig")
    service_account_kubeconfig(kube, ours_kubeconfig)
    modes = [("zero", V1, V2)] + ([(MIGRATION, V2, V3)] if MIGRATION else [])
    lines = {}
    try:
        # Kruise: its webhook injects, its controller upgrades
        kns = "race-kruise"
        kube.create_namespace(kns)
        kube.custom.create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", sidecarset(kns, V1))
        time.sleep(2)
        create_apps(kube, kns, inject_ours=False)
        wait_injected_ready(kube, kns)
        for mode, old, new in modes:
            line = race_kruise(kube, kns, old, new, mode, audit)
            lines[("kruise-manager", mode)] = line
            print(json.dumps(stamp(line)), flush=True)
        wait_namespace_gone(kube, kns)
        kube.custom.delete_cluster_custom_object("apps.kruise.io", "v1beta1", "sidecarsets", NAME)
        kruise_sh("remove", timeout=300)
        # ours: our engine injects, our rollout upgrades
        ons = "race-ours"
        kube.create_namespace(ons)
        create_apps(kube, ons, inject_ours=True)
        wait_injected_ready(kube, ons)
        for mode, old, new in modes:
            line = race_ours(kube, ons, old, new, mode, audit, ours_kubeconfig, tmp)
            lines[("ours", mode)] = line
            print(json.dumps(stamp(line)), flush=True)
        for mode, dummy_old, dummy_new in modes:
            theirs, ours = lines[("kruise-manager", mode)], lines[("ours", mode)]
            ok = bool(theirs["makespan_s"] and ours["makespan_s"])
            print(json.dumps(stamp({
                "bench": "kruise_race_vs", "mode": mode, "pods": PODS,
                "makespan_s": {"ours": ours["makespan_s"], "kruise": theirs["makespan_s"]},
                "makespan_ratio_ours_to_kruise": round(ours["makespan_s"] / theirs["makespan_s"], 2) if ok else None,
                "requests_per_pod": {"ours": ours["requests_per_pod"], "kruise": theirs["requests_per_pod"]},
                "requests_ratio_ours_to_kruise": round(ours["requests_per_pod"] / theirs["requests_per_pod"], 2)
                if theirs["requests_per_pod"] else None,
                "target_ok": bool(ok and ours["all_done"] and theirs["all_done"] and ours["makespan_s"] <= theirs["makespan_s"]
                                  and ours["requests_per_pod"] <= theirs["requests_per_pod"]),
            })), flush=True)
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            kruise_sh("down", timeout=300)


if __name__ == "__main__":
    main()
