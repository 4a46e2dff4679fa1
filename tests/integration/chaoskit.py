"""Helpers for the fault tests (kill points, concurrent runs, API faults): a serving-twin watcher over all pod
updates, killing a whole process tree, realistic per-phase simulator delays, a foreign annotation writer, a
kubeconfig through the fault proxy (``tools/faultproxy``), the final checks every fault test ends with
(``check_converged``, ``final_check``), and the JSON-lines figures that ``make chaos`` prints.

Not a test module (no ``test_`` prefix); imported by the fault tests as ``chaoskit``.
"""

import json
import os
import random
import signal
import threading
import time

import yaml

# Per-phase delays of the simulated kubelet (docs/nodesim.md), set on the pod template: a pull of a new image,
# container creation, the hand-over in postStart, readiness, and the old twin's termination at the reset.
REALISTIC_DELAYS = {
    "nodesim.meshops.io/pull-delay": "800ms",
    "nodesim.meshops.io/start-delay": "200ms",
    "nodesim.meshops.io/post-start-duration": "1s",
    "nodesim.meshops.io/ready-delay": "400ms",
    "nodesim.meshops.io/termination-delay": "300ms",
}

FOREIGN = "chaos.meshops.io/foreign"


def env_int(name, default):
    """An integer from the environment (``make chaos`` sets the long variants), else ``default``."""
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def report(record):
    """Append one JSON line of figures to ``$MESHOPS_CHAOS_REPORT`` (``make chaos`` prints them) and print it."""
    line = json.dumps(record, sort_keys=True)
    print(line)
    path = os.environ.get("MESHOPS_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


# ------------------------------------------------------------------------------------------ processes


def _children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: the fields after the last ')'
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid):
    """Every process below ``pid`` by parent pid (whatever session or process group it moved to)."""
    children, found, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(pid):
    """SIGSTOP ``pid`` and every descendant (until no new one appears, so nothing forks away), then SIGKILL them
    all. ansible-core's worker calls setsid(), so killing the playbook's process group leaves the worker and the
    module running; this kills them too. Returns the pids killed."""
    stopped = []
    for dummy in range(20):
        new = [p for p in [pid] + descendants(pid) if p not in stopped]
        if not new:
            break
        for proc in new:
            try:
                os.kill(proc, signal.SIGSTOP)
                stopped.append(proc)
            except ProcessLookupError:
                pass
    for proc in stopped:
        try:
            os.kill(proc, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return stopped


def kill_group(pid):
    """SIGKILL the process group of ``pid`` only (what ``kill -9 -PGID`` or a terminal's Ctrl-\\ reaches); returns the
    descendants that were outside the group and survive (the worker and module in their own session)."""
    below = descendants(pid)
    os.killpg(pid, signal.SIGKILL)
    time.sleep(0.2)
    return [p for p in below if alive(p)]


def wait_gone(pids, timeout):
    """Wait until none of ``pids`` runs; return the ones still alive after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


# ------------------------------------------------------------------------------------------ watcher


def twin_names(pod, sidecar):
    return [c["name"] for c in pod["spec"]["containers"] if c["name"] in (sidecar + "-1", sidecar + "-2")]


def serving_twins(pod, sidecar, empty):
    """Twins that serve now, from the pod status: ready and running a real (not the empty) image."""
    statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    out = []
    for name in twin_names(pod, sidecar):
        status = statuses.get(name) or {}
        if status.get("ready") and status.get("image") and status.get("image") != empty and (status.get("state") or {}).get("running"):
            out.append(name)
    return out


def real_twins(pod, sidecar, empty):
    """Twins whose spec image is a real one (a finished pod has exactly one)."""
    return [c["name"] for c in pod["spec"]["containers"] if c["name"] in twin_names(pod, sidecar) and c["image"] != empty]


class ServingWatch:
    """A watch on the pods of a namespace, from the test process, over every pod update.

    Records each moment a pod that served before has zero serving twins (``zero_serving``: pod, resourceVersion,
    seconds since start), the most pods not Ready at once (``max_not_ready``), the pods whose spec has both twins
    on real images now (``in_flight``: between an Upgrade and its Reset) and the number of events seen. The
    watch is re-established from the last resourceVersion when the server closes it (re-listed on 410, counted in
    ``relists``: events between the two lists are not seen one by one).
    """

    def __init__(self, kube, namespace, sidecar="proxy", empty="mesh/proxy:empty"):
        self.kube, self.namespace, self.sidecar, self.empty = kube, namespace, sidecar, empty
        self.served = set()
        self.not_ready = set()
        self.max_not_ready = 0
        self.zero_serving = []
        self.in_flight = set()
        self.events = 0
        self.relists = 0
        self.errors = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._watch = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _see(self, pod, deleted=False):
        name = pod["metadata"]["name"]
        self.events += 1
        if deleted:
            self.served.discard(name)
            self.not_ready.discard(name)
            self.in_flight.discard(name)
            return
        (self.in_flight.add if len(real_twins(pod, self.sidecar, self.empty)) == 2 else self.in_flight.discard)(name)
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])
        (self.not_ready.discard if ready else self.not_ready.add)(name)
        self.max_not_ready = max(self.max_not_ready, len(self.not_ready))
        serving = serving_twins(pod, self.sidecar, self.empty)
        if serving:
            self.served.add(name)
        elif name in self.served and not pod["metadata"].get("deletionTimestamp"):
            self.zero_serving.append({"pod": name, "resourceVersion": pod["metadata"]["resourceVersion"],
                                      "at": round(time.monotonic() - self.started, 2)})

    def _run(self):
        from kubernetes import watch  # pylint: disable=import-outside-toplevel
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

        version = None
        while not self._stop.is_set():
            try:
                if version is None:
                    self.relists += 1 if self._ready.is_set() else 0
                    listed = self.kube.core.list_namespaced_pod(self.namespace)
                    for item in listed.items:
                        self._see(self.kube.plain(item))
                    version = listed.metadata.resource_version
                    self._ready.set()
                self._watch = watch.Watch()
                for event in self._watch.stream(self.kube.core.list_namespaced_pod, self.namespace, resource_version=version,
                                                timeout_seconds=60, allow_watch_bookmarks=True):
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None
                        break
                    pod = self.kube.plain(obj)
                    version = pod["metadata"].get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        self._see(pod, deleted=event["type"] == "DELETED")
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                else:
                    self.errors.append(str(exc)[:200])
                    time.sleep(0.5)
            except Exception as exc:  # pylint: disable=broad-except
                if self._stop.is_set():
                    return
                self.errors.append(repr(exc)[:200])
                time.sleep(0.5)

    def __enter__(self):
        self.thread.start()
        self._ready.wait(30)
        return self

    def wait_in_flight(self, timeout, until=None):
        """Wait until some pod is between its Upgrade and its Reset (both twins on real images), for at most
        ``timeout`` s or until ``until()`` is true; True if one is."""
        deadline = time.monotonic() + timeout
        while not self.in_flight and time.monotonic() < deadline and self.thread.is_alive() and not (until and until()):
            time.sleep(0.02)
        return bool(self.in_flight)

    def stop(self):
        """Stop watching (after the events of the last half second); idempotent."""
        if not self._stop.is_set():
            time.sleep(0.5)
            self._stop.set()
            if self._watch is not None:
                self._watch.stop()

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------------------------------------ foreign writer


class ForeignWriter:
    """Another writer of the pods (as a user's ``kubectl annotate`` or another controller): a thread that keeps
    setting ``chaos.meshops.io/foreign`` on random pods with merge patches (no resourceVersion), remembering the
    last value written per pod. ``lost()`` names the pods whose stored value differs from the last one written."""

    def __init__(self, kube, namespace, names, interval=0.2, seed=0):
        self.kube, self.namespace, self.names, self.interval = kube, namespace, list(names), interval
        self.written = {}
        self.count = 0
        self.rand = random.Random(seed)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            name = self.rand.choice(self.names)
            value = "%d" % self.count
            try:
                self.kube.core.patch_namespaced_pod(name, self.namespace, {"metadata": {"annotations": {FOREIGN: value}}})
                self.written[name] = value
                self.count += 1
            except Exception:  # pylint: disable=broad-except
                pass  # the API may be cut by the fault under test; the value was then not written
            self._stop.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def stop(self):
        """Stop writing (idempotent); ``lost()`` is only meaningful after it, when no write is in flight."""
        self._stop.set()
        self.thread.join(10)

    def __exit__(self, *exc):
        self.stop()

    def lost(self):
        self.stop()
        out = []
        for name, value in self.written.items():
            pod = self.kube.core.read_namespaced_pod(name, self.namespace)
            if (pod.metadata.annotations or {}).get(FOREIGN) != value:
                out.append(name)
        return out


# ------------------------------------------------------------------------------------------ fault proxy


def proxy_kubeconfig(kube, proxy, path):
    """A kubeconfig that sends the collection through ``proxy`` (``tools/faultproxy``: plain HTTP on loopback,
    the cluster's bearer token), written to ``path``; returns the environment for ``run_playbook``/``run_module``,
    or ``None`` when the cluster's kubeconfig has no bearer token (the proxy cannot authenticate for it)."""
    with open(kube.kubeconfig, encoding="utf-8") as handle:
        admin = yaml.safe_load(handle)
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    user = next(u["user"] for u in admin["users"] if u["name"] == ctx["user"])
    if not user.get("token"):
        return None
    doc = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "p", "cluster": {"server": proxy.url}}],
           "users": [{"name": "u", "user": {"token": user["token"]}}],
           "contexts": [{"name": "p", "context": {"cluster": "p", "user": "u"}}], "current-context": "p"}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return {"K8S_AUTH_KUBECONFIG": str(path), "KUBECONFIG": str(path)}


# ------------------------------------------------------------------------------------------ final checks


def check_converged(kube, namespace, before, image, sidecar="proxy", empty="mesh/proxy:empty"):
    """Every pod of ``before`` (name -> pod) still there with the same uid and app container, Ready, and exactly one
    twin on a real image: ``image`` (none left with both twins on real images)."""
    from test_rollout import container_ids, images, is_ready, pods_of  # pylint: disable=import-outside-toplevel

    pods = pods_of(kube, namespace)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods} == {n: p["metadata"]["uid"] for n, p in before.items()}
    for pod in pods:
        name = pod["metadata"]["name"]
        real = [images(pod)[t] for t in real_twins(pod, sidecar, empty)]
        assert real == [image], (name, images(pod))
        assert is_ready(pod), name
        assert container_ids(pod)["app"] == container_ids(before[name])["app"], name


def final_check(figures, watcher, foreign=None, started=None, rerun=None, max_not_ready=None):
    """How every fault test ends: ``rerun`` (a completed process, e.g. the same rollout once more) must succeed and
    change nothing; the watcher and the foreign writer are stopped and their figures added to ``figures``
    (zero-serving moments, foreign annotations lost, ...), which is reported as one JSON line; then the test fails
    on any moment with zero serving twins, any lost foreign annotation, or more than ``max_not_ready`` pods not
    Ready at once."""
    from test_rollout import total_changed  # pylint: disable=import-outside-toplevel

    if rerun is not None:
        assert rerun.returncode == 0 and total_changed(rerun) == 0, rerun.stdout[-3000:]
    watcher.stop()
    lost = foreign.lost() if foreign is not None else []
    figures.update(zero_serving_moments=len(watcher.zero_serving), max_not_ready=watcher.max_not_ready,
                   pod_events=watcher.events, watch_relists=watcher.relists)
    if foreign is not None:
        figures.update(foreign_annotations_lost=len(lost), foreign_writes=foreign.count)
    if max_not_ready is not None:
        figures["max_unavailable"] = max_not_ready
    if started is not None:
        figures["seconds"] = round(time.monotonic() - started, 1)
    report(figures)
    assert not watcher.zero_serving, watcher.zero_serving[:10]
    assert not lost, lost
    assert max_not_ready is None or watcher.max_not_ready <= max_not_ready, figures
