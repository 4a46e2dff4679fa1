"""Process mode (real processes per container), exits, crashes, restarts with backoff, deletion.

A part of ``simulator.Simulator`` (its state is the simulator's); see ``simulator.py`` for the loop and timers."""

import logging

from .model import now_ts

LOG = logging.getLogger("nodesim")


class ProcessMode:
    """Process mode."""

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
