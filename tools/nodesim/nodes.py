"""The simulated nodes: registration, status and the heartbeat (the node half of a kubelet).

A part of ``simulator.Simulator`` (its state is the simulator's); see ``simulator.py`` for the loop and timers."""

import hashlib
import logging

from kubernetes.client.rest import ApiException

from .model import MANAGED_LABEL, Node, ZONE_LABEL, now_ts

LOG = logging.getLogger("nodesim")


class Nodes:
    """The simulated nodes."""

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
