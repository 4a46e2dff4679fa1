# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planners for in-place sidecar upgrades of one pod (reference sections 3.6 and 3.7).

Every planner takes a pod dict and a SidecarSet dict and returns a ``Plan``: the images and the complete new
values of the annotations to write, in ONE request, with optimistic concurrency (``plan_patch_body`` carries the
pod's ``resourceVersion``). Nothing here performs I/O or mutates its arguments.

``Plan.action`` is one of:

* ``upgrade``: 3.6 / 3.7 step A (new images, versions, working container, pod hash, in-place state);
* ``reset``: 3.7 step C (old twins back to the empty image; the pod hash is never touched);
* ``rollback``: a broken new twin goes back to the empty image and the working container returns to the twin
  that still serves;
* ``none``: nothing to write (done, nothing to reset, paused, ...);
* ``wait``: a previous write is still being applied by kubelet, or the sidecar is migrating;
* ``refuse``: the pod can never be upgraded in place by this SidecarSet (``reason`` says why).

Versions (``SIDECARSET_VERSION``): upstream writes the SidecarSet's resourceVersion. Here the caller passes an
integer that is greater than every version already on the pod (``next_version`` gives one); ``"0"`` keeps meaning
"empty" and ``"1"`` "first injection", so sidecars built for Kruise work unchanged.

Decisions on the open cases of 3.7:

* Roll back to the image the old twin still runs while the new twin is broken (upstream only bumps the hash and
  leaves ``W`` on the broken twin): when the non-working twin ``E`` still holds a real image equal to the desired
  image and ``W`` runs another one, and ``W`` is failing (``podstate.container_failure``), the plan is a
  ``rollback``: ``W`` goes back to the empty image, ``working[N] = E``, ``v(W) = "0"``, ``va(W) = v(E)``,
  ``va(E) = "0"``, and the pod hash is set to the SidecarSet hash (the pod runs the desired image). When ``W`` is
  not failing (still starting or migrating) the plan is ``wait``: once ``W`` is ready the reset runs and a later
  forward upgrade brings the desired image back. ``W`` never points at a broken container.
* A broken new twin followed by a newer image: as upstream (rule 2), the newer image lands in the slot that held
  the broken one, and the reset later empties the other slot.
* The empty image changed, the pair or its version annotations are missing, the hash-without-image differs, or the
  pod is not injected: ``refuse`` (see ``podstate.not_upgradable_reason``).
* ``kruise.io/sidecarset-inplace-update-state`` is written only when a container image changes. Alongside it the
  restart count of each changed container is recorded in ``podstate.RESTART_BASELINE`` (failure detection).
* ``patchPodMetadata`` is re-applied in the upgrade write (also a rollback), in the same request, as
  ``updatePodSidecarAndHash`` does: ``inject.apply_patch_pod_metadata`` over the annotations as read plus this
  write's; only the keys it changes join the write, so other writers' annotations are never sent back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    INPLACE_UPDATE_STATE,
    POD_HASH,
    VERSION_ALT_PREFIX,
    VERSION_PREFIX,
    WORKING_HOTUPGRADE_CONTAINER,
    hot_upgrade_names,
    read_hash_entries,
    read_inplace_state,
    read_working,
    version_alt_key,
    version_key,
    write_hash_entries,
    write_inplace_state,
    write_working,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import AnnotationError, ParameterError, PlanRefusal, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import apply_patch_pod_metadata
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    EMPTY_VERSION,
    RESTART_BASELINE,
    container_failure,
    container_image,
    container_status,
    empty_image,
    empty_image_problem,
    empty_slots,
    images_equal,
    in_flight_hot_sidecars,
    is_container_consistent_and_ready,
    is_container_ready,
    is_hot_sidecar,
    is_pod_ready,
    is_pod_state_consistent,
    is_pod_updated,
    is_running_and_ready,
    is_started,
    is_sidecarset_upgradable,
    matching_problem,
    not_upgradable_reason,
    pod_annotations,
    pod_containers,
    pod_sidecar_phase,
    read_restart_baseline,
    sidecar_containers,
    sidecar_pod_container_names,
    sidecarset_hash,
    sidecarset_name,
    update_strategy,
    working_and_empty,
    write_restart_baseline,
)

ACTION_UPGRADE = "upgrade"
ACTION_RESET = "reset"
ACTION_ROLLBACK = "rollback"
ACTION_NONE = "none"
ACTION_WAIT = "wait"
ACTION_REFUSE = "refuse"
ACTIONS = (ACTION_UPGRADE, ACTION_RESET, ACTION_ROLLBACK, ACTION_NONE, ACTION_WAIT, ACTION_REFUSE)
WRITE_ACTIONS = (ACTION_UPGRADE, ACTION_RESET, ACTION_ROLLBACK)


class Plan(object):
    """The next write for one pod.

    ``action``: one of ``ACTIONS``. ``containers``: ``{pod_container_name: new_image}`` (also readable as
    ``container``). ``annotations``: ``{key: complete new value}`` for every annotation key touched (``None``
    deletes the key). ``reason``: human readable. ``sidecarset``: the SidecarSet name.
    """

    def __init__(self, action, containers=None, annotations=None, reason="", sidecarset=""):
        if action not in ACTIONS:
            raise ValueError("unknown plan action %r" % (action,))
        self.action = action
        self.containers = dict(containers or {})
        self.annotations = dict(annotations or {})
        self.reason = reason
        self.sidecarset = sidecarset

    @property
    def container(self):
        """Alias of ``containers``."""
        return self.containers

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

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Plan(%r)" % (self.to_dict(),)


# ---------------------------------------------------------------------------------------------------------
# Applying a plan
# ---------------------------------------------------------------------------------------------------------

def apply_plan(pod, plan):
    """Return a deep copy of ``pod`` with the plan's images and annotations applied (for a PUT)."""
    new_pod = copy.deepcopy(pod)
    for container in (new_pod.get("spec") or {}).get("containers") or []:
        if container.get("name") in plan.containers:
            container["image"] = plan.containers[container["name"]]
    if plan.annotations:
        metadata = new_pod.setdefault("metadata", {})
        annotations = metadata.get("annotations") or {}
        for key, value in plan.annotations.items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        metadata["annotations"] = annotations
    return new_pod


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
# Versions
# ---------------------------------------------------------------------------------------------------------

def existing_versions(pod):
    """Return every integer found in the pod's ``version.`` and ``versionalt.sidecarset.kruise.io/`` annotations."""
    versions = []
    for key, value in pod_annotations(pod).items():
        if key.startswith(VERSION_PREFIX) or key.startswith(VERSION_ALT_PREFIX):
            try:
                versions.append(int(value))
            except (TypeError, ValueError):
                continue
    return versions


def next_version(pod, sidecarset=None, floor=None):
    """Return ``max(existing versions on the pod for any sidecar, floor) + 1``, and at least 2.

    ``floor`` (an int, for instance a counter or the SidecarSet resourceVersion) lets versions grow across pods.
    ``sidecarset`` is accepted for symmetry with the planners; every sidecar's versions on the pod count.
    """
    candidates = existing_versions(pod) + [1]
    if floor is not None:
        candidates.append(int(floor))
    return max(max(candidates) + 1, 2)


class InvalidVersion(ParameterError):
    """The version passed to a planner is not an int greater than every version on the pod (a caller error)."""


def check_version(pod, version):
    """Raise ``InvalidVersion`` (a ``ParameterError``, so a ``ValueError``) unless ``version`` is an int >= 2 and greater than every version on the pod."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidVersion("version must be an int, got %r" % (version,))
    highest = max(existing_versions(pod) + [1])
    if version <= highest:
        raise InvalidVersion("version %d must be greater than every version on the pod (highest %d)" % (version, highest))


# ---------------------------------------------------------------------------------------------------------
# Building the annotations of one write
# ---------------------------------------------------------------------------------------------------------

def format_timestamp(now):
    """RFC3339 UTC with seconds (``2021-06-04T05:44:26Z``) from a datetime (naive means UTC) or a string."""
    if isinstance(now, datetime.datetime):
        if now.tzinfo is not None:
            now = now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(now, str) and now:
        return now
    raise ValueError("now must be a datetime or an RFC3339 string, got %r" % (now,))


def sidecar_list(sidecarset):
    """Sorted SidecarSet container names plus native-sidecar init container names (``sidecarList``)."""
    spec = sidecarset.get("spec") or {}
    names = {c["name"] for c in spec.get("containers") or []}
    names.update(c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always")
    return sorted(names)


def hash_entry(sidecarset, now):
    """The pod hash entry of 3.6 step 4: ``{updateTimestamp, hash, sidecarSetName, sidecarList, controllerRevision}``."""
    entry = {
        "updateTimestamp": format_timestamp(now),
        "hash": sidecarset_hash(sidecarset),
        "sidecarSetName": sidecarset_name(sidecarset),
        "sidecarList": sidecar_list(sidecarset),
    }
    revision = (sidecarset.get("status") or {}).get("latestRevision")
    if revision:
        entry["controllerRevision"] = revision
    return entry


class _Draft(object):
    """Accumulates the images and annotations of one write on top of the pod as read."""

    def __init__(self, pod, sidecarset):
        self.pod = pod
        self.sidecarset = sidecarset
        self.images = {}
        self.annotations = {}
        self.working = read_working(pod_annotations(pod))
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
        return Plan(action, self.images, self.annotations, reason, sidecarset_name(self.sidecarset))

    def _inplace_state(self, now):
        """3.6 step 5: reuse the SidecarSet entry (revision, timestamp) and record pre-change imageIDs."""
        try:
            state = read_inplace_state(pod_annotations(self.pod))
        except AnnotationError:
            state = {}
        name = sidecarset_name(self.sidecarset)
        entry = dict(state.get(name) or {"revision": sidecarset_hash(self.sidecarset), "updateTimestamp": format_timestamp(now)})
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
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    patched = dict(current)
    try:
        apply_patch_pod_metadata(patched, patches)
    except SidecarSetError as exc:
        raise PlanRefusal("patchPodMetadata: %s" % "; ".join(message for unused, message in exc.errors))
    for key, value in patched.items():
        if current.get(key) != value:
            draft.annotations[key] = value


def _set_hash(draft, now):
    entries = read_hash_entries(pod_annotations(draft.pod))
    entries[sidecarset_name(draft.sidecarset)] = hash_entry(draft.sidecarset, now)
    draft.annotations[POD_HASH] = write_hash_entries(entries)


# ---------------------------------------------------------------------------------------------------------
# Step A: upgrade (3.6 and 3.7)
# ---------------------------------------------------------------------------------------------------------

def find_container_to_hot_upgrade(pod, sidecarset, sidecar):
    """``findContainerToHotUpgrade``: return ``(T, O)``, the twin to write and the other one.

    1. a twin on the empty image (``N-1`` first); 2. if exactly one twin is ready (Ready and consistent on its
    own), the not-ready one; 3. otherwise ``E`` (the older, non-working twin).
    """
    first, second = hot_upgrade_names(sidecar["name"])
    empty = empty_image(sidecar)
    if container_image(pod, first) == empty:
        return first, second
    if container_image(pod, second) == empty:
        return second, first
    first_ready = is_container_consistent_and_ready(pod, sidecarset, first)
    second_ready = is_container_consistent_and_ready(pod, sidecarset, second)
    if first_ready and not second_ready:
        return second, first
    if second_ready and not first_ready:
        return first, second
    working, other = working_and_empty(pod, sidecar["name"])
    return other, working


def _rollback_twin(draft, sidecar, broken, serving):
    """Put ``broken`` back on the empty image and make ``serving`` the working twin again."""
    draft.set_image(broken, empty_image(sidecar))
    draft.set_working(sidecar["name"], serving)
    draft.annotations[version_key(broken)] = EMPTY_VERSION
    draft.annotations[version_alt_key(broken)] = draft.annotation(version_key(serving))
    draft.annotations[version_alt_key(serving)] = EMPTY_VERSION


def _upgrade_hot(draft, sidecar, version):
    """Plan one hot sidecar; return ``(outcome, reason)``, outcome in hot-upgrade/rollback/unchanged/wait/needs-version."""
    pod = draft.pod
    desired = sidecar["image"]
    working, other = working_and_empty(pod, sidecar["name"])
    other_image = container_image(pod, other)
    if other_image != empty_image(sidecar) and other_image == desired and container_image(pod, working) != desired:
        failure = container_failure(pod, working)
        if not failure:
            return "wait", "%s still runs %s; waiting for %s to become ready or fail" % (other, desired, working)
        _rollback_twin(draft, sidecar, working, other)
        return "rollback", "%s; %s still runs %s: back to it" % (failure, other, desired)
    target, older = find_container_to_hot_upgrade(pod, draft.sidecarset, sidecar)
    if container_image(pod, older) == desired:
        return "unchanged", "%s already runs %s" % (older, desired)
    if container_image(pod, target) == desired and target == working:
        return "unchanged", "%s is already being upgraded to %s" % (target, desired)
    if version is None:
        return "needs-version", "hot sidecar %s needs a version: use plan_hot_upgrade" % sidecar["name"]
    draft.set_image(target, desired)
    draft.set_working(sidecar["name"], target)
    draft.annotations[version_key(target)] = str(version)
    draft.annotations[version_alt_key(target)] = draft.annotation(version_key(older))
    draft.annotations[version_alt_key(older)] = str(version)
    return "hot-upgrade", "%s -> %s" % (target, desired)


def _upgrade_cold(draft, sidecar):
    name = sidecar["name"]
    if container_image(draft.pod, name) == sidecar["image"]:
        return "unchanged", "%s already runs %s" % (name, sidecar["image"])
    draft.set_image(name, sidecar["image"])
    return "upgrade", "%s -> %s" % (name, sidecar["image"])


def _plan_upgrade(pod, sidecarset, version, now):
    name = sidecarset_name(sidecarset)
    upgradable, can_upgrade_now, reason = is_sidecarset_upgradable(pod, sidecarset)
    if not upgradable:
        return Plan(ACTION_REFUSE, reason=reason, sidecarset=name)
    if is_pod_updated(pod, sidecarset):
        return Plan(ACTION_NONE, reason="pod is already updated to the SidecarSet hash", sidecarset=name)
    if not can_upgrade_now:
        return Plan(ACTION_WAIT, reason=reason, sidecarset=name)
    draft = _Draft(pod, sidecarset)
    outcomes = []
    for sidecar in sidecar_containers(sidecarset):
        if is_hot_sidecar(sidecar):
            outcome, detail = _upgrade_hot(draft, sidecar, version)
        else:
            outcome, detail = _upgrade_cold(draft, sidecar)
        if outcome == "wait":
            return Plan(ACTION_WAIT, reason=detail, sidecarset=name)
        if outcome == "needs-version":
            return Plan(ACTION_REFUSE, reason=detail, sidecarset=name)
        outcomes.append((outcome, detail))
    kinds = {outcome for outcome, detail in outcomes}
    if "hot-upgrade" in kinds:
        check_version(pod, version)
    _set_hash(draft, now)
    _patch_metadata(draft)
    action = ACTION_ROLLBACK if kinds & {"rollback"} and not kinds & {"upgrade", "hot-upgrade"} else ACTION_UPGRADE
    details = [detail for outcome, detail in outcomes if outcome != "unchanged"]
    reason = "; ".join(details) or "images already current: only the pod hash changes"
    return draft.plan(action, reason, now)


def plan_hot_upgrade(pod, sidecarset, version, now):
    """3.6 with 3.7 step A for every container of the SidecarSet, in one plan.

    Hot sidecars: ``T`` per ``find_container_to_hot_upgrade``; when ``O`` already runs the desired image only the
    pod hash changes (rule 2); otherwise ``T.image``, ``working[N] = T``, ``v(T) = version``, ``va(T) = v(O)``,
    ``va(O) = version``. Cold sidecars: image only. Always the pod hash entry; in-place state for changed
    containers. ``version`` must be an int greater than every version on the pod (``InvalidVersion`` otherwise;
    see ``next_version``). Returns ``refuse`` when not upgradable, ``wait`` when a write is in flight, ``none`` when
    the pod is already updated, ``rollback`` in the decided edge case (module docstring).
    """
    check_version(pod, version)
    try:
        return _plan_upgrade(pod, sidecarset, version, now)
    except PlanRefusal as exc:
        return Plan(ACTION_REFUSE, reason=str(exc), sidecarset=sidecarset_name(sidecarset))


def plan_cold_upgrade(pod, sidecarset, now):
    """3.6: image-only patch of the ColdUpgrade containers plus the pod hash entry and in-place state.

    Refuses when a HotUpgrade sidecar of the same SidecarSet would need a new image (use ``plan_hot_upgrade``).
    """
    try:
        return _plan_upgrade(pod, sidecarset, None, now)
    except PlanRefusal as exc:
        return Plan(ACTION_REFUSE, reason=str(exc), sidecarset=sidecarset_name(sidecarset))


# ---------------------------------------------------------------------------------------------------------
# Step C: reset
# ---------------------------------------------------------------------------------------------------------

def is_hot_upgrading_ready(pod, sidecarset):
    """``isHotUpgradingReady``: the pod is Running and Ready, or every container except the ``E`` slots is Ready."""
    if is_running_and_ready(pod):
        return True
    skipped = set(empty_slots(pod, sidecarset))
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") not in skipped and not status.get("ready"):
            return False
    return True


def reset_blocker(pod, sidecarset):
    """Return why step C cannot run now, or ``""`` when the pod qualifies (3.7 step C).

    Qualifies when some hot ``E`` is not on the empty image, every sidecar container except the ``E`` slots is
    consistent, ``is_hot_upgrading_ready`` holds, and every in-flight new twin ``W`` is Ready.
    """
    in_flight = in_flight_hot_sidecars(pod, sidecarset)
    if not in_flight:
        return "no empty slot to reset"
    skipped = set(empty_slots(pod, sidecarset))
    others = [n for n in sidecar_pod_container_names(sidecarset) if n not in skipped]
    if not is_pod_state_consistent(pod, sidecarset, others):
        return "kubelet has not yet applied the new images of %s" % ", ".join(others)
    for sidecar in in_flight:
        working = working_and_empty(pod, sidecar["name"])[0]
        if not is_container_ready(pod, working):
            return "new container %s is not ready" % working
    if not is_hot_upgrading_ready(pod, sidecarset):
        return "pod is not ready and some non-empty container is not ready"
    return ""


def plan_reset(pod, sidecarset, now):
    """3.7 step C: for each hot sidecar whose ``E`` holds a real image: ``E.image = hotUpgradeEmptyImage``,
    ``v(E) = "0"``, ``va(W) = "0"``, and ``E``'s pre-change imageID in the in-place state. Never the pod hash.

    ``none`` when nothing is to be reset, ``wait`` when ``reset_blocker`` says so, ``refuse`` when not upgradable.
    """
    name = sidecarset_name(sidecarset)
    reason = not_upgradable_reason(pod, sidecarset)
    if reason:
        return Plan(ACTION_REFUSE, reason=reason, sidecarset=name)
    in_flight = in_flight_hot_sidecars(pod, sidecarset)
    if not in_flight:
        return Plan(ACTION_NONE, reason="no empty slot to reset", sidecarset=name)
    blocker = reset_blocker(pod, sidecarset)
    if blocker:
        return Plan(ACTION_WAIT, reason=blocker, sidecarset=name)
    draft = _Draft(pod, sidecarset)
    for sidecar in in_flight:
        working, other = working_and_empty(pod, sidecar["name"])
        draft.set_image(other, empty_image(sidecar))
        draft.annotations[version_key(other)] = EMPTY_VERSION
        draft.annotations[version_alt_key(working)] = EMPTY_VERSION
    return draft.plan(ACTION_RESET, "reset %s to the empty image" % ", ".join(draft.changed), now)


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


def _rollback_hash(draft, previous, now):
    entries = read_hash_entries(pod_annotations(draft.pod))
    name = sidecarset_name(draft.sidecarset)
    if previous is not None:
        before = read_hash_entries(previous).get(name)
    elif _runs_desired_images(draft):
        before = hash_entry(draft.sidecarset, now)
    else:
        before = None
    if before is None:
        entries.pop(name, None)
    else:
        entries[name] = before
    draft.annotations[POD_HASH] = write_hash_entries(entries)


def _runs_desired_images(draft):
    for sidecar in sidecar_containers(draft.sidecarset):
        if is_hot_sidecar(sidecar):
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
    ``plan_hot_upgrade`` to the old image instead). ``none`` when nothing is in flight.
    """
    name = sidecarset_name(sidecarset)
    reason = matching_problem(pod, sidecarset) or empty_image_problem(pod, sidecarset)
    if reason:
        return Plan(ACTION_REFUSE, reason=reason, sidecarset=name)
    in_flight = in_flight_hot_sidecars(pod, sidecarset)
    if not in_flight:
        return Plan(ACTION_NONE, reason="no hot upgrade in flight", sidecarset=name)
    draft = _Draft(pod, sidecarset)
    try:
        for sidecar in in_flight:
            working, other = working_and_empty(pod, sidecar["name"])
            if is_container_consistent_and_ready(pod, sidecarset, working):
                return Plan(ACTION_REFUSE, reason="%s is ready: migration finished, upgrade forward instead" % working, sidecarset=name)
            if is_pod_state_consistent(pod, sidecarset, [working]) and is_started(pod, working):
                # postStart returned: by the hot-upgrade contract the new sidecar has taken the listeners over and
                # the old one drains, so emptying the new one could leave the pod with no serving sidecar
                return Plan(ACTION_REFUSE, reason=(
                    "%s finished postStart on the new image (it has taken over from %s) but is not ready: not rolled "
                    "back, that could leave no serving sidecar; fix its readiness or upgrade forward" % (working, other)),
                    sidecarset=name)
            _rollback_twin(draft, sidecar, working, other)
            if previous_annotations is not None:
                _restore_previous(draft, sidecar, previous_annotations, other)
        _rollback_hash(draft, previous_annotations, now or datetime.datetime.utcnow())
    except PlanRefusal as exc:
        return Plan(ACTION_REFUSE, reason=str(exc), sidecarset=name)
    return draft.plan(ACTION_ROLLBACK, "rolled back %s to the empty image" % ", ".join(draft.changed), now or datetime.datetime.utcnow())


# ---------------------------------------------------------------------------------------------------------
# Single entry point
# ---------------------------------------------------------------------------------------------------------

def plan_next(pod, sidecarset, version, now):
    """Decide the next step for one pod from the pod alone; call again after every write (resumable).

    Order (reconcile 3.2): ``updateStrategy.type: NotUpdate`` or ``paused`` -> ``none``; not upgradable ->
    ``refuse``; a hot upgrade in flight -> ``reset`` when it qualifies, else (pod not updated and nothing in flight
    blocks) an ``upgrade``/``rollback`` per step A, else ``wait``; an empty slot not yet consistent -> ``wait``;
    not updated -> ``upgrade`` (``wait`` while a Ready container is inconsistent); updated, consistent and
    ``is_pod_ready`` -> ``none`` (done); else ``wait``. ``version`` may be ``None`` (``next_version`` is used);
    it is validated only when a new version is written.
    """
    name = sidecarset_name(sidecarset)
    strategy = update_strategy(sidecarset)
    if strategy.get("type") == "NotUpdate":
        return Plan(ACTION_NONE, reason="updateStrategy.type is NotUpdate", sidecarset=name)
    if strategy.get("paused"):
        return Plan(ACTION_NONE, reason="updateStrategy is paused", sidecarset=name)
    reason = not_upgradable_reason(pod, sidecarset)
    if reason:
        return Plan(ACTION_REFUSE, reason=reason, sidecarset=name)
    if version is None:
        version = next_version(pod, sidecarset)
    try:
        return _next_step(pod, sidecarset, version, now)
    except PlanRefusal as exc:
        return Plan(ACTION_REFUSE, reason=str(exc), sidecarset=name)


def _wait_for_phase(pod, sidecarset):
    phase, reason = pod_sidecar_phase(pod, sidecarset)
    return Plan(ACTION_WAIT, reason="%s: %s" % (phase, reason) if reason else phase, sidecarset=sidecarset_name(sidecarset))


def _next_step(pod, sidecarset, version, now):
    updated = is_pod_updated(pod, sidecarset)
    if in_flight_hot_sidecars(pod, sidecarset):
        if not reset_blocker(pod, sidecarset):
            return plan_reset(pod, sidecarset, now)
        if not updated:
            plan = _plan_upgrade(pod, sidecarset, version, now)
            if plan.action != ACTION_NONE:
                return plan
        return _wait_for_phase(pod, sidecarset)
    for empty in empty_slots(pod, sidecarset):
        if not is_pod_state_consistent(pod, sidecarset, [empty]):
            return _wait_for_phase(pod, sidecarset)
    if not updated:
        return _plan_upgrade(pod, sidecarset, version, now)
    if is_pod_state_consistent(pod, sidecarset) and is_pod_ready(pod, sidecarset):
        return Plan(ACTION_NONE, reason="done", sidecarset=sidecarset_name(sidecarset))
    return _wait_for_phase(pod, sidecarset)
