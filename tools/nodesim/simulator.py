"""Watch-driven node simulator: plays scheduler + kubelet for a real kube-apiserver.

Threads:
  * one watch thread: LIST + WATCH of all pods (raw dicts), feeding a queue;
  * the main loop: the only thread that touches the model; it handles watch events, runs due
    timers from a heap (pull done, postStart done, ready, crash, ...) and, once per iteration,
    turns every changed pod into a complete status snapshot;
  * a pool of writer threads (``writer.py``): per-pod FIFO of operations (bind, status, delete), at most one
    operation in flight per pod, consecutive status snapshots coalesced (each is complete).

This file is the core: the threads, the timer heap and the watch events. The kubelet's parts are one file each,
mixed into ``Simulator`` (they share its state and call each other through ``self``): ``nodes.py``,
``scheduling.py``, ``lifecycle.py`` (pod lifecycle), ``procmode.py`` (process mode, exits, restarts, deletion),
``status.py`` and ``events.py``; ``model.py`` holds the pod, container and node records.
"""

import collections
import heapq
import itertools
import logging
import os
import queue
import threading
import time

from .config import ANNOTATION_PREFIX
from .events import Events
from .kube import Gone
from .lifecycle import Lifecycle
from .model import MANAGED_LABEL, ZONE_LABEL, Node, image_id, image_repo
from .nodes import Nodes
from .processes import ProcessConfig, ProcessManager
from .procmode import ProcessMode
from .scheduling import Scheduling
from .status import Status
from .writer import Writer

LOG = logging.getLogger("nodesim")


class Simulator(Nodes, Scheduling, Lifecycle, ProcessMode, Status, Events):
    """The simulator: the state of all simulated nodes and pods, the loop and the timers (module docstring)."""

    def __init__(self, kube, cfg, node_count=None, zones=None, node_prefix=None, events=None, writers=None,
                 process_dir=None):
        self.kube = kube
        self.kubelet_version = None
        self.cfg = cfg
        g = cfg.globals
        self.node_count = int(node_count if node_count is not None else g["nodes"])
        self.zones = list(zones or g["zones"])
        self.node_prefix = node_prefix or g["nodePrefix"]
        self.events = g["events"] if events is None else events
        self.backoff_initial = float(g["backoffInitial"])
        self.backoff_max = float(g["backoffMax"])
        self.pull_backoff_initial = float(g["imagePullBackoffInitial"])
        self.writer = Writer(kube, int(writers or g["writers"]))
        self.nodes = collections.OrderedDict()
        self.pods = {}
        self.binding = {}  # key -> uid of pods whose binding was submitted
        self.unschedulable = {}
        self.group_zone = collections.defaultdict(collections.Counter)  # group -> zone -> count
        self.pod_group = {}  # key -> (group, node)
        self.events_q = queue.Queue()
        self.timers = []
        self.tick = None  # while run_timers runs: the time it runs the due timers of
        self.seq = itertools.count()
        self.dirty = set()
        self.stop_event = threading.Event()
        self.synced = threading.Event()
        self.event_seq = itertools.count()
        self.last_heartbeat = 0.0
        self.procs = None
        if cfg.processes is not None:
            pcfg = ProcessConfig(cfg.processes, config_dir=os.path.dirname(cfg.path) if cfg.path else None)
            self.procs = ProcessManager(pcfg, self.post, root=process_dir)

    # ----------------------------------------------------------------- threads
    def watch_loop(self):
        while not self.stop_event.is_set():
            try:
                items, rv = self.kube.list_pods()
                self.events_q.put(("SYNC", items))
                while not self.stop_event.is_set():
                    for kind, obj in self.kube.watch_pods(rv):
                        if self.stop_event.is_set():
                            return
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            self.events_q.put((kind, obj))
            except Gone:
                LOG.info("watch expired, listing again")
            except Exception as exc:  # pylint: disable=broad-except
                if self.stop_event.is_set():
                    return
                LOG.warning("pod watch failed: %s; listing again in 1 s", exc)
                time.sleep(1)

    def run(self):
        self.register_nodes()
        self.last_heartbeat = time.monotonic()
        watcher = threading.Thread(target=self.watch_loop, name="watch", daemon=True)
        watcher.start()
        while not self.stop_event.is_set():
            timeout = 1.0
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
            try:
                item = self.events_q.get(timeout=timeout)
                self.handle(*item)
                for _drained in range(500):
                    try:
                        item = self.events_q.get_nowait()
                    except queue.Empty:
                        break
                    self.handle(*item)
            except queue.Empty:
                pass
            self.run_timers()
            self.flush()
            if time.monotonic() - self.last_heartbeat > 30:
                self.last_heartbeat = time.monotonic()
                self.heartbeat()
        if self.procs:
            self.procs.shutdown()

    def post(self, fn, *args):
        """Run fn(*args) in the main loop (from any thread)."""
        self.events_q.put(("CALL", (fn, args)))

    def stop(self):
        self.stop_event.set()

    # ----------------------------------------------------------------- timers
    def after(self, delay, fn, *args):
        """Run ``fn(*args)`` in the main loop after ``delay`` seconds.

        A zero delay scheduled while the due timers run is due in the same pass: a chain of zero-delay steps
        (created -> postStart done -> running -> ready) completes before the next status flush, so the pod's
        status is written once with the end state, as a kubelet's status manager would report it.
        """
        delay = max(0.0, delay or 0.0)
        when = self.tick if (delay == 0.0 and self.tick is not None) else time.monotonic() + delay
        heapq.heappush(self.timers, (when, next(self.seq), fn, args))

    def run_timers(self, limit=100000):
        now = self.tick = time.monotonic()
        try:
            ran = 0
            while self.timers and self.timers[0][0] <= now and ran < limit:
                fn, args = heapq.heappop(self.timers)[2:]
                ran += 1
                try:
                    fn(*args)
                except Exception:  # pylint: disable=broad-except
                    LOG.exception("timer %s failed", getattr(fn, "__name__", fn))
        finally:
            self.tick = None

    def valid(self, pod, c=None, gen=None):
        if self.pods.get(pod.key) is not pod:
            return False
        return c is None or c.gen == gen

    # ----------------------------------------------------------------- events from the watch
    def handle(self, kind, obj):
        if kind == "CALL":
            fn, args = obj
            try:
                fn(*args)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("%s failed", getattr(fn, "__name__", fn))
            return
        if kind == "SYNC":
            seen = set()
            for item in obj:
                seen.add((item["metadata"]["namespace"], item["metadata"]["name"]))
                self.on_pod(item)
            for key in list(self.pods):
                if key not in seen:
                    self.forget(key)
            self.synced.set()
            return
        if kind == "DELETED":
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            pod = self.pods.get(key)
            if pod is None or pod.uid == obj["metadata"]["uid"]:
                self.forget(key)
            self.binding.pop(key, None)
            self.unschedulable.pop(key, None)
            return
        self.on_pod(obj)

    def forget(self, key):
        pod = self.pods.pop(key, None)
        self.dirty.discard(key)
        grp = self.pod_group.pop(key, None)
        if grp:
            group, node = grp
            n = self.nodes.get(node)
            if n:
                n.pods -= 1
                self.group_zone[group][n.zone] -= 1
        if pod:
            for c in pod.all_containers():
                c.gen += 1
            if self.procs:
                self.procs.release(pod.key, pod.uid)

    def on_pod(self, obj):
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        node_name = spec.get("nodeName")
        pod = self.pods.get(key)
        if pod is not None and pod.uid != meta["uid"]:
            self.forget(key)
            pod = None
        if not node_name:
            if meta.get("deletionTimestamp"):
                return
            if self.binding.get(key) == meta["uid"]:
                return
            self.schedule(obj)
            return
        self.binding.pop(key, None)
        if node_name not in self.nodes:
            return
        if pod is None:
            pod = self.adopt(obj, node_name)
            if pod is None:
                return
        pod.spec = spec
        if (meta.get("generation") or 1) != pod.generation:
            pod.generation = meta.get("generation") or 1
            self.dirty.add(key)
        pod.annotations = meta.get("annotations") or {}
        pod.labels = meta.get("labels") or {}
        if pod.readiness_gates:
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if cond.get("type") in pod.readiness_gates:
                    if pod.gate_status.get(cond["type"]) != cond.get("status"):
                        pod.gate_status[cond["type"]] = cond.get("status")
                        self.dirty.add(key)
        if meta.get("deletionTimestamp"):
            if not pod.deleting:
                self.begin_delete(pod, meta)
            return
        if pod.terminal:
            return
        for c in [ic for ic in pod.init if ic.sidecar] + list(pod.containers.values()):
            want = pod.spec_container(c.name, c.init).get("image")
            if want and c.image and want != c.image and pod.phase not in ("Succeeded", "Failed"):
                self.image_changed(pod, c, want)


__all__ = ["Simulator", "Node", "image_id", "image_repo", "ANNOTATION_PREFIX", "MANAGED_LABEL", "ZONE_LABEL"]
