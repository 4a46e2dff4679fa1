"""Helpers for the fault tests (kill points, concurrent runs, API faults): a serving-twin watcher over all pod
updates, killing a whole process tree, realistic per-phase simulator delays, a foreign annotation writer, and the
JSON-lines figures that ``make chaos`` prints.

Not a test module (no ``test_`` prefix); imported by the fault tests as ``chaoskit``.
"""

import json
import os
import random
import signal
import threading
import time

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
    seconds since start), the most pods not Ready at once (``max_not_ready``) and the number of events seen. The
    watch is re-established from the last resourceVersion when the server closes it (re-listed on 410).
    """

    def __init__(self, kube, namespace, sidecar="proxy", empty="mesh/proxy:empty"):
        self.kube, self.namespace, self.sidecar, self.empty = kube, namespace, sidecar, empty
        self.served = set()
        self.not_ready = set()
        self.max_not_ready = 0
        self.zero_serving = []
        self.events = 0
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
            return
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
                    listed = self.kube.core.list_namespaced_pod(self.namespace)
                    for item in listed.items:
                        self._see(self.kube.api_client.sanitize_for_serialization(item))
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
                    pod = self.kube.api_client.sanitize_for_serialization(obj)
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

    def __exit__(self, *exc):
        time.sleep(0.5)
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()


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

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(10)

    def lost(self):
        out = []
        for name, value in self.written.items():
            pod = self.kube.core.read_namespaced_pod(name, self.namespace)
            if (pod.metadata.annotations or {}).get(FOREIGN) != value:
                out.append(name)
        return out
