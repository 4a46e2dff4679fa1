"""The Kubernetes events a kubelet records.

A part of ``simulator.Simulator`` (its state is the simulator's); see ``simulator.py`` for the loop and timers."""

import time

from .model import now_ts


class Events:
    """The Kubernetes events a kubelet records.."""

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
