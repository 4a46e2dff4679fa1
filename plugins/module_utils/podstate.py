# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only predicates on a pod and one SidecarSet (Kruise ``sidecarset_control.go``, ``util.go``,
``util_hotupgrade.go``; docs/kruise-mapping.md). ``assessment.assess`` reads each of them once per pod.

Inputs are plain dicts: a pod as returned by the Kubernetes API and a SidecarSet in Kruise v1beta1 shape
(``metadata.name``, the two hash annotations, ``spec.containers[]`` with ``upgradeStrategy``,
``spec.updateStrategy``). Nothing here performs I/O or mutates its arguments.

Vocabulary (docs/kruise-mapping.md): for a HotUpgrade sidecar ``N`` the pod holds the twins ``N-1`` and ``N-2``;
``W`` is the working twin named by ``kruise.io/sidecarset-working-hotupgrade-container`` (any value other
than ``N-1`` means ``N-2``, as upstream) and ``E`` is the other one, the "empty slot".

Decisions taken where Kruise leaves room (all deliberate, all tested):

* Digest comparison (``is_pod_state_consistent``) normalises Docker Hub names, so ``busybox@sha256:x``
  equals ``docker.io/library/busybox@sha256:x``. Upstream compares the raw repository strings, which never
  matches what containerd reports for short names; normalising only turns such a permanent mismatch into a match.
* ``hotUpgradeEmptyImage`` changed: a twin whose version annotation is ``"0"`` (recorded as empty) must run
  the SidecarSet's current empty image. If it runs anything else the empty image was changed under the pod
  and the pod is *not upgradable* (upstream would re-image every empty slot without throttling).
* ``failed`` (see ``container_failure``): the container is waiting with one of ``FAILED_WAITING_REASONS``,
  or it is not ready and its ``restartCount`` exceeds the baseline recorded at our write by more than one
  (``RESTART_BASELINE``; the one restart is kubelet applying the new image itself).
* ``is_pod_matching`` also requires the pod to be active, as ``getMatchingPods`` does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    INPLACE_UPDATE_STATE,
    POD_HASH,
    POD_HASH_WITHOUT_IMAGE,
    dumps,
    hot_upgrade_names,
    load_json_annotation,
    pod_hash,
    read_inplace_state,
    read_injected_list,
    read_working,
    version_alt_key,
    version_key,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import AnnotationError
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import EMPTY_VERSION
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    empty_image,
    get_hash,
    get_hash_without_image,
    hot_sidecars,
    is_hot_upgrade,
    sidecar_containers,
    sidecarset_name,
)


# Our own annotation (not Kruise's): {"<pod container>": <restartCount when we changed its image>}
RESTART_BASELINE = "sidecarset.meshops.io/restart-baseline"

FAILED_WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PostStartHookError",
)

# Waiting reasons about pulling the *spec* image. While a pull fails after an in-place image change, kubelet
# keeps reporting the previous instance (its ``image`` and ``imageID``, restartCount unchanged) with one of these
# as ``state.waiting.reason`` (seen on kubelet v1.36 + containerd, docs/real-nodes.md): they count whatever
# image the status names.
PULL_FAILURE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")

_QUOTED_RE = re.compile(r'"([^"\s]+)"')
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")


# ---------------------------------------------------------------------------------------------------------
# Accessors
# ---------------------------------------------------------------------------------------------------------

def pod_annotations(pod):
    """Return the pod's annotations (never ``None``)."""
    return ((pod or {}).get("metadata") or {}).get("annotations") or {}


def pod_containers(pod):
    """Return ``spec.containers`` (never ``None``)."""
    return ((pod or {}).get("spec") or {}).get("containers") or []


def pod_container(pod, name):
    """Return the spec container called ``name``, or ``None``."""
    for container in pod_containers(pod):
        if container.get("name") == name:
            return container
    return None


def container_image(pod, name):
    """Return the spec image of container ``name``, or ``None`` when the container does not exist."""
    container = pod_container(pod, name)
    return container.get("image") if container else None


def container_status(pod, name):
    """Return ``status.containerStatuses[]`` entry called ``name``, or ``None``."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return status
    return None


def sidecar_pod_container_names(sidecarset):
    """Return the pod container names of the SidecarSet (``N``, or ``N-1`` and ``N-2``), in spec order."""
    names = []
    for sidecar in sidecar_containers(sidecarset):
        if is_hot_upgrade(sidecar):
            names.extend(hot_upgrade_names(sidecar["name"]))
        else:
            names.append(sidecar["name"])
    return names


def working_and_empty(pod, sidecar_name):
    """Return ``(W, E)`` for hot sidecar ``sidecar_name`` (``GetPodHotUpgradeContainers``).

    ``W`` is ``N-1`` only when the working-container annotation says exactly ``N-1``; any other value, or
    no value, means ``N-2`` (upstream behaviour). A malformed annotation is treated as absent.
    """
    first, second = hot_upgrade_names(sidecar_name)
    try:
        working = read_working(pod_annotations(pod)).get(sidecar_name)
    except AnnotationError:
        working = None
    if working == first:
        return first, second
    return second, first


def is_in_hot_upgrade(pod, sidecar):
    """True when ``E`` of this hot sidecar is not on the empty image (``isPodSidecarInHotUpgrading``)."""
    empty = working_and_empty(pod, sidecar["name"])[1]
    return container_image(pod, empty) != empty_image(sidecar)


# ---------------------------------------------------------------------------------------------------------
# Images and consistency (IsPodStateConsistent)
# ---------------------------------------------------------------------------------------------------------

def parse_image(image):
    """Split an image reference into ``(repository, tag, digest)``; missing parts are ``""``.

    The repository is normalised for Docker Hub (``busybox`` -> ``docker.io/library/busybox``).
    """
    ref = (image or "").strip()
    if "://" in ref:
        ref = ref.split("://", 1)[1]
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1:]
    return _normalise_repository(ref), tag, digest


def _normalise_repository(repository):
    parts = repository.split("/")
    if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = ["docker.io"] + parts
    if parts[0] == "index.docker.io":
        parts[0] = "docker.io"
    if parts[0] == "docker.io" and len(parts) == 2:
        parts.insert(1, "library")
    return "/".join(parts)


def is_digest_image(image):
    """True when ``image`` is pinned by digest (``repo@sha256:<hex>``, a tag may precede the digest)."""
    if not image or "@" not in image:
        return False
    return bool(_DIGEST_RE.match(parse_image(image)[2]))


def images_equal(image, other):
    """``IsContainerImageEqual``: both digests -> repository and digest equal; otherwise repository and tag."""
    repo1, tag1, digest1 = parse_image(image)
    repo2, tag2, digest2 = parse_image(other)
    if is_digest_image(image) and is_digest_image(other):
        return repo1 == repo2 and digest1 == digest2
    return repo1 == repo2 and tag1 == tag2


def _status_count_matches(pod):
    spec = pod_containers(pod)
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return len(spec) == len(statuses)


def is_sidecar_update_completed(pod, sidecarset, containers):
    """``IsSidecarContainerUpdateCompleted`` for this SidecarSet and the given pod container names.

    No in-place state annotation: consistent. Malformed: not consistent. A container is inconsistent when it
    has a recorded pre-update imageID, its current ``status.imageID`` still equals it, and ``spec.image`` differs
    from ``status.image`` (plain string comparison).
    """
    annotations = pod_annotations(pod)
    if not annotations.get(INPLACE_UPDATE_STATE):
        return True
    try:
        state = read_inplace_state(annotations)
    except AnnotationError:
        return False
    entry = state.get(sidecarset_name(sidecarset)) or {}
    last = entry.get("lastContainerStatuses") or {}
    for name in containers:
        status = container_status(pod, name)
        if status is None or name not in last:
            continue
        recorded = (last[name] or {}).get("imageID", "")
        if recorded == status.get("imageID", "") and container_image(pod, name) != status.get("image"):
            return False
    return True


def is_pod_state_consistent(pod, sidecarset, containers=None):
    """``IsPodStateConsistent``: has kubelet applied every in-place image change of the checked containers?

    ``containers`` defaults to all pod container names of the SidecarSet. False when the spec and status
    container counts differ. Digest-pinned images are checked against ``status.imageID``; at the first
    non-digest image the whole set falls back to ``is_sidecar_update_completed``.
    """
    if not _status_count_matches(pod):
        return False
    names = set(containers or sidecar_pod_container_names(sidecarset))
    for container in pod_containers(pod):
        if container.get("name") not in names:
            continue
        if not is_digest_image(container.get("image")):
            return is_sidecar_update_completed(pod, sidecarset, names)
        status = container_status(pod, container["name"])
        if status is None or not images_equal(container["image"], status.get("imageID", "")):
            return False
    return True


def is_container_ready(pod, name):
    """True when the container status exists and reports ``ready: true``."""
    status = container_status(pod, name)
    return bool(status and status.get("ready"))


# ---------------------------------------------------------------------------------------------------------
# Pod level predicates
# ---------------------------------------------------------------------------------------------------------

def pod_condition(pod, condition_type):
    """The pod's first ``status.conditions`` entry of ``condition_type``, or ``None``."""
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def is_pod_ready_condition(pod):
    """``podutil.IsPodReady``: the Ready condition is True."""
    condition = pod_condition(pod, "Ready")
    return bool(condition and condition.get("status") == "True")


def is_running_and_ready(pod):
    """``util.IsRunningAndReady``: phase Running, Ready condition True, no deletionTimestamp."""
    if ((pod or {}).get("status") or {}).get("phase") != "Running":
        return False
    if ((pod or {}).get("metadata") or {}).get("deletionTimestamp"):
        return False
    return is_pod_ready_condition(pod)


def is_pod_active(pod):
    """``IsPodActive``: not Succeeded, not Failed, no deletionTimestamp."""
    if ((pod or {}).get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return not ((pod or {}).get("metadata") or {}).get("deletionTimestamp")


def is_pod_ready(pod, sidecarset):
    """``IsPodReady``: every hot ``E`` runs the empty image, and the pod is running and ready."""
    for sidecar in hot_sidecars(sidecarset):
        if is_in_hot_upgrade(pod, sidecar):
            return False
    return is_running_and_ready(pod)


def is_pod_updated(pod, sidecarset):
    """True when the pod's ``kruise.io/sidecarset-hash[<name>].hash`` equals the SidecarSet hash.

    A malformed pod hash annotation counts as not updated.
    """
    recorded = recorded_hash(pod_annotations(pod), sidecarset_name(sidecarset))
    return recorded is not None and recorded == get_hash(sidecarset)


def recorded_hash(annotations, name, key=POD_HASH):
    """The hash a pod (or template) records for SidecarSet ``name`` in annotation ``key``; ``None`` when absent or
    malformed."""
    try:
        return pod_hash(annotations or {}, name, key=key)
    except AnnotationError:
        return None


def is_pod_injected(pod, sidecarset):
    """True when ``kruise.io/sidecarset-injected-list`` names this SidecarSet."""
    return sidecarset_name(sidecarset) in read_injected_list(pod_annotations(pod))


def consistency_with_sidecarset_problem(pod, sidecarset):
    """``IsPodConsistentWithSidecarSet``: return why the pod's layout does not fit the SidecarSet, or ``""``.

    Every SidecarSet container must exist in the pod; a hot one needs ``N-1``, ``N-2`` and an entry for ``N`` in
    the working-container annotation.
    """
    try:
        working = read_working(pod_annotations(pod))
    except AnnotationError as exc:
        return str(exc)
    for sidecar in sidecar_containers(sidecarset):
        name = sidecar["name"]
        if not is_hot_upgrade(sidecar):
            if pod_container(pod, name) is None:
                return "container %s is missing from the pod" % name
            continue
        for twin in hot_upgrade_names(name):
            if pod_container(pod, twin) is None:
                return "hot-upgrade pair of %s is incomplete: %s is missing" % (name, twin)
        if name not in working:
            return "working-container annotation has no entry for %s" % name
    return ""


def matching_problem(pod, sidecarset):
    """Return why the pod is not a matching pod of the SidecarSet (``getMatchingPods``), or ``""``."""
    if not is_pod_active(pod):
        return "pod is not active"
    if not is_pod_injected(pod, sidecarset):
        return "pod is not injected by SidecarSet %s" % sidecarset_name(sidecarset)
    return consistency_with_sidecarset_problem(pod, sidecarset)


def is_pod_matching(pod, sidecarset):
    """``getMatchingPods``: active, injected-list names the SidecarSet, and the pod holds its containers (hot: pair + entry)."""
    return not matching_problem(pod, sidecarset)


def empty_image_problem(pod, sidecarset):
    """Return why the twins of a hot sidecar do not fit the SidecarSet's empty image, or ``""``.

    * both version annotations of every twin must be present;
    * a twin whose ``version`` is ``"0"`` (recorded as empty) must run ``hotUpgradeEmptyImage``: otherwise
      the empty image changed since injection;
    * the working twin must not run the empty image.
    """
    annotations = pod_annotations(pod)
    for sidecar in hot_sidecars(sidecarset):
        wanted_empty = empty_image(sidecar)
        if not wanted_empty:
            return "sidecar %s has no upgradeStrategy.hotUpgradeEmptyImage" % sidecar["name"]
        working = working_and_empty(pod, sidecar["name"])[0]
        for twin in hot_upgrade_names(sidecar["name"]):
            version = annotations.get(version_key(twin))
            if version is None or annotations.get(version_alt_key(twin)) is None:
                return "version annotations of %s are missing" % twin
            image = container_image(pod, twin)
            if version == EMPTY_VERSION and image != wanted_empty:
                return "hotUpgradeEmptyImage changed: %s is recorded empty but runs %s, not %s" % (twin, image, wanted_empty)
            if twin == working and image == wanted_empty:
                return "working container %s runs the empty image %s" % (twin, wanted_empty)
    return ""


def not_upgradable_reason(pod, sidecarset):
    """Return why the SidecarSet can never upgrade this pod in place, or ``""``.

    Not matching (``getMatchingPods``), hash-without-image differs (``IsSidecarSetUpgradable``), or ``empty_image_problem``.
    """
    problem = matching_problem(pod, sidecarset)
    if problem:
        return problem
    recorded = recorded_hash(pod_annotations(pod), sidecarset_name(sidecarset), POD_HASH_WITHOUT_IMAGE)
    wanted = get_hash_without_image(sidecarset)
    if recorded != wanted:
        return "hash-without-image differs (pod %s, SidecarSet %s): a non-image field changed" % (recorded, wanted)
    return empty_image_problem(pod, sidecarset)


# ---------------------------------------------------------------------------------------------------------
# Failure detection and phase
# ---------------------------------------------------------------------------------------------------------

def read_restart_baseline(annotations):
    """Return ``{pod_container: restartCount}`` recorded at our last image change; malformed -> ``{}``."""
    try:
        value = load_json_annotation(annotations, RESTART_BASELINE)
    except AnnotationError:
        return {}
    baseline = {}
    for name, count in value.items():
        if isinstance(count, int) and not isinstance(count, bool):
            baseline[name] = count
    return baseline


def write_restart_baseline(baseline):
    """Serialise the restart baseline map (keys sorted)."""
    return dumps({name: baseline[name] for name in sorted(baseline)})


def container_failure(pod, name):
    """Return why container ``name`` is failing, or ``""`` (the rules: module docstring, ``failed``).

    A pull failure counts when its message quotes the spec image, or quotes none and the status describes the spec
    image (kubelet keeps reporting the previous instance while a new image cannot be pulled); any other failure
    counts only when the status describes the spec image.
    """
    status = container_status(pod, name)
    if status is None:
        return ""
    waiting = (status.get("state") or {}).get("waiting") or {}
    spec_image = container_image(pod, name)
    describes_spec = not (spec_image and status.get("image") and not images_equal(status["image"], spec_image))
    if waiting.get("reason") in PULL_FAILURE_REASONS:
        named = _QUOTED_RE.findall(waiting.get("message") or "")  # the images a kubelet message quotes
        names_spec = any(images_equal(image, spec_image) for image in named)
        if names_spec or (describes_spec and not named):
            return "container %s is %s%s" % (name, waiting["reason"], ": " + waiting["message"] if waiting.get("message") else "")
        return ""  # a failure to pull an image the spec no longer names
    if not describes_spec:
        # the status still describes the previous image: kubelet has not acted on the current spec yet
        return ""
    if waiting.get("reason") in FAILED_WAITING_REASONS:
        return "container %s is %s" % (name, waiting["reason"])
    baseline = read_restart_baseline(pod_annotations(pod)).get(name)
    restarts = status.get("restartCount") or 0
    if baseline is not None and not status.get("ready") and restarts > baseline + 1:
        return "container %s restarted %d times since the image change and is not ready" % (name, restarts - baseline - 1)
    return ""


def is_started(pod, name):
    """The container runs and kubelet reports it ``started`` (its postStart hook returned)."""
    status = container_status(pod, name) or {}
    return bool(status.get("started") and (status.get("state") or {}).get("running"))


def kubelet_lag(pod):
    """Why the pod's status is older than its spec, or ``""``.

    kubelet (1.33+ with pod generation tracking) reports the ``metadata.generation`` its status describes in
    ``status.observedGeneration``. While it runs a postStart hook its pod worker is blocked and it posts no
    status at all: the status keeps describing the instances from before the last image change (seen on
    kubelet v1.36, docs/real-nodes.md). Without both fields (older clusters) nothing can be told: ``""``.
    """
    generation = ((pod or {}).get("metadata") or {}).get("generation")
    observed = ((pod or {}).get("status") or {}).get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return "kubelet has not reported on the pod's current spec yet (generation %d, status of %d)" % (generation, observed)
    return ""


def replaced_instances(pod, targets):
    """``{container: containerID}`` of the containers of ``targets`` (``{container: image to write}``) whose
    running instance is not already on that image (kubelet must replace it); recorded at a rollback write for
    ``rollback_pending``."""
    out = {}
    for name, image in targets.items():
        status = container_status(pod, name) or {}
        running = (status.get("state") or {}).get("running")
        if not (running and images_equal(status.get("image") or "", image or "")):
            out[name] = status.get("containerID") or ""
    return out


def rollback_pending(pod, sidecarset, replaced=None):
    """Why a rolled-back pod is not back to serving on its old twins yet, or ``""`` once it is.

    The status must describe the current spec (``kubelet_lag``), each rolled-back twin must be running its spec
    (empty) image again, with another containerID than in ``replaced`` (``replaced_instances`` of the pod the
    rollback was computed from: kubelet may report the spec image before it has stopped the old instance), and the
    twin that kept serving must be ready.
    """
    lag = kubelet_lag(pod)
    if lag:
        return lag
    replaced = replaced or {}
    for sidecar in hot_sidecars(sidecarset):
        working, empty = working_and_empty(pod, sidecar["name"])
        status = container_status(pod, empty) or {}
        running = (status.get("state") or {}).get("running")
        if not running or not images_equal(status.get("image") or "", container_image(pod, empty) or "") or (
                empty in replaced and replaced[empty] and status.get("containerID") == replaced[empty]):
            return "%s: waiting for kubelet to run %s again" % (empty, container_image(pod, empty))
        if not is_container_ready(pod, working):
            return "%s: waiting for the serving sidecar to be ready" % working
    return ""
