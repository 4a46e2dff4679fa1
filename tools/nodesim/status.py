"""The pod status a kubelet reports: phase, conditions, container statuses, one complete snapshot per change.

A part of ``simulator.Simulator`` (its state is the simulator's); see ``simulator.py`` for the loop and timers."""


from .model import now_ts


class Status:
    """The pod status a kubelet reports."""

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
