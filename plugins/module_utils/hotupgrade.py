# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The writes of an in-place sidecar upgrade of one pod: what ``assessment.assess`` decided, as one request.

Every planner returns a ``Plan``: the images and the complete new values of the annotations to write, in ONE
request, with optimistic concurrency (``plan_patch_body`` carries the pod's ``resourceVersion``). Nothing here
performs I/O or mutates its arguments. ``Plan.action`` is one of ``assessment.ACTIONS``; the decision itself (which
action, which twin) is the pod's ``Assessment``, so the phase a report shows and the action a driver takes come from
the same facts.

Upstream (openkruise/kruise): the upgrade write is ``pkg/controller/sidecarset/sidecarset_processor.go:
updatePodSidecarAndHash`` with ``sidecarset_hotupgrade.go:updateHotUpgradeContainerInPod`` for HotUpgrade
sidecars; the reset is ``sidecarset_hotupgrade.go:flipPodSidecarContainerDo``; the pod hash entry is
``pkg/control/sidecarcontrol/util.go:UpdatePodSidecarSetHash`` and the in-place state
``sidecarset_control.go:UpdatePodAnnotationsInUpgrade``. ``docs/kruise-mapping.md`` lists every function.

Versions (``SIDECARSET_VERSION``): upstream writes the SidecarSet's resourceVersion; here the caller passes an
integer greater than every version already on the pod (``versions.next_version``).

Decisions where upstream is silent or where we differ (docs/design.md says why): a new twin that failed while the
old one still runs the desired image is rolled back by the upgrade write (``assessment.STEP_ROLLBACK``: ``W`` back to
the empty image, ``working[N] = E``, ``v(W) = "0"``, ``va(W) = v(E)``, ``va(E) = "0"``, the pod hash set), so ``W``
never points at a broken container; a newer image after a broken one lands in the broken slot, as upstream; the
in-place update state is written only when an image changes, with each changed container's restart count in
``podstate.RESTART_BASELINE``; ``patchPodMetadata`` is not applied here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    INPLACE_UPDATE_STATE,
    POD_HASH,
    WORKING_HOTUPGRADE_CONTAINER,
    hash_entry,
    hot_upgrade_names,
    read_hash_entries,
    read_inplace_state,
    read_working,
    set_or_drop,
    sidecar_list,
    version_alt_key,
    version_key,
    write_hash_entries,
    write_inplace_state,
    write_working,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import (
    ACTION_NONE,
    ACTION_REFUSE,
    ACTION_RESET,
    ACTION_ROLLBACK,
    ACTION_UPGRADE,
    ACTIONS,
    STEP_HOT_UPGRADE,
    STEP_ROLLBACK,
    STEP_UPGRADE,
    WRITE_ACTIONS,
    assess,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import AnnotationError, PlanRefusal, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import apply_patch_pod_metadata
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    RESTART_BASELINE,
    container_image,
    container_status,
    empty_image_problem,
    images_equal,
    matching_problem,
    pod_annotations,
    pod_containers,
    read_restart_baseline,
    write_restart_baseline,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    empty_image,
    get_hash,
    is_hot_upgrade,
    sidecar_containers,
    sidecarset_name,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import (
    EMPTY_VERSION,
    check_version,
    format_timestamp,
    next_version,
    utcnow,
)


class Plan(object):
    """The next write for one pod.

    ``action``: one of ``ACTIONS``. ``containers``: ``{pod_container_name: new_image}``. ``annotations``:
    ``{key: complete new value}`` for every annotation key touched (``None`` deletes the key). ``reason``: human
    readable. ``sidecarset``: the SidecarSet name. ``phase``/``phase_reason``: the pod's phase in the assessment the
    plan was read from (``""`` for plans not read from one).
    """

    def __init__(self, action, containers=None, annotations=None, reason="", sidecarset="", phase="", phase_reason=""):
        if action not in ACTIONS:
            raise ValueError("unknown plan action %r" % (action,))
        self.action = action
        self.containers = dict(containers or {})
        self.annotations = dict(annotations or {})
        self.reason = reason
        self.sidecarset = sidecarset
        self.phase = phase
        self.phase_reason = phase_reason

    @property
    def writes(self):
        """True when the plan must be written to the pod."""
        return self.action in WRITE_ACTIONS

    def to_dict(self):
        """Return the plan as a plain dict (for module results)."""
        return {
            "action": self.action,
            "containers": dict(self.containers),
            "annotations": dict(self.annotations),
            "reason": self.reason,
            "sidecarset": self.sidecarset,
        }

    def __eq__(self, other):
        return isinstance(other, Plan) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return "Plan(%r)" % (self.to_dict(),)


def plan_patch_body(pod, plan):
    """Return the strategic-merge-patch body of a writing plan, or ``{}`` for ``none``/``wait``/``refuse``.

    Shape: ``{"metadata": {"resourceVersion": rv, "annotations": {...}}, "spec": {"containers": [{"name", "image"}]}}``;
    ``resourceVersion`` is present when the pod has one (the API server then rejects a stale write with 409),
    containers follow pod order and ``spec`` is omitted when no image changes.
    """
    if not plan.writes:
        return {}
    metadata = {"annotations": dict(plan.annotations)}
    resource_version = (pod.get("metadata") or {}).get("resourceVersion")
    if resource_version:
        metadata["resourceVersion"] = resource_version
    body = {"metadata": metadata}
    containers = [
        {"name": container["name"], "image": plan.containers[container["name"]]}
        for container in pod_containers(pod)
        if container.get("name") in plan.containers
    ]
    if containers:
        body["spec"] = {"containers": containers}
    return body


# ---------------------------------------------------------------------------------------------------------
# Building the annotations of one write
# ---------------------------------------------------------------------------------------------------------

class _Draft(object):
    """Accumulates the images and annotations of one write on top of the pod as read."""

    def __init__(self, assessment):
        self.pod = assessment.pod
        self.sidecarset = assessment.sidecarset
        self.assessment = assessment
        self.images = {}
        self.annotations = {}
        self.working = read_working(pod_annotations(self.pod))
        self.working_changed = False
        self.changed = []

    def annotation(self, key):
        """Current value of ``key``: the draft's if set, else the pod's."""
        if key in self.annotations:
            return self.annotations[key]
        return pod_annotations(self.pod).get(key)

    def set_image(self, name, image):
        """Set a container image and remember the container as changed."""
        self.images[name] = image
        if name not in self.changed:
            self.changed.append(name)

    def set_working(self, sidecar_name, container_name):
        """Record the working twin of ``sidecar_name``."""
        self.working[sidecar_name] = container_name
        self.working_changed = True

    def plan(self, action, reason, now):
        """Close the draft: working map, in-place state and restart baseline for the changed containers."""
        if self.working_changed:
            self.annotations[WORKING_HOTUPGRADE_CONTAINER] = write_working(self.working)
        if self.changed:
            self.annotations[INPLACE_UPDATE_STATE] = self._inplace_state(now)
            self.annotations[RESTART_BASELINE] = self._restart_baseline()
        return Plan(action, self.images, self.annotations, reason, self.assessment.name, self.assessment.phase,
                    self.assessment.reason)

    def _inplace_state(self, now):
        """``UpdatePodAnnotationsInUpgrade``: reuse the SidecarSet entry (revision, timestamp), record the changed
        containers' pre-change imageIDs."""
        try:
            state = read_inplace_state(pod_annotations(self.pod))
        except AnnotationError:
            state = {}
        name = sidecarset_name(self.sidecarset)
        entry = dict(state.get(name) or {"revision": get_hash(self.sidecarset), "updateTimestamp": format_timestamp(now)})
        last = dict(entry.get("lastContainerStatuses") or {})
        for container in self.changed:
            status = container_status(self.pod, container) or {}
            image_id = status.get("imageID") or ""
            if status.get("image") and images_equal(status["image"], self.images[container]):
                # kubelet's status already names the image we write (a rollback while the new image could not
                # be pulled: kubelet keeps reporting the previous instance): its imageID will not change, so
                # recording it would make the change look unapplied forever (is_sidecar_update_completed)
                image_id = ""
            last[container] = {"imageID": image_id} if image_id else {}
        entry["lastContainerStatuses"] = last
        state[name] = entry
        return write_inplace_state(state)

    def _restart_baseline(self):
        baseline = read_restart_baseline(pod_annotations(self.pod))
        for container in self.changed:
            baseline[container] = (container_status(self.pod, container) or {}).get("restartCount") or 0
        return write_restart_baseline(baseline)


def _patch_metadata(draft):
    """``PatchPodMetadata`` in the upgrade write (issue 16): the SidecarSet's ``patchPodMetadata`` applied to the pod's
    annotations with this write's on top; the keys whose value changes join ``draft.annotations``."""
    patches = ((draft.sidecarset or {}).get("spec") or {}).get("patchPodMetadata")
    if not patches:
        return
    current = dict(pod_annotations(draft.pod))
    for key, value in draft.annotations.items():
        set_or_drop(current, key, value)
    patched = dict(current)
    try:
        apply_patch_pod_metadata(patched, patches)
    except SidecarSetError as exc:
        raise PlanRefusal("patchPodMetadata: %s" % "; ".join(message for unused, message in exc.errors))
    for key, value in patched.items():
        if current.get(key) != value:
            draft.annotations[key] = value


def _set_hash(draft, now, entry=True):
    """Write this SidecarSet's pod hash entry: a fresh one (``entry=True``), ``entry`` itself, or none (``None``)."""
    entries = read_hash_entries(pod_annotations(draft.pod))
    name = sidecarset_name(draft.sidecarset)
    if entry is True:
        sidecarset = draft.sidecarset
        entry = hash_entry(name, get_hash(sidecarset), sidecar_list(sidecarset), format_timestamp(now),
                           (sidecarset.get("status") or {}).get("latestRevision"))
    set_or_drop(entries, name, entry)
    draft.annotations[POD_HASH] = write_hash_entries(entries)


def _rollback_twin(draft, sidecar, broken, serving):
    """Put ``broken`` back on the empty image and make ``serving`` the working twin again."""
    draft.set_image(broken, empty_image(sidecar))
    draft.set_working(sidecar["name"], serving)
    draft.annotations[version_key(broken)] = EMPTY_VERSION
    draft.annotations[version_alt_key(broken)] = draft.annotation(version_key(serving))
    draft.annotations[version_alt_key(serving)] = EMPTY_VERSION


# ---------------------------------------------------------------------------------------------------------
# The writes
# ---------------------------------------------------------------------------------------------------------

def _write_upgrade(assessment, action, version, now):
    """The upgrade write of ``assessment.upgrade_steps()``: images, versions, working twins, pod hash."""
    draft = _Draft(assessment)
    details = []
    for facts, step in zip(assessment.sidecars, assessment.upgrade_steps()):
        if step.kind == STEP_HOT_UPGRADE:
            check_version(assessment.pod, version)
            draft.set_image(step.target, facts.desired)
            draft.set_working(facts.name, step.target)
            draft.annotations[version_key(step.target)] = str(version)
            draft.annotations[version_alt_key(step.target)] = draft.annotation(version_key(step.older))
            draft.annotations[version_alt_key(step.older)] = str(version)
        elif step.kind == STEP_ROLLBACK:
            _rollback_twin(draft, facts.sidecar, step.target, step.older)
        elif step.kind == STEP_UPGRADE:
            draft.set_image(step.target, facts.desired)
        else:
            continue
        details.append(step.detail)
    _set_hash(draft, now)
    _patch_metadata(draft)
    return draft.plan(action, "; ".join(details) or "images already current: only the pod hash changes", now)


def _write_reset(assessment, now):
    """``flipPodSidecarContainerDo``: for each hot sidecar whose ``E`` holds a real image: ``E.image =
    hotUpgradeEmptyImage``, ``v(E) = "0"``, ``va(W) = "0"``, ``E``'s pre-change imageID in the in-place state.
    Never the pod hash."""
    draft = _Draft(assessment)
    for facts in assessment.in_flight:
        draft.set_image(facts.empty.name, facts.empty_image)
        draft.annotations[version_key(facts.empty.name)] = EMPTY_VERSION
        draft.annotations[version_alt_key(facts.working.name)] = EMPTY_VERSION
    return draft.plan(ACTION_RESET, "reset %s to the empty image" % ", ".join(draft.changed), now)


def _refused(assessment, write, *args):
    """Run ``write``; a ``PlanRefusal`` (a malformed annotation met while writing) refuses the pod."""
    try:
        return write(assessment, *args)
    except PlanRefusal as exc:
        return Plan(ACTION_REFUSE, reason=str(exc), sidecarset=assessment.name)


def plan_next(pod, sidecarset, version, now, assessment=None):
    """The next step for one pod, from the pod alone (resumable): ``assess(pod, sidecarset).action`` as a plan.

    ``upgrade``/``rollback``/``reset`` carry their write; ``none``, ``wait``, ``fail`` and ``refuse`` write nothing
    (``Assessment._action`` says when each applies). ``version`` may be ``None`` (``versions.next_version`` of the
    pod is used); it is validated only when a new version is written (``InvalidVersion``). ``assessment``: the
    pod's assessment when the caller already has it.
    """
    assessment = assessment or assess(pod, sidecarset)
    if assessment.action in (ACTION_UPGRADE, ACTION_ROLLBACK):
        return _refused(assessment, _write_upgrade, assessment.action, next_version([pod]) if version is None else version, now)
    if assessment.action == ACTION_RESET:
        return _refused(assessment, _write_reset, now)
    return Plan(assessment.action, reason=assessment.action_reason, sidecarset=assessment.name, phase=assessment.phase,
                phase_reason=assessment.reason)


# ---------------------------------------------------------------------------------------------------------
# Rollback of a failed upgrade
# ---------------------------------------------------------------------------------------------------------

def _restore_previous(draft, sidecar, previous, serving):
    """Copy the pre-upgrade version/versionalt/working values of one hot sidecar from ``previous``."""
    for twin in hot_upgrade_names(sidecar["name"]):
        for key in (version_key(twin), version_alt_key(twin)):
            if key in previous:
                draft.annotations[key] = previous[key]
    before = read_working(previous).get(sidecar["name"])
    if before is not None and before != serving:
        raise PlanRefusal("previous annotations name %s as working, but %s is the twin that still serves" % (before, serving))


def _runs_desired_images(draft):
    for sidecar in sidecar_containers(draft.sidecarset):
        if is_hot_upgrade(sidecar):
            serving = draft.working[sidecar["name"]]
            image = draft.images.get(serving, container_image(draft.pod, serving))
        else:
            image = container_image(draft.pod, sidecar["name"])
        if image != sidecar["image"]:
            return False
    return True


def plan_rollback(pod, sidecarset, previous_annotations=None, now=None):
    """Undo an in-flight hot upgrade whose new twin ``T`` (= ``W``) is broken while ``O`` (= ``E``) still serves.

    For each hot sidecar with a real image in ``E``: ``T.image = hotUpgradeEmptyImage``, ``working[N] = O``,
    ``v(T) = "0"``, ``va(T) = v(O)``, ``va(O) = "0"``; ``T``'s pre-change imageID goes to the in-place state.
    With ``previous_annotations`` (the pod annotations before the upgrade) the version/versionalt values and this
    SidecarSet's pod hash entry are restored from it (an entry absent there is removed). Without them the hash
    entry is set to the SidecarSet hash when the pod then runs exactly the SidecarSet's images, else removed, so
    the pod counts as not updated.

    Refuses when a new twin is already ready and consistent, or runs the new image and has finished postStart
    without being ready (migration done: ``O`` no longer listens, so roll back with a forward
    ``plan_next`` to the old image instead). ``none`` when nothing is in flight.
    """
    name = sidecarset_name(sidecarset)
    now = now or utcnow()
    reason = matching_problem(pod, sidecarset) or empty_image_problem(pod, sidecarset)
    if reason:
        return Plan(ACTION_REFUSE, reason=reason, sidecarset=name)
    assessment = assess(pod, sidecarset)
    if not assessment.in_flight:
        return Plan(ACTION_NONE, reason="no hot upgrade in flight", sidecarset=name)
    draft = _Draft(assessment)
    try:
        for facts in assessment.in_flight:
            working, other = facts.working, facts.empty
            if working.ready_and_consistent:
                return Plan(ACTION_REFUSE, reason="%s is ready: migration finished, upgrade forward instead" % working.name, sidecarset=name)
            if working.consistent and working.started:
                # postStart returned: by the hot-upgrade contract the new sidecar has taken the listeners over and
                # the old one drains, so emptying the new one could leave the pod with no serving sidecar
                return Plan(ACTION_REFUSE, reason=(
                    "%s finished postStart on the new image (it has taken over from %s) but is not ready: not rolled "
                    "back, that could leave no serving sidecar; fix its readiness or upgrade forward" % (working.name, other.name)),
                    sidecarset=name)
            _rollback_twin(draft, facts.sidecar, working.name, other.name)
            if previous_annotations is not None:
                _restore_previous(draft, facts.sidecar, previous_annotations, other.name)
        if previous_annotations is not None:
            _set_hash(draft, now, read_hash_entries(previous_annotations).get(name))
        else:
            _set_hash(draft, now, True if _runs_desired_images(draft) else None)
    except PlanRefusal as exc:
        return Plan(ACTION_REFUSE, reason=str(exc), sidecarset=name)
    return draft.plan(ACTION_ROLLBACK, "rolled back %s to the empty image" % ", ".join(draft.changed), now)
