# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One assessment of a pod for one SidecarSet: every fact computed once, the phase and the next action read from it.

``assess(pod, sidecarset)`` returns an ``Assessment``: the refusal reason, per sidecar the working and empty twin
and per pod container its image, readiness, consistency and failure, whether the pod is updated, consistent and
ready and what blocks the reset. From these facts it reads

* ``phase`` / ``reason``: where the pod is (``PHASE_*``; the rules are in ``Assessment._phase``);
* ``action`` / ``action_reason``: what to do next (``ACTION_*``; ``Assessment._action``). ``hotupgrade.plan_next``
  turns the action into the write.

A pod whose new twin failed has the phase ``failed`` and the action ``fail`` (nothing to write: the old twin
keeps serving; a driver asked to roll back calls ``hotupgrade.plan_rollback``), never ``wait``.

The upstream logic each fact follows is named where it is computed, as ``file.go:function`` of
``pkg/control/sidecarcontrol/`` in openkruise/kruise (``util.go``, ``sidecarset_hotupgrade.go``) and
``pkg/controller/sidecarset/sidecarset_processor.go``; ``docs/kruise-mapping.md`` lists them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import hot_upgrade_names
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    container_failure,
    container_image,
    container_status,
    is_container_ready,
    is_pod_state_consistent,
    is_pod_updated,
    is_running_and_ready,
    is_started,
    not_upgradable_reason,
    working_and_empty,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    empty_image,
    is_hot_upgrade,
    sidecar_containers,
    sidecarset_name,
    update_strategy,
)

# ---------------------------------------------------------------------------------------------------------
# The words: every phase and action has its one spelling here
# ---------------------------------------------------------------------------------------------------------

# Phases a pod is found in (sidecarset_info, the pods inventory, sidecar_upgrade's per-pod result)
PHASE_IDLE = "idle"                      # not updated, nothing in flight
PHASE_UPGRADING = "upgrading"            # a new image is written, kubelet has not applied it
PHASE_MIGRATING = "migrating"            # the new twin runs: postStart, readiness, or only the reset left
PHASE_RESETTING = "resetting"            # the old twin is back on the empty image in the spec only
PHASE_DONE = "done"
PHASE_FAILED = "failed"
PHASE_NOT_UPGRADABLE = "not-upgradable"
PHASE_ROLLED_BACK = "rolled-back"        # a rollback written by this run is applied by kubelet
# Phases only a sidecar_upgrade run gives a pod
PHASE_MIGRATED = "migrated"              # phase=upgrade: stopped after the migration, the reset not requested
PHASE_PLANNED = "planned"                # check mode: the write that would be made
PHASE_MISSING = "missing"                # the pod is not (or no longer) in its namespace

# Actions: the next step of a pod
ACTION_UPGRADE = "upgrade"      # new images, versions, working twin, pod hash (one write)
ACTION_RESET = "reset"          # old twins back to the empty image (one write)
ACTION_ROLLBACK = "rollback"    # a broken new twin back to the empty image, the serving twin working again
ACTION_NONE = "none"            # nothing to write: done, NotUpdate or paused
ACTION_WAIT = "wait"            # kubelet is applying a write, or the new twin is migrating
ACTION_FAIL = "fail"            # a sidecar failed: nothing to write, the old twin keeps serving
ACTION_REFUSE = "refuse"        # this SidecarSet can never upgrade the pod in place (the reason says why)
ACTIONS = (ACTION_UPGRADE, ACTION_RESET, ACTION_ROLLBACK, ACTION_NONE, ACTION_WAIT, ACTION_FAIL, ACTION_REFUSE)
WRITE_ACTIONS = (ACTION_UPGRADE, ACTION_RESET, ACTION_ROLLBACK)

# Steps of one sidecar inside an upgrade write
STEP_HOT_UPGRADE = "hot-upgrade"   # the target twin gets the new image and becomes working
STEP_UPGRADE = "upgrade"           # a ColdUpgrade container gets the new image in place
STEP_ROLLBACK = "rollback"         # the broken working twin goes back to empty, the other twin runs the image
STEP_UNCHANGED = "unchanged"
STEP_WAIT = "wait"


class ContainerFacts(object):
    """One pod container of the SidecarSet: spec image, Ready, consistent on its own, started, failure."""

    def __init__(self, pod, sidecarset, name):
        status = container_status(pod, name)
        self.name = name
        self.image = container_image(pod, name)
        self.ready = is_container_ready(pod, name)
        self.consistent = is_pod_state_consistent(pod, sidecarset, [name])
        self.started = is_started(pod, name)          # running, postStart returned
        self.started_ready = bool(status and status.get("ready") and status.get("started", True))
        self.failure = container_failure(pod, name)

    @property
    def ready_and_consistent(self):
        """Ready in the sense of ``sidecarset_hotupgrade.go:findContainerToHotUpgrade``: Ready and consistent."""
        return self.ready and self.consistent


class SidecarFacts(object):
    """One SidecarSet container: its working twin ``W`` and empty twin ``E`` (``GetPodHotUpgradeContainers``),
    or the container itself (cold: ``working``; ``empty`` is ``None``)."""

    def __init__(self, sidecar, working, empty):
        self.sidecar = sidecar
        self.name = sidecar["name"]
        self.hot = empty is not None
        self.desired = sidecar.get("image")
        self.empty_image = empty_image(sidecar)
        self.working = working
        self.empty = empty
        # isPodSidecarInHotUpgrading: E holds a real image (an upgrade awaiting its reset)
        self.in_flight = self.hot and empty.image != self.empty_image


# What an upgrade write does to one sidecar: ``kind`` (``STEP_*``), ``detail``, and for a write the ``target``
# container and (hot) the ``older`` twin
Step = collections.namedtuple("Step", "kind detail target older")
Step.__new__.__defaults__ = (None, None)


class Assessment(object):
    """The facts of one pod for one SidecarSet and what they mean. See the module docstring."""

    def __init__(self, pod, sidecarset):
        self.pod = pod
        self.sidecarset = sidecarset
        self.name = sidecarset_name(sidecarset)
        strategy = update_strategy(sidecarset)
        if strategy.get("type") == "NotUpdate":
            self.held = "updateStrategy.type is NotUpdate"
        else:
            self.held = "updateStrategy is paused" if strategy.get("paused") else ""
        self.refusal = not_upgradable_reason(pod, sidecarset)
        self.containers = {}
        self.sidecars = []
        for sidecar in sidecar_containers(sidecarset):
            if is_hot_upgrade(sidecar):
                for twin in hot_upgrade_names(sidecar["name"]):
                    self._container(twin)
                working, empty = (self.containers[name] for name in working_and_empty(pod, sidecar["name"]))
            else:
                working, empty = self._container(sidecar["name"]), None
            self.sidecars.append(SidecarFacts(sidecar, working, empty))
        self.hot = [facts for facts in self.sidecars if facts.hot]
        self.in_flight = [facts for facts in self.hot if facts.in_flight]
        self.empty_slots = [facts.empty.name for facts in self.hot]
        self.updated = is_pod_updated(pod, sidecarset)
        self.consistent = is_pod_state_consistent(pod, sidecarset)
        self.running_ready = is_running_and_ready(pod)
        # IsPodReady (sidecarset_control.go): every hot E on the empty image, and the pod Running and Ready
        self.ready = not self.in_flight and self.running_ready
        self.unapplied = next(("container %s is ready but kubelet has not applied its new image yet" % name
                               for name in sorted(self.containers)
                               if self.containers[name].ready and not self.containers[name].consistent), "")
        self.reset_blocker = self._reset_blocker()
        self._steps = None
        self.phase, self.reason = self._phase()
        self.action, self.action_reason = self._action()

    def _container(self, name):
        self.containers[name] = ContainerFacts(self.pod, self.sidecarset, name)
        return self.containers[name]

    # -- the reset (sidecarset_hotupgrade.go: the reset of the empty containers after the migration) -------------
    def _hot_upgrading_ready(self):
        """``isHotUpgradingReady``: Running and Ready, or every container except the ``E`` slots is Ready."""
        if self.running_ready:
            return True
        statuses = (self.pod.get("status") or {}).get("containerStatuses") or []
        return all(status.get("ready") for status in statuses if status.get("name") not in self.empty_slots)

    def _reset_blocker(self):
        """Why the old twins cannot go back to the empty image now, or ``""`` when the reset can run."""
        if not self.in_flight:
            return "no empty slot to reset"
        others = [name for name in self.containers if name not in self.empty_slots]
        if not is_pod_state_consistent(self.pod, self.sidecarset, others):
            return "kubelet has not yet applied the new images of %s" % ", ".join(others)
        for facts in self.in_flight:
            if not facts.working.ready:
                return "new container %s is not ready" % facts.working.name
        if not self._hot_upgrading_ready():
            return "pod is not ready and some non-empty container is not ready"
        return ""

    # -- the phase --------------------------------------------------------------------------------------------
    def _phase(self):
        """First matching rule wins: not-upgradable; failed (a working twin or cold container fails per
        ``podstate.container_failure``); upgrading (a new twin
        not yet consistent); migrating (a new twin not started/ready, or only the reset left); failed or resetting
        (an old twin back on the empty image in the spec only); upgrading (a cold sidecar not yet consistent); idle
        (not updated); done (updated, consistent, ready); migrating (a sidecar or the pod is not ready)."""
        if self.refusal:
            return PHASE_NOT_UPGRADABLE, self.refusal
        for facts in self.sidecars:
            if facts.working.failure:
                return PHASE_FAILED, facts.working.failure
        for facts in self.in_flight:
            if not facts.working.consistent:
                return PHASE_UPGRADING, "%s: waiting for kubelet to run %s" % (facts.working.name, facts.working.image)
        for facts in self.in_flight:
            if not facts.working.started_ready:
                return PHASE_MIGRATING, "%s runs the new image; waiting for postStart and readiness" % facts.working.name
        if self.in_flight:
            names = ", ".join(facts.empty.name for facts in self.in_flight)
            return PHASE_MIGRATING, "new containers are ready; %s awaiting reset to the empty image" % names
        for facts in self.hot:
            if not facts.empty.consistent:
                if facts.empty.failure:
                    return PHASE_FAILED, facts.empty.failure
                return PHASE_RESETTING, "%s: waiting for kubelet to run the empty image" % facts.empty.name
        if not self.consistent:
            return PHASE_UPGRADING, "waiting for kubelet to apply the new sidecar images"
        if not self.updated:
            return PHASE_IDLE, "not updated to the SidecarSet hash"
        if self.ready:
            return PHASE_DONE, ""
        for name, facts in self.containers.items():
            if name not in self.empty_slots and not facts.started_ready:
                return PHASE_MIGRATING, "container %s is not started/ready" % name
        return PHASE_MIGRATING, "pod is not Running and Ready"

    # -- the next action --------------------------------------------------------------------------------------
    def _action(self):
        """``none`` when held (NotUpdate, paused) or done; ``refuse``; ``reset`` when a hot upgrade is in flight
        and the reset can run; ``upgrade``/``rollback`` when not updated (``upgrade_steps``); else ``wait``, and
        ``fail`` instead of ``wait`` when the phase is ``failed``."""
        if self.held:
            return ACTION_NONE, self.held
        if self.refusal:
            return ACTION_REFUSE, self.refusal
        if self.in_flight and not self.reset_blocker:
            return ACTION_RESET, ""
        action, reason = ACTION_WAIT, ""
        resetting = not self.in_flight and not all(facts.empty.consistent for facts in self.hot)
        if not resetting and not self.updated:
            action, reason = self.upgrade_action()
        elif not resetting and self.consistent and self.ready:
            return ACTION_NONE, "done"
        if action != ACTION_WAIT:
            return action, reason
        if self.phase == PHASE_FAILED:
            return ACTION_FAIL, self.reason
        return ACTION_WAIT, reason or ("%s: %s" % (self.phase, self.reason) if self.reason else self.phase)

    def upgrade_action(self):
        """``(action, reason)`` of an upgrade write now: ``wait`` while a write is still applied
        (``IsSidecarSetUpgradable`` (true, false)) or a sidecar step waits, ``rollback`` when it only rolls back,
        else ``upgrade``."""
        if self.unapplied:
            return ACTION_WAIT, self.unapplied
        kinds = set()
        for step in self.upgrade_steps():
            if step.kind == STEP_WAIT:
                return ACTION_WAIT, step.detail
            kinds.add(step.kind)
        if STEP_ROLLBACK in kinds and not kinds & {STEP_UPGRADE, STEP_HOT_UPGRADE}:
            return ACTION_ROLLBACK, ""
        return ACTION_UPGRADE, ""

    def upgrade_steps(self):
        """``[Step]`` of an upgrade write, one per SidecarSet container in spec order (computed once)."""
        if self._steps is None:
            self._steps = [self._hot_step(facts) if facts.hot else self._cold_step(facts) for facts in self.sidecars]
        return self._steps

    @staticmethod
    def _cold_step(facts):
        if facts.working.image == facts.desired:
            return Step(STEP_UNCHANGED, "%s already runs %s" % (facts.name, facts.desired))
        return Step(STEP_UPGRADE, "%s -> %s" % (facts.name, facts.desired), target=facts.name)

    def _hot_step(self, facts):
        working, other, desired = facts.working, facts.empty, facts.desired
        if facts.in_flight and other.image == desired and working.image != desired:
            # the old twin still runs the desired image while the new one runs another: back to it once the new
            # one fails (upstream leaves W on the broken twin); while it may still be migrating, wait
            if not working.failure:
                return Step(STEP_WAIT, "%s still runs %s; waiting for %s to become ready or fail" % (other.name, desired, working.name))
            return Step(STEP_ROLLBACK, "%s; %s still runs %s: back to it" % (working.failure, other.name, desired),
                        target=working.name, older=other.name)
        target, older = self.container_to_hot_upgrade(facts)
        if older.image == desired:
            return Step(STEP_UNCHANGED, "%s already runs %s" % (older.name, desired))
        if target.image == desired and target is working:
            return Step(STEP_UNCHANGED, "%s is already being upgraded to %s" % (target.name, desired))
        return Step(STEP_HOT_UPGRADE, "%s -> %s" % (target.name, desired), target=target.name, older=older.name)

    def container_to_hot_upgrade(self, facts):
        """``sidecarset_hotupgrade.go:findContainerToHotUpgrade``: ``(T, O)`` as ``ContainerFacts``.

        1. a twin on the empty image (``N-1`` first); 2. if exactly one twin is Ready and consistent, the other;
        3. otherwise ``E``.
        """
        first, second = sorted((facts.working, facts.empty), key=lambda twin: twin.name)
        if first.image == facts.empty_image:
            return first, second
        if second.image == facts.empty_image:
            return second, first
        if first.ready_and_consistent != second.ready_and_consistent:
            return (second, first) if first.ready_and_consistent else (first, second)
        return facts.empty, facts.working


def assess(pod, sidecarset):
    """Return the ``Assessment`` of ``pod`` for ``sidecarset``."""
    return Assessment(pod, sidecarset)


def pod_sidecar_phase(pod, sidecarset):
    """``(phase, reason)`` of the pod for the SidecarSet (``assess(pod, sidecarset)``)."""
    assessment = assess(pod, sidecarset)
    return assessment.phase, assessment.reason
