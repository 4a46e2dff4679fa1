"""What a user can see of an injected pod, flattened to comparable fields, and the documented differences.

``user_view(pod)`` keeps what injection decides: ``spec.containers``, ``spec.initContainers``, ``spec.volumes``,
``spec.imagePullSecrets`` (every field, as the API server stored it), the pod's annotations (the JSON ones parsed)
and labels. ``flatten(view)`` turns it into ``{path: leaf}``; containers and volumes are keyed by name
(``containers[mosn-1].env[2].name``) and their order is a field of its own (``containers.order``), so one moved
container is one difference, not a cascade.

Not part of the view, because they differ between any two pods (docs/kruise-conformance.md, "fields that must
differ"): name, generateName, uid, resourceVersion, creationTimestamp, ownerReferences, namespace, nodeName,
status, the ``pod-template-hash`` label (each side's ReplicaSet), the ``topology.kubernetes.io/zone`` and
``/region`` labels (copied from the node at binding). Normalised: the ``updateTimestamp`` of the hash annotations
(replaced by ``<RFC3339>`` after checking its format), and the ServiceAccount token volume
``kube-api-access-<5 random chars>`` with its mounts: compared in full, but as fields of their own
(``<serviceAccountToken>``), outside the order of ``volumes`` and ``volumeMounts``. The API server's ServiceAccount
admission adds them to the pod before Kruise's webhook runs (so Kruise appends sidecar volumes after the token
volume, and a sharing sidecar gets the app's token mount among the shared ones), while our injection works on the
pod template and the token volume and mounts are appended at pod creation, after the sidecars'.

``diff(reference, ours)`` returns the sorted paths whose values differ (missing on one side counts).
``KNOWN`` lists the differences the suite found in our injection and that are documented (a test passes only when
the differences it sees are exactly the ones it declares, so a fixed or a new difference shows).
"""

import json
import re

JSON_ANNOTATIONS = (
    "kruise.io/sidecarset-hash",
    "kruise.io/sidecarset-hash-without-image",
    "kruise.io/sidecarset-working-hotupgrade-container",
    "kruise.io/sidecarset-inplace-update-state",
)
HASH_ANNOTATIONS = ("kruise.io/sidecarset-hash", "kruise.io/sidecarset-hash-without-image")
# pod-template-hash: each side's ReplicaSet. The topology labels: copied from the node at binding by the API server
# (PodTopologyLabelsAdmission, 1.33+); each pod lands on its own simulated node.
IGNORED_LABELS = ("pod-template-hash", "topology.kubernetes.io/zone", "topology.kubernetes.io/region")
SA_VOLUME = re.compile(r"^kube-api-access-[a-z0-9]{5}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TIMESTAMP = "<RFC3339>"


def _sa(name):
    return "kube-api-access-*" if isinstance(name, str) and SA_VOLUME.match(name) else name


SA_KEY = "<serviceAccountToken>"


def _container(container):
    """A container; its ServiceAccount token mount moved out of ``volumeMounts`` to ``<serviceAccountToken>``."""
    container = json.loads(json.dumps(container))
    mounts = []
    for mount in container.get("volumeMounts") or ():
        if _sa(mount.get("name")) != mount.get("name"):
            mount["name"] = _sa(mount.get("name"))
            container[SA_KEY] = mount
        else:
            mounts.append(mount)
    if "volumeMounts" in container:
        container["volumeMounts"] = mounts
    return container


def _annotation(key, value):
    if key not in JSON_ANNOTATIONS:
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return {"<not JSON>": value}
    if key in HASH_ANNOTATIONS and isinstance(parsed, dict):
        for entry in parsed.values():
            if isinstance(entry, dict) and "updateTimestamp" in entry:
                stamp = entry["updateTimestamp"]
                entry["updateTimestamp"] = TIMESTAMP if isinstance(stamp, str) and RFC3339.match(stamp) else stamp
    if key == "kruise.io/sidecarset-inplace-update-state" and isinstance(parsed, dict):
        for entry in parsed.values():
            if isinstance(entry, dict) and "updateTimestamp" in entry:
                stamp = entry["updateTimestamp"]
                entry["updateTimestamp"] = TIMESTAMP if isinstance(stamp, str) and RFC3339.match(stamp) else stamp
    return parsed


def user_view(pod):
    """The parts of a pod (a dict in API form) that injection decides, normalised."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    volumes, token = [], None
    for volume in spec.get("volumes") or ():
        volume = json.loads(json.dumps(volume))
        if _sa(volume.get("name")) != volume.get("name"):
            volume["name"] = _sa(volume.get("name"))
            token = volume
        else:
            volumes.append(volume)
    return {
        "containers": [_container(c) for c in spec.get("containers") or ()],
        "initContainers": [_container(c) for c in spec.get("initContainers") or ()],
        "volumes": volumes,
        SA_KEY: token,
        "imagePullSecrets": spec.get("imagePullSecrets") or [],
        "annotations": {k: _annotation(k, v) for k, v in (meta.get("annotations") or {}).items()},
        "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k not in IGNORED_LABELS},
    }


def _flatten(value, path, out):
    if isinstance(value, dict):
        if not value:
            out[path] = {}
        for key in sorted(value):
            _flatten(value[key], "%s.%s" % (path, key) if path else key, out)
    elif isinstance(value, list):
        if not value:
            out[path] = []
        for index, item in enumerate(value):
            _flatten(item, "%s[%d]" % (path, index), out)
    else:
        out[path] = value


def flatten(view):
    """``{path: leaf}`` of a user view; named lists keyed by name with their order as one field."""
    out = {}
    for key in ("containers", "initContainers", "volumes"):
        items = view.get(key) or []
        out[key + ".order"] = [item.get("name") for item in items]
        for item in items:
            _flatten(item, "%s[%s]" % (key, item.get("name")), out)
    for key in (SA_KEY, "imagePullSecrets", "annotations", "labels"):
        _flatten(view.get(key), key, out)
    return out


MISSING = "<missing>"


def diff(reference, ours):
    """Sorted ``[(path, reference value, our value)]`` of the fields that differ between two flattened views."""
    out = []
    for path in sorted(set(reference) | set(ours)):
        left, right = reference.get(path, MISSING), ours.get(path, MISSING)
        if left != right:
            out.append((path, left, right))
    return out


# Differences the suite found in our injection, documented in docs/kruise-conformance.md with their reasons.
# id -> (regex over the flattened path, reason). A case declares the ids it expects.
KNOWN = {
    "controller-revision": (
        r"^annotations\.kruise\.io/sidecarset-hash\.[^.]+\.controllerRevision$",
        "Kruise writes the name of the ControllerRevision its controller made for the spec (status.latestRevision, "
        "<name>-<FNV hash of the revision's Go JSON>); we write it only when the SidecarSet passed in carries "
        "status.latestRevision (read from a cluster with Kruise): without Kruise there are no ControllerRevisions. "
        "inject.CompiledSidecarSet.revision / entry_json."),
    "restart-baseline": (
        r"^annotations\.sidecarset\.meshops\.io/restart-baseline$",
        "Our own annotation, written by sidecar_upgrade with the Upgrade: the restartCount of each changed container "
        "before it, so that a crash-looping new sidecar is told apart from kubelet's one restart that applies the "
        "image (docs/design.md). Kruise has no equivalent. hotupgrade.py (podstate.RESTART_BASELINE)."),
}


def classify(differences):
    """Split differences into ``({known id: [paths]}, [unexplained (path, ref, ours)])``."""
    known, unexplained = {}, []
    for path, left, right in differences:
        for ident, (pattern, unused_reason) in KNOWN.items():
            if re.search(pattern, path):
                known.setdefault(ident, []).append(path)
                break
        else:
            unexplained.append((path, left, right))
    return known, unexplained
