"""Watch-driven node simulator: plays scheduler + kubelet for a real kube-apiserver.

Threads:
  * one watch thread: LIST + WATCH of all pods (raw dicts), feeding a queue;
  * the main loop: the only thread that touches the model; it handles watch events, runs due
    timers from a heap (pull done, postStart done, ready, crash, ...) and, once per iteration,
    turns every changed pod into a complete status snapshot;
  * a pool of writer threads: per-pod FIFO of operations (bind, status, delete), at most one
    operation in flight per pod, consecutive status snapshots coalesced (each is complete).
"""

import collections
import datetime
import hashlib
import heapq
import itertools
import logging
import os
import queue
import threading
import time

from kubernetes.client.rest import ApiException

from .config import ANNOTATION_PREFIX
from .kube import Gone
from .processes import ProcessConfig, ProcessManager

LOG = logging.getLogger("nodesim")
MANAGED_LABEL = "nodesim.meshops.io/managed"
ZONE_LABEL = "topology.kubernetes.io/zone"


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_repo(image):
    if "@" in image:
        return image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def image_id(image):
    """Stable digest derived from the image string (what `docker-pullable://` ids look like)."""
    return "docker-pullable://%s@sha256:%s" % (image_repo(image), hashlib.sha256(image.encode()).hexdigest())


def new_container_id():
    return "containerd://" + os.urandom(32).hex()


# ---------------------------------------------------------------------------------------------
# model


class Container:
    __slots__ = (
        "name", "init", "image", "restart_count", "container_id", "image_id", "state", "last_state",
        "ready", "started", "gen", "behaviour", "backoff", "exits", "has_post_start", "probe_delay",
        "pull_failures", "pspec", "proc", "prepared", "probe_fails", "sidecar", "mounts", "previous",
    )

    def __init__(self, name, init=False, sidecar=False, mounts=None):
        self.name = name
        self.init = init
        self.sidecar = sidecar  # a native sidecar: an init container with restartPolicy Always
        self.mounts = mounts or []
        self.image = None
        self.restart_count = 0
        self.container_id = None
        self.image_id = ""
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = None  # dict for lastState.terminated
        self.ready = False
        self.started = False
        self.gen = 0
        self.behaviour = {}
        self.backoff = 0.0
        self.exits = 0
        self.has_post_start = False
        self.probe_delay = 0.0
        self.pull_failures = 0
        self.pspec = None      # process mode: the processes.images entry of this instance's image
        self.proc = None       # process mode: the Handle of the newest process
        self.prepared = None   # process mode: argv/env/cwd/mounts/variables of this instance
        self.probe_fails = 0
        # after an in-place image change, until the new instance is created: (image, imageID) of the old one.
        # kubelet keeps reporting the old instance then (also while the new image cannot be pulled), and counts
        # the restart only when it creates the new instance (seen on kubelet v1.36, docs/real-nodes.md)
        self.previous = None

    def status(self):
        state = {"waiting": None, "running": None, "terminated": None}
        state.update(self.state)
        out = {
            "name": self.name,
            "image": self.previous[0] if self.previous else self.image,
            "imageID": self.previous[1] if self.previous else (self.image_id or ""),
            "containerID": self.container_id,
            "restartCount": self.restart_count,
            "ready": self.ready,
            "started": self.started,
            "state": state,
            "lastState": {"waiting": None, "running": None, "terminated": self.last_state},
        }
        if self.container_id:
            # kubelet >= 1.30 reports the mounts of a created container (RecursiveReadOnlyMounts)
            out["volumeMounts"] = [
                dict({"name": m.get("name"), "mountPath": m.get("mountPath")},
                     **({"readOnly": True, "recursiveReadOnly": "Disabled"} if m.get("readOnly") else {}))
                for m in self.mounts]
        return out

    @property
    def regular_init(self):
        return self.init and not self.sidecar

    @property
    def init_done(self):
        """kubelet's isInitContainerInitialized: a sidecar has started, a regular init container succeeded."""
        if self.sidecar:
            return self.started or self.kind == "running"
        return self.kind == "terminated" and self.state["terminated"].get("exitCode") == 0

    @property
    def kind(self):
        return next(iter(self.state))


class Pod:
    def __init__(self, obj, node):
        meta = obj["metadata"]
        self.ns = meta["namespace"]
        self.name = meta["name"]
        self.key = (self.ns, self.name)
        self.uid = meta["uid"]
        self.node = node
        self.spec = obj["spec"]
        self.annotations = meta.get("annotations") or {}
        self.labels = meta.get("labels") or {}
        self.restart_policy = self.spec.get("restartPolicy", "Always")
        self.init = [Container(c["name"], init=True, sidecar=c.get("restartPolicy") == "Always",
                               mounts=c.get("volumeMounts")) for c in self.spec.get("initContainers") or []]
        self.containers = collections.OrderedDict(
            (c["name"], Container(c["name"], mounts=c.get("volumeMounts"))) for c in self.spec.get("containers") or []
        )
        self.generation = meta.get("generation") or 1
        self.conditions = {}
        self.phase = "Pending"
        self.host_ip = None
        self.pod_ip = None
        self.start_time = None
        self.deleting = False
        self.delete_sent = False
        self.terminal = False
        self.readiness_gates = [g.get("conditionType") for g in self.spec.get("readinessGates") or []]
        self.gate_status = {}

    def spec_container(self, name, init=False):
        for c in self.spec.get("initContainers" if init else "containers") or []:
            if c["name"] == name:
                return c
        return {}

    def all_containers(self):
        return self.init + list(self.containers.values())


class Node:
    def __init__(self, name, zone, index):
        self.name = name
        self.zone = zone
        self.index = index
        self.ip = "10.240.0.%d" % (10 + index)
        self.images = set()
        self.next_ip = 0
        self.pods = 0
        self.labels = {}
        self.taints = []

    def alloc_ip(self):
        k = self.next_ip
        self.next_ip = (self.next_ip + 1) % (250 * 250)
        return "10.%d.%d.%d" % (100 + self.index % 150, k // 250, k % 250 + 2)


# ---------------------------------------------------------------------------------------------
# writer pool


class Writer:
    """Per-pod FIFO of API operations executed by a thread pool, one in flight per key."""

    def __init__(self, kube, threads):
        self.kube = kube
        self.cv = threading.Condition()
        self.queues = {}
        self.ready = collections.deque()
        self.queued = set()
        self.inflight = set()
        self.stop = False
        self.errors = 0
        self.writes = 0
        self.threads = [threading.Thread(target=self._run, name="writer-%d" % i, daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def submit(self, key, kind, payload):
        with self.cv:
            q = self.queues.setdefault(key, collections.deque())
            if kind == "status" and q and q[-1][0] == "status":
                q[-1] = (kind, payload)
            else:
                q.append((kind, payload))
            if key not in self.inflight and key not in self.queued:
                self.queued.add(key)
                self.ready.append(key)
                self.cv.notify()

    def pending(self):
        with self.cv:
            return sum(len(q) for q in self.queues.values()) + len(self.inflight)

    def _run(self):
        while True:
            with self.cv:
                while not self.ready and not self.stop:
                    self.cv.wait()
                if self.stop:
                    return
                key = self.ready.popleft()
                self.queued.discard(key)
                q = self.queues.get(key)
                if not q:
                    self.queues.pop(key, None)
                    continue
                op = q.popleft()
                self.inflight.add(key)
            try:
                self._execute(key, *op)
            finally:
                with self.cv:
                    self.inflight.discard(key)
                    q = self.queues.get(key)
                    if q:
                        self.queued.add(key)
                        self.ready.append(key)
                        self.cv.notify()
                    else:
                        self.queues.pop(key, None)

    def _drop(self, key):
        with self.cv:
            self.queues.pop(key, None)

    def _execute(self, key, kind, payload):
        # kubelet's status manager keeps re-sending a pod's latest status until the API server takes it; an
        # API server that restarts is gone for a few seconds, so status, bind and delete writes retry ~35 s
        # (events, best effort as in kubelet, ~3 s)
        for attempt in range(5 if kind == "event" else 40):
            try:
                payload_fn = payload[0]
                payload_fn(*payload[1:])
                self.writes += 1
                return
            except ApiException as exc:
                if exc.status == 404:
                    if kind in ("status", "delete", "bind"):
                        self._drop(key)
                    return
                if exc.status in (409, 422, 403, 400):
                    if kind != "event":
                        LOG.warning("%s %s: %s %s", kind, key, exc.status, (exc.body or exc.reason or "")[:300])
                    self.errors += 1
                    if kind == "bind":
                        self._drop(key)
                    return
                if exc.status in (429, 500, 503, 504):
                    time.sleep(min(1.0, 0.2 * (attempt + 1)))
                    continue
                LOG.warning("%s %s: %s", kind, key, exc)
                self.errors += 1
                return
            except Exception as exc:  # connection errors: retry
                LOG.warning("%s %s: %s (attempt %d)", kind, key, exc, attempt + 1)
                time.sleep(min(1.0, 0.2 * (attempt + 1)))
        self.errors += 1


# ---------------------------------------------------------------------------------------------
# simulator


class Simulator:
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

    # ----------------------------------------------------------------- nodes
    def register_nodes(self):
        wanted = []
        if self.kubelet_version is None:  # what a kubelet of the control plane's build reports
            self.kubelet_version = self.kube.server_version() if hasattr(self.kube, "server_version") else "v0.0.0"
        for i in range(self.node_count):
            name = "%s%d" % (self.node_prefix, i)
            zone = self.zones[i % len(self.zones)]
            node = Node(name, zone, i)
            node.labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                ZONE_LABEL: zone,
                "failure-domain.beta.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": "sim",
                "node.kubernetes.io/instance-type": "nodesim",
                MANAGED_LABEL: "true",
            }
            self.nodes[name] = node
            wanted.append(name)
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": node.labels,
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0", "nodesim.meshops.io/simulated": "true"},
                },
                "spec": {"podCIDR": "10.%d.0.0/16" % (100 + i % 150), "podCIDRs": ["10.%d.0.0/16" % (100 + i % 150)]},
            }
            try:
                self.kube.create_node(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                self.kube.patch_node(name, {"metadata": {"labels": node.labels}, "spec": {"unschedulable": False}})
            self.kube.patch_node_status(name, self.node_status(node))
            # The apiserver's TaintNodesByCondition admission gives every new node the
            # node.kubernetes.io/not-ready:NoSchedule taint; the node lifecycle controller (off
            # here) would remove it once the node is Ready. DaemonSet pods do not tolerate it.
            self.kube.patch_node(name, {"spec": {"taints": None}})
        for item in self.kube.list_nodes(MANAGED_LABEL + "=true"):
            name = item["metadata"]["name"]
            if name not in self.nodes:
                LOG.info("deleting stale simulated node %s", name)
                try:
                    self.kube.delete_node(name)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        LOG.info("registered %d nodes: %s", len(wanted), ", ".join(wanted))

    def node_status(self, node):
        ts = now_ts()

        def cond(ctype, status, reason, msg):
            return {"type": ctype, "status": status, "reason": reason, "message": msg,
                    "lastHeartbeatTime": ts, "lastTransitionTime": ts}

        resources = {"cpu": "32", "memory": "128Gi", "pods": "1000", "ephemeral-storage": "500Gi"}
        return {
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (nodesim)"),
                ],
                "addresses": [{"type": "InternalIP", "address": node.ip}, {"type": "Hostname", "address": node.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": hashlib.md5(node.name.encode()).hexdigest(),
                    "systemUUID": hashlib.md5(("uuid" + node.name).encode()).hexdigest(),
                    "bootID": hashlib.md5(("boot" + node.name).encode()).hexdigest(),
                    "kernelVersion": "5.10.0-nodesim",
                    "osImage": "nodesim (Debian GNU/Linux 12)",
                    "containerRuntimeVersion": "containerd://1.6.20",
                    "kubeletVersion": self.kubelet_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }

    def heartbeat(self):
        for node in self.nodes.values():
            ts = now_ts()
            body = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": ts}]}}
            self.writer.submit(("node", node.name), "node", (self.kube.patch_node_status, node.name, body))

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

    # ----------------------------------------------------------------- scheduling
    def _group(self, obj):
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller"):
                return ref.get("uid")
        return "%s/%s" % (meta["namespace"], meta.get("generateName") or meta["name"])

    @staticmethod
    def _match_expr(expr, value, present):
        op = expr.get("operator")
        values = expr.get("values") or []
        if op == "In":
            return present and value in values
        if op == "NotIn":
            return not present or value not in values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op in ("Gt", "Lt") and present:
            try:
                return int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0])
            except (ValueError, IndexError):
                return False
        return False

    @staticmethod
    def _tolerates(spec, taint):
        for tol in spec.get("tolerations") or []:
            if tol.get("effect") and tol["effect"] != taint.get("effect"):
                continue
            if tol.get("operator") == "Exists":
                if not tol.get("key") or tol["key"] == taint.get("key"):
                    return True
            elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
                return True
        return False

    def _fits(self, node, spec):
        for taint in node.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not self._tolerates(spec, taint):
                return False
        for k, v in (spec.get("nodeSelector") or {}).items():
            if node.labels.get(k) != v:
                return False
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        if affinity and affinity.get("nodeSelectorTerms"):
            ok_any = False
            for term in affinity["nodeSelectorTerms"]:
                ok = True
                for expr in term.get("matchExpressions") or []:
                    key = expr.get("key")
                    if not self._match_expr(expr, node.labels.get(key), key in node.labels):
                        ok = False
                        break
                for expr in term.get("matchFields") or []:
                    if expr.get("key") == "metadata.name" and not self._match_expr(expr, node.name, True):
                        ok = False
                        break
                if ok and (term.get("matchExpressions") or term.get("matchFields")):
                    ok_any = True
                    break
            if not ok_any:
                return False
        return True

    def schedule(self, obj):
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        sched = spec.get("schedulerName") or "default-scheduler"
        if sched != "default-scheduler":
            return
        candidates = [n for n in self.nodes.values() if self._fits(n, spec)]
        if not candidates:
            if self.unschedulable.get(key) != meta["uid"]:
                self.unschedulable[key] = meta["uid"]
                msg = "0/%d nodes are available: %d node(s) didn't match node selector." % (
                    len(self.nodes), len(self.nodes))
                body = {"status": {"phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg,
                    "lastProbeTime": None, "lastTransitionTime": now_ts()}]}}
                self.writer.submit(key, "status", (self.kube.patch_pod_status, key[0], key[1], body))
                self.event(key[0], key[1], meta["uid"], None, None, "FailedScheduling", msg, "Warning",
                           component="default-scheduler")
            return
        group = self._group(obj)
        counts = self.group_zone[group]
        zone_load = collections.Counter()
        for n in self.nodes.values():
            zone_load[n.zone] += n.pods
        node = min(candidates, key=lambda n: (counts[n.zone], zone_load[n.zone], n.pods, n.index))
        node.pods += 1
        counts[node.zone] += 1
        self.pod_group[key] = (group, node.name)
        self.binding[key] = meta["uid"]
        self.unschedulable.pop(key, None)
        self.writer.submit(key, "bind", (self.kube.bind_pod, key[0], key[1], meta["uid"], node.name))
        self.event(key[0], key[1], meta["uid"], None, None, "Scheduled",
                   "Successfully assigned %s/%s to %s" % (key[0], key[1], node.name), component="default-scheduler")

    # ----------------------------------------------------------------- pod lifecycle
    def adopt(self, obj, node_name):
        """Create the model for a pod bound to one of our nodes (new, or known before a restart)."""
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        node = self.nodes[node_name]
        pod = Pod(obj, node_name)
        self.pods[key] = pod
        if key not in self.pod_group:
            group = self._group(obj)
            node.pods += 1
            self.group_zone[group][node.zone] += 1
            self.pod_group[key] = (group, node_name)
        status = obj.get("status") or {}
        pod.host_ip = node.ip
        pod.pod_ip = node.ip if pod.spec.get("hostNetwork") else (status.get("podIP") or node.alloc_ip())
        pod.start_time = status.get("startTime") or now_ts()
        for cond in status.get("conditions") or []:
            pod.conditions[cond["type"]] = (cond.get("status"), cond.get("lastTransitionTime") or now_ts())
        if status.get("phase") in ("Succeeded", "Failed"):
            pod.terminal = True
            pod.phase = status["phase"]
            return pod
        known = {cs["name"]: cs for cs in status.get("containerStatuses") or []}
        known_init = {cs["name"]: cs for cs in status.get("initContainerStatuses") or []}
        resumed = False
        if known and all(cs.get("containerID") for cs in known.values()):
            # resume a pod we (or an earlier simulator process) already ran
            for c in pod.all_containers():
                cs = (known_init if c.init else known).get(c.name) or {}
                c.image = cs.get("image") or pod.spec_container(c.name, c.init).get("image")
                c.restart_count = cs.get("restartCount", 0)
                c.container_id = cs.get("containerID")
                c.image_id = cs.get("imageID") or ""
                c.state = {k: v for k, v in (cs.get("state") or {}).items() if v} or {"waiting": {"reason": "ContainerCreating"}}
                c.last_state = (cs.get("lastState") or {}).get("terminated")
                c.ready = bool(cs.get("ready"))
                c.started = bool(cs.get("started"))
                c.behaviour = self.behaviour(pod, c)
                node.images.add(c.image)
            resumed = True
            if self.procs:
                self.restart_lost_processes(pod)
            for c in pod.containers.values():
                if c.pspec:
                    continue
                if c.kind == "running":
                    if not c.ready and not c.behaviour.get("neverReady"):
                        self.after(0, self.set_ready, pod, c, c.gen)
                elif c.kind != "terminated":
                    self.start_instance(pod, c)
            LOG.debug("resumed %s/%s on %s", pod.ns, pod.name, node_name)
        if not resumed:
            for c in pod.containers.values():
                c.image = pod.spec_container(c.name).get("image")
                reason = "PodInitializing" if pod.init else "ContainerCreating"
                c.state = {"waiting": {"reason": reason}}
            for c in pod.init:
                c.image = pod.spec_container(c.name, True).get("image")
                c.state = {"waiting": {"reason": "PodInitializing"}}
            if pod.init:
                self.start_instance(pod, pod.init[0])
            else:
                for c in pod.containers.values():
                    self.start_instance(pod, c)
        self.dirty.add(key)
        return pod

    def behaviour(self, pod, c):
        image = c.image or ""
        try:
            return self.cfg.behaviour(image, c.name, pod.ns, pod.annotations, seed=pod.name)
        except ValueError as exc:
            LOG.warning("%s/%s: %s; ignoring the pod's nodesim annotations", pod.ns, pod.name, exc)
            return self.cfg.behaviour(image, c.name, pod.ns, None)

    def start_instance(self, pod, c):
        """Start (or restart) one container instance: pull -> create -> postStart -> running."""
        spec = pod.spec_container(c.name, c.init)
        c.gen += 1
        c.image = spec.get("image") or c.image
        c.behaviour = b = self.behaviour(pod, c)
        c.ready = False
        c.started = False
        c.container_id = None
        c.image_id = ""
        c.has_post_start = bool(((spec.get("lifecycle") or {}).get("postStart")))
        c.pspec = self.procs.cfg.image_spec(c.image) if self.procs else None
        c.probe_fails = 0
        probe = spec.get("readinessProbe")
        c.probe_delay = float((probe or {}).get("initialDelaySeconds") or 0) * float(b.get("probeTimeScale") or 0)
        node = self.nodes[pod.node]
        c.state = {"waiting": {"reason": "ContainerCreating"}}
        self.dirty.add(pod.key)
        policy = spec.get("imagePullPolicy") or ("Always" if c.image.endswith(":latest") or ":" not in c.image.rsplit("/", 1)[-1] else "IfNotPresent")
        needs_pull = b.get("pullFailure") or b.get("alwaysPull") or policy == "Always" or c.image not in node.images
        if policy == "Never" and c.image not in node.images and not b.get("alwaysPull"):
            c.state = {"waiting": {"reason": "ErrImageNeverPull",
                                   "message": 'Container image "%s" is not present with pull policy of Never' % c.image}}
            return
        if needs_pull:
            c.state = {"waiting": {"reason": "ContainerCreating", "message": 'Pulling image "%s"' % c.image}}
            self.event_c(pod, c, "Pulling", 'Pulling image "%s"' % c.image)
            self.after(b.get("pullDelay"), self.pulled, pod, c, c.gen)
        else:
            self.after(b.get("startDelay"), self.created, pod, c, c.gen)

    def pulled(self, pod, c, gen):
        if not self.valid(pod, c, gen):
            return
        b = c.behaviour
        if b.get("pullFailure"):
            c.pull_failures += 1
            msg = ('rpc error: code = NotFound desc = failed to pull and unpack image "%s": '
                   'failed to resolve reference "%s": not found (nodesim)' % (c.image, c.image))
            c.state = {"waiting": {"reason": "ErrImagePull", "message": msg}}
            self.event_c(pod, c, "Failed", 'Failed to pull image "%s": %s' % (c.image, msg), "Warning")
            self.event_c(pod, c, "Failed", "Error: ErrImagePull", "Warning")
            self.dirty.add(pod.key)
            delay = min(self.backoff_max, self.pull_backoff_initial * (2 ** min(c.pull_failures - 1, 10)))
            self.after(min(delay, 0.5) if delay else 0, self.pull_backoff, pod, c, gen, delay)
            return
        self.nodes[pod.node].images.add(c.image)
        self.event_c(pod, c, "Pulled", 'Successfully pulled image "%s" in %dms' % (c.image, int((b.get("pullDelay") or 0) * 1000)))
        self.after(b.get("startDelay"), self.created, pod, c, gen)

    def pull_backoff(self, pod, c, gen, delay):
        if not self.valid(pod, c, gen):
            return
        c.state = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "%s"' % c.image}}
        self.event_c(pod, c, "BackOff", 'Back-off pulling image "%s"' % c.image, "Normal")
        self.dirty.add(pod.key)
        self.after(delay, self.retry_pull, pod, c, gen)

    def retry_pull(self, pod, c, gen):
        if not self.valid(pod, c, gen):
            return
        c.behaviour = self.behaviour(pod, c)  # a changed annotation may fix the pull
        self.event_c(pod, c, "Pulling", 'Pulling image "%s"' % c.image)
        self.after(c.behaviour.get("pullDelay"), self.pulled, pod, c, gen)

    def created(self, pod, c, gen):
        if not self.valid(pod, c, gen):
            return
        if c.pspec and c.proc is not None and c.proc.alive:
            # kubelet starts the new instance only once the old one is gone
            self.procs.stop(c.proc, self.stop_grace(pod), then=lambda _h, _rc: self.created(pod, c, gen),
                            after=self.after)
            return
        c.pull_failures = 0
        if c.previous is not None:
            c.previous = None
            c.restart_count += 1
        c.container_id = new_container_id()
        c.image_id = image_id(c.image)
        if c.pspec and not self.spawn(pod, c, gen):
            return
        self.event_c(pod, c, "Created", "Created container %s" % c.name)
        self.event_c(pod, c, "Started", "Started container %s" % c.name)
        hook_cmd = ((((pod.spec_container(c.name, c.init).get("lifecycle") or {}).get("postStart") or {})
                     .get("exec") or {}).get("command"))
        if c.has_post_start and c.pspec and hook_cmd:
            c.state = {"waiting": {"reason": "ContainerCreating", "message": "running postStart hook"}}
            self.dirty.add(pod.key)
            prep = c.prepared
            argv = self.procs.exec_argv(hook_cmd, prep["variables"], prep["mounts"])
            self.procs.run_exec(argv, prep["env"], prep["cwd"], self.procs.cfg.hook_timeout,
                                self.post_start_result, pod, c, gen, argv)
            return
        if c.has_post_start:
            c.state = {"waiting": {"reason": "ContainerCreating", "message": "running postStart hook"}}
            self.dirty.add(pod.key)
            self.after(c.behaviour.get("postStartDuration"), self.post_start_done, pod, c, gen)
        else:
            self.running(pod, c)

    def post_start_done(self, pod, c, gen, failed_rc=None, output=""):
        if not self.valid(pod, c, gen):
            return
        if failed_rc is not None or c.behaviour.get("postStartFailure"):
            hook = (pod.spec_container(c.name, c.init).get("lifecycle") or {}).get("postStart") or {}
            cmd = (hook.get("exec") or {}).get("command") or ["<postStart>"]
            code = 1 if failed_rc is None else failed_rc
            msg = "Exec lifecycle hook (%s) for Container \"%s\" in Pod \"%s_%s(%s)\" failed - error: command '%s' exited with %d: %s" % (
                cmd, c.name, pod.name, pod.ns, pod.uid, " ".join(map(str, cmd)), code,
                output.strip()[-500:] if failed_rc is not None else "(nodesim)")
            self.event_c(pod, c, "FailedPostStartHook", msg, "Warning")
            self.event_c(pod, c, "Killing", "FailedPostStartHook", "Normal")
            if c.pspec and c.proc is not None:
                self.procs.stop(c.proc, self.stop_grace(pod), after=self.after)
            started = now_ts()
            self.exited(pod, c, 137, "Error", started, waiting_reason="PostStartHookError",
                        waiting_message="Exec lifecycle hook (%s) for Container \"%s\" failed - error: exited with 1" % (cmd, c.name))
            return
        self.running(pod, c)

    def running(self, pod, c):
        gen = c.gen
        c.state = {"running": {"startedAt": now_ts()}}
        c.started = True
        self.dirty.add(pod.key)
        b = c.behaviour
        if c.sidecar:
            self.after(0, self.init_finished, pod, c, gen)
        if c.pspec:
            probe = pod.spec_container(c.name, c.init).get("readinessProbe") or {}
            if c.regular_init:
                pass
            elif (probe.get("exec") or {}).get("command"):
                self.after(float(probe.get("initialDelaySeconds") or 0), self.probe, pod, c, gen)
            else:
                c.ready = True
            return  # the process decides when it exits
        if not b.get("neverReady") and not c.regular_init:
            delay = b.get("readyDelay")
            if delay is None:
                delay = c.probe_delay if pod.spec_container(c.name, c.init).get("readinessProbe") else 0.0
            if delay:
                self.after(delay, self.set_ready, pod, c, gen)
            else:
                c.ready = True
        crash = b.get("crashAfter")
        if c.regular_init and crash is None:
            crash, code = 0.0, 0
        else:
            code = b.get("exitCode") if b.get("exitCode") is not None else 1
        if crash is not None:
            self.after(crash, self.crash, pod, c, gen, code)

    # ----------------------------------------------------------------- process mode
    def stop_grace(self, pod):
        if self.procs.cfg.stop_grace is not None:
            return float(self.procs.cfg.stop_grace)
        grace = pod.spec.get("terminationGracePeriodSeconds")
        return float(30 if grace is None else grace)

    def pod_meta(self, pod):
        return {"name": pod.name, "namespace": pod.ns, "uid": pod.uid, "annotations": pod.annotations,
                "labels": pod.labels, "nodeName": pod.node, "podIP": pod.pod_ip, "hostIP": pod.host_ip,
                "serviceAccountName": pod.spec.get("serviceAccountName") or "default"}

    def spawn(self, pod, c, gen):
        """Start the process of a new container instance; False (and a restart later) if it cannot."""
        spec = pod.spec_container(c.name, c.init)
        try:
            volumes = [v.get("name") for v in pod.spec.get("volumes") or [] if v.get("name")]
            blk = self.procs.block(pod.key, pod.uid, pod.node, volumes)
            # downward API env from the pod's annotations as they are now, at this container start
            c.prepared = self.procs.prepare(blk, c.pspec, spec, self.pod_meta(pod))
            c.proc = self.procs.start(blk, c.name, gen, c.image, c.prepared, self.proc_exited)
            return True
        except (OSError, RuntimeError, ValueError) as exc:
            LOG.warning("%s/%s %s: cannot start: %s", pod.ns, pod.name, c.name, exc)
            self.event_c(pod, c, "Failed", "Error: failed to start container %s: %s" % (c.name, exc), "Warning")
            self.exited(pod, c, 128, "StartError", now_ts())
            return False

    def post_start_result(self, pod, c, gen, argv, rc, output):
        if not self.valid(pod, c, gen):
            return
        if rc == 0:
            self.running(pod, c)
            return
        LOG.info("%s/%s %s: postStart %s exited %d: %s", pod.ns, pod.name, c.name, argv, rc, output.strip()[-300:])
        self.post_start_done(pod, c, gen, failed_rc=rc, output=output)

    def probe(self, pod, c, gen):
        if not self.valid(pod, c, gen) or c.kind != "running" or pod.deleting:
            return
        probe = pod.spec_container(c.name, c.init).get("readinessProbe") or {}
        prep = c.prepared
        argv = self.procs.exec_argv(probe["exec"]["command"], prep["variables"], prep["mounts"])
        timeout = float(probe.get("timeoutSeconds") or 1)
        self.procs.run_exec(argv, prep["env"], prep["cwd"], timeout, self.probe_done, pod, c, gen, probe)

    def probe_done(self, pod, c, gen, probe, rc, output):
        if not self.valid(pod, c, gen) or c.kind != "running" or pod.deleting:
            return
        if rc == 0:
            c.probe_fails = 0
            if not c.ready:
                c.ready = True
                self.dirty.add(pod.key)
        else:
            c.probe_fails += 1
            LOG.info("%s/%s %s: readiness probe failed (%d in a row, exit %d): %s", pod.ns, pod.name, c.name,
                     c.probe_fails, rc, output.strip()[-300:])
            self.event_c(pod, c, "Unhealthy", "Readiness probe failed: %s" % output.strip()[-300:], "Warning")
            if c.ready and c.probe_fails >= int(probe.get("failureThreshold") or 3):
                c.ready = False
                self.dirty.add(pod.key)
        self.after(float(probe.get("periodSeconds") or 10), self.probe, pod, c, gen)

    def proc_exited(self, handle, rc):
        """A container's process ended by itself (not stopped by us): the container exited."""
        pod = self.pods.get(handle.block.key)
        if pod is None or pod.uid != handle.block.uid or pod.deleting:
            return
        c = next((x for x in pod.all_containers() if x.name == handle.container), None)
        if c is None or c.proc is not handle or c.gen != handle.gen:
            return
        code = rc if rc >= 0 else 128 - rc
        started = (c.state.get("running") or {}).get("startedAt") or now_ts()
        self.exited(pod, c, code, "Completed" if code == 0 else "Error", started)

    def restart_lost_processes(self, pod):
        """nodesim restarted: the processes it ran are gone; start every process container again."""
        for c in pod.all_containers():
            c.pspec = self.procs.cfg.image_spec(c.image) if c.image else None
            if not c.pspec or c.kind == "terminated":
                continue
            if c.container_id:
                started = (c.state.get("running") or {}).get("startedAt") or now_ts()
                c.last_state = {"exitCode": 137, "reason": "Error", "startedAt": started, "finishedAt": now_ts(),
                                "containerID": c.container_id, "message": "nodesim restarted"}
                c.restart_count += 1
            self.start_instance(pod, c)

    def init_finished(self, pod, c, gen):
        """An init container succeeded (or a native sidecar started): start the next one, or the app containers."""
        if not self.valid(pod, c, gen) or pod.deleting:
            return
        idx = pod.init.index(c)
        if any(not ic.init_done for ic in pod.init[: idx + 1]):
            return
        nxt = pod.init[idx + 1] if idx + 1 < len(pod.init) else None
        if nxt is not None:
            if nxt.container_id is None and nxt.gen == 0:
                self.start_instance(pod, nxt)
            return
        for mc in pod.containers.values():
            if mc.container_id is None and mc.gen == 0:
                self.start_instance(pod, mc)

    def set_ready(self, pod, c, gen):
        if not self.valid(pod, c, gen) or c.kind != "running" or pod.deleting:
            return
        c.ready = True
        self.dirty.add(pod.key)

    def crash(self, pod, c, gen, code):
        if not self.valid(pod, c, gen) or pod.deleting:
            return
        started = (c.state.get("running") or {}).get("startedAt") or now_ts()
        reason = "Completed" if code == 0 else "Error"
        self.exited(pod, c, code, reason, started)

    def exited(self, pod, c, code, reason, started, waiting_reason=None, waiting_message=None):
        """Container instance ended; restart it if the restart policy says so."""
        c.gen += 1
        gen = c.gen
        term = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now_ts(),
                "containerID": c.container_id}
        c.ready = False
        c.started = False
        self.dirty.add(pod.key)
        if c.regular_init:
            c.state = {"terminated": term}
            if code == 0:
                c.ready = True  # kubelet reports a succeeded init container as ready
                self.init_finished(pod, c, gen)
                return
        restart = c.sidecar or pod.restart_policy == "Always" or (pod.restart_policy == "OnFailure" and code != 0)
        if not restart:
            c.state = {"terminated": term}
            return
        c.exits += 1
        c.last_state = term
        c.restart_count += 1
        if c.exits == 1 and not waiting_reason:
            # kubelet restarts a container right away the first time
            self.start_instance(pod, c)
            return
        c.backoff = self.backoff_initial if not c.backoff else min(self.backoff_max, c.backoff * 2)
        if waiting_reason:
            c.state = {"waiting": {"reason": waiting_reason, "message": waiting_message}}
            self.after(min(0.2, c.backoff / 2), self.crash_loop, pod, c, gen)
        else:
            self.crash_loop(pod, c, gen)

    def crash_loop(self, pod, c, gen):
        if not self.valid(pod, c, gen):
            return
        msg = "back-off %ss restarting failed container=%s pod=%s_%s(%s)" % (
            ("%g" % c.backoff), c.name, pod.name, pod.ns, pod.uid)
        c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}
        self.event_c(pod, c, "BackOff", "Back-off restarting failed container", "Warning")
        self.dirty.add(pod.key)
        self.after(c.backoff, self.restart_after_backoff, pod, c, gen)

    def restart_after_backoff(self, pod, c, gen):
        if not self.valid(pod, c, gen) or pod.deleting:
            return
        self.start_instance(pod, c)

    def image_changed(self, pod, c, image):
        """In-place image update: kubelet kills only this container and starts it with the new image."""
        LOG.debug("%s/%s container %s image %s -> %s", pod.ns, pod.name, c.name, c.image, image)
        self.event_c(pod, c, "Killing", "Container %s definition changed, will be restarted" % c.name)
        if c.container_id:
            started = (c.state.get("running") or {}).get("startedAt") or (c.state.get("terminated") or {}).get("startedAt") or now_ts()
            c.last_state = {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now_ts(),
                            "containerID": c.container_id}
            if c.previous is None:
                c.previous = (c.image, c.image_id or "")
        c.exits = 0
        c.backoff = 0.0
        c.pull_failures = 0
        if self.procs and c.proc is not None and c.proc.alive:
            # SIGTERM now; created() starts the new process only after the old one exited
            self.procs.stop(c.proc, self.stop_grace(pod), after=self.after)
        self.start_instance(pod, c)

    def begin_delete(self, pod, meta):
        pod.deleting = True
        for c in pod.all_containers():
            c.gen += 1
            if c.kind == "running":
                self.event_c(pod, c, "Killing", "Stopping container %s" % c.name)
        delay = min((c.behaviour.get("terminationDelay") or 0.0) for c in pod.all_containers()) if pod.all_containers() else 0.0
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is not None:
            delay = min(delay, float(grace))
        live = [c.proc for c in pod.all_containers() if c.proc is not None and c.proc.alive] if self.procs else []
        if live:
            # real processes: SIGTERM, SIGKILL after the grace period; the pod is gone once all exited
            left = set(live)
            kill_after = float(grace) if grace is not None else self.stop_grace(pod)

            def one_exited(handle, _rc):
                left.discard(handle)
                if not left:
                    self.finish_delete(pod)

            for handle in live:
                self.procs.stop(handle, kill_after, then=one_exited, after=self.after)
            return
        self.after(delay, self.finish_delete, pod)

    def finish_delete(self, pod):
        if not self.valid(pod) or pod.delete_sent:
            return
        ts = now_ts()
        for c in pod.all_containers():
            if c.kind == "terminated":
                continue
            started = (c.state.get("running") or {}).get("startedAt")
            if started:
                c.state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                          "finishedAt": ts, "containerID": c.container_id}}
            else:
                c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown", "finishedAt": ts,
                                          "message": "The container could not be located when the pod was terminated"}}
            c.ready = False
            c.started = False
        self.submit_status(pod)
        self.dirty.discard(pod.key)
        pod.delete_sent = True
        self.writer.submit(pod.key, "delete", (self.kube.delete_pod_now, pod.ns, pod.name, pod.uid))

    # ----------------------------------------------------------------- status
    def phase(self, pod):
        if pod.terminal:
            return pod.phase
        if any(not c.init_done for c in pod.init) and not any(c.container_id or c.last_state for c in pod.containers.values()):
            failed_init = any(c.kind == "terminated" and c.state["terminated"].get("exitCode") for c in pod.init if c.regular_init)
            if failed_init and pod.restart_policy == "Never":
                return "Failed"
            return "Pending"
        pending = running = stopped = succeeded = failed = 0
        for c in pod.containers.values():
            kind = c.kind
            if kind == "running":
                running += 1
            elif kind == "terminated":
                stopped += 1
                if c.state["terminated"].get("exitCode") == 0:
                    succeeded += 1
                else:
                    failed += 1
            elif c.last_state:
                stopped += 1
            else:
                pending += 1
        if pending:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            if pod.restart_policy == "Always":
                return "Running"
            if pod.restart_policy == "OnFailure":
                return "Succeeded" if succeeded == stopped else "Running"
            return "Failed" if failed else "Succeeded"
        return "Pending"

    def _cond(self, pod, ctype, status, reason=None, message=None):
        old = pod.conditions.get(ctype)
        ts = old[1] if old and old[0] == status else now_ts()
        pod.conditions[ctype] = (status, ts)
        return {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": ts,
                "reason": reason, "message": message}

    def snapshot(self, pod):
        phase = self.phase(pod)
        pod.phase = phase
        # kubelet's generateAPIPodStatus order (pkg/kubelet/kubelet_pods.go): PodReadyToStartContainers,
        # Initialized, Ready, ContainersReady, PodScheduled; each with the pod's generation (1.35+, GA)
        conds = [self._cond(pod, "PodReadyToStartContainers", "True")]
        if all(c.init_done for c in pod.init) or any(c.started or c.last_state for c in pod.containers.values()):
            conds.append(self._cond(pod, "Initialized", "True"))
        else:
            waiting = [c.name for c in pod.init if not c.init_done]
            conds.append(self._cond(pod, "Initialized", "False", "ContainersNotInitialized",
                                    "containers with incomplete status: [%s]" % " ".join(waiting)))
        # status.GenerateContainersReadyCondition: native sidecars count as containers
        not_ready = [c.name for c in pod.init if c.sidecar and not c.ready] + [c.name for c in pod.containers.values() if not c.ready]
        if phase == "Succeeded":
            ready = self._cond(pod, "Ready", "False", "PodCompleted")
            containers_ready = self._cond(pod, "ContainersReady", "False", "PodCompleted")
        elif not_ready:
            msg = "containers with unready status: [%s]" % " ".join(not_ready)
            containers_ready = self._cond(pod, "ContainersReady", "False", "ContainersNotReady", msg)
            ready = self._cond(pod, "Ready", "False", "ContainersNotReady", msg)
        else:
            containers_ready = self._cond(pod, "ContainersReady", "True")
            gates_bad = [g for g in pod.readiness_gates if pod.gate_status.get(g) != "True"]
            if gates_bad:
                ready = self._cond(pod, "Ready", "False", "ReadinessGatesNotReady",
                                   "corresponding condition of pod readiness gate \"%s\" does not exist." % gates_bad[0])
            else:
                ready = self._cond(pod, "Ready", "True")
        conds += [ready, containers_ready, self._cond(pod, "PodScheduled", "True")]
        for cond in conds:
            cond["observedGeneration"] = pod.generation
        status = {
            "observedGeneration": pod.generation,
            "phase": phase,
            "hostIP": pod.host_ip,
            "hostIPs": [{"ip": pod.host_ip}],
            "podIP": pod.pod_ip,
            "podIPs": [{"ip": pod.pod_ip}],
            "startTime": pod.start_time,
            "conditions": conds,
            "containerStatuses": [c.status() for c in pod.containers.values()],
        }
        if pod.init:
            status["initContainerStatuses"] = [c.status() for c in pod.init]
        return {"status": status}

    def submit_status(self, pod):
        body = self.snapshot(pod)
        self.writer.submit(pod.key, "status", (self.kube.patch_pod_status, pod.ns, pod.name, body))

    def flush(self):
        if self.procs:
            self.procs.write_status()
        if not self.dirty:
            return
        for key in self.dirty:
            pod = self.pods.get(key)
            if pod is None or pod.delete_sent:
                continue
            self.submit_status(pod)
        self.dirty.clear()

    # ----------------------------------------------------------------- events
    def event_c(self, pod, c, reason, message, etype="Normal"):
        field = "spec.%s{%s}" % ("initContainers" if c.init else "containers", c.name)
        self.event(pod.ns, pod.name, pod.uid, pod.node, field, reason, message, etype)

    def event(self, ns, name, uid, node, field, reason, message, etype="Normal", component="kubelet"):
        if not self.events:
            return
        ts = now_ts()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "%s.%x%04x" % (name, time.time_ns(), next(self.event_seq) % 65536), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name, "uid": uid,
                               "fieldPath": field},
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": component, "host": node} if node else {"component": component},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": node or "",
        }
        if field is None:
            del body["involvedObject"]["fieldPath"]
        self.writer.submit(("event", next(self.event_seq) % 4), "event", (self.kube.create_event, ns, body))


__all__ = ["Simulator", "image_id", "image_repo", "ANNOTATION_PREFIX", "MANAGED_LABEL", "ZONE_LABEL"]
