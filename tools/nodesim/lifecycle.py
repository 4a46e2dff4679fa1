"""The pod lifecycle of a kubelet: adopt a bound pod, pull, create, postStart, run, an image changed in place.

A part of ``simulator.Simulator`` (its state is the simulator's); see ``simulator.py`` for the loop and timers."""

import logging

from .model import Pod, image_id, new_container_id, now_ts

LOG = logging.getLogger("nodesim")


class Lifecycle:
    """The pod lifecycle of a kubelet."""

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
