"""Scheduling: the node a pending pod is bound to (node selector, affinity, taints, resources).

A part of ``simulator.Simulator`` (its state is the simulator's); see ``simulator.py`` for the loop and timers."""

import collections

from .model import now_ts


class Scheduling:
    """Scheduling."""

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
