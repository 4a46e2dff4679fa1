"""The simulator's model of pods, containers and nodes, and the image/ID helpers."""

import collections
import datetime
import hashlib
import os

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
