# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SidecarSet hashes in OpenKruise's format (``pkg/control/sidecarcontrol/hash.go``), without Go.

* ``go_json(spec_dict)`` renders ``{"containers": [...]}`` (plus ``initContainers`` when any init container
  has ``restartPolicy: Always``) the way Go's ``encoding/json.Marshal`` renders Kruise's types: Container fields
  in k8s.io/api declaration order, then the SidecarContainer extras; ``omitempty`` rules; non-pointer structs
  (``resources``, ``upgradeStrategy``, ``shareVolumePolicy``) always emitted; map keys sorted; HTML escaping.
* ``compute_hash(spec)`` = ``SafeEncodeString(hex(sha256(go_json)))`` with the alphabet
  ``bcdfghjklmnpqrstvwxz2456789``; ``compute_hash_without_image(spec)`` blanks every image first.

The result depends only on the content (never on dict ordering). Unknown keys are ignored (as Go's decoder
would drop them); the SidecarSet validator reports them. ``STRUCTS`` (the field table used here) is also the
source of truth for the validator's "unknown field" check. ``canonical_quantity`` renders resource quantities
like ``resource.Quantity.String()`` after the API server's milli rounding.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.meshops.sidecarset.plugins.module_utils.resources import QuantityError, canonical, parse_quantity

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Field kinds (Go type + tag):
#   S  string, no omitempty      s  string, omitempty
#   I  integer, no omitempty     i  integer, omitempty       b  bool, omitempty
#   P  pointer to a scalar (omitted when None)               N  pointer without omitempty (null when None)
#   L  []string, omitempty       l  []struct, omitempty      st struct (always emitted)   p  *struct
#   m  map[string]string         q  ResourceList (quantities) Q  Quantity struct ("0" when absent)
#   o  IntOrString               a  anything (maps sorted)
STRUCTS = {
    "Container": (
        ("name", "S", None), ("image", "s", None), ("command", "L", None), ("args", "L", None),
        ("workingDir", "s", None), ("ports", "l", "ContainerPort"), ("envFrom", "l", "EnvFromSource"),
        ("env", "l", "EnvVar"), ("resources", "st", "ResourceRequirements"),
        ("resizePolicy", "l", "ContainerResizePolicy"), ("restartPolicy", "P", None),
        ("volumeMounts", "l", "VolumeMount"), ("volumeDevices", "l", "VolumeDevice"),
        ("livenessProbe", "p", "Probe"), ("readinessProbe", "p", "Probe"), ("startupProbe", "p", "Probe"),
        ("lifecycle", "p", "Lifecycle"), ("terminationMessagePath", "s", None),
        ("terminationMessagePolicy", "s", None), ("imagePullPolicy", "s", None),
        ("securityContext", "p", "SecurityContext"), ("stdin", "b", None), ("stdinOnce", "b", None),
        ("tty", "b", None),
    ),
    "SidecarExtras": (
        ("podInjectPolicy", "s", None), ("upgradeStrategy", "st", "SidecarContainerUpgradeStrategy"),
        ("shareVolumePolicy", "st", "ShareVolumePolicy"), ("shareVolumeDevicePolicy", "p", "ShareVolumePolicy"),
        ("transferEnv", "l", "TransferEnvVar"), ("resourcesPolicy", "p", "ResourcesPolicy"),
    ),
    "ContainerPort": (
        ("name", "s", None), ("hostPort", "i", None), ("containerPort", "I", None), ("protocol", "s", None),
        ("hostIP", "s", None),
    ),
    "EnvFromSource": (
        ("prefix", "s", None), ("configMapRef", "p", "EnvSourceRef"), ("secretRef", "p", "EnvSourceRef"),
    ),
    "EnvSourceRef": (("name", "s", None), ("optional", "P", None)),
    "EnvVar": (("name", "S", None), ("value", "s", None), ("valueFrom", "p", "EnvVarSource")),
    "EnvVarSource": (
        ("fieldRef", "p", "ObjectFieldSelector"), ("resourceFieldRef", "p", "ResourceFieldSelector"),
        ("configMapKeyRef", "p", "KeySelector"), ("secretKeyRef", "p", "KeySelector"),
    ),
    "ObjectFieldSelector": (("apiVersion", "s", None), ("fieldPath", "S", None)),
    "ResourceFieldSelector": (("containerName", "s", None), ("resource", "S", None), ("divisor", "Q", None)),
    "KeySelector": (("name", "s", None), ("key", "S", None), ("optional", "P", None)),
    "ResourceRequirements": (("limits", "q", None), ("requests", "q", None), ("claims", "l", "ResourceClaim")),
    "ResourceClaim": (("name", "S", None), ("request", "s", None)),
    "ContainerResizePolicy": (("resourceName", "S", None), ("restartPolicy", "S", None)),
    "VolumeMount": (
        ("name", "S", None), ("readOnly", "b", None), ("recursiveReadOnly", "P", None), ("mountPath", "S", None),
        ("subPath", "s", None), ("mountPropagation", "P", None), ("subPathExpr", "s", None),
    ),
    "VolumeDevice": (("name", "S", None), ("devicePath", "S", None)),
    "Probe": (
        ("exec", "p", "ExecAction"), ("httpGet", "p", "HTTPGetAction"), ("tcpSocket", "p", "TCPSocketAction"),
        ("grpc", "p", "GRPCAction"), ("initialDelaySeconds", "i", None), ("timeoutSeconds", "i", None),
        ("periodSeconds", "i", None), ("successThreshold", "i", None), ("failureThreshold", "i", None),
        ("terminationGracePeriodSeconds", "P", None),
    ),
    "ExecAction": (("command", "L", None),),
    "HTTPGetAction": (
        ("path", "s", None), ("port", "o", None), ("host", "s", None), ("scheme", "s", None),
        ("httpHeaders", "l", "HTTPHeader"),
    ),
    "HTTPHeader": (("name", "S", None), ("value", "S", None)),
    "TCPSocketAction": (("port", "o", None), ("host", "s", None)),
    "GRPCAction": (("port", "I", None), ("service", "N", None)),
    "Lifecycle": (
        ("postStart", "p", "LifecycleHandler"), ("preStop", "p", "LifecycleHandler"), ("stopSignal", "P", None),
    ),
    "LifecycleHandler": (
        ("exec", "p", "ExecAction"), ("httpGet", "p", "HTTPGetAction"), ("tcpSocket", "p", "TCPSocketAction"),
        ("sleep", "p", "SleepAction"),
    ),
    "SleepAction": (("seconds", "I", None),),
    "SecurityContext": (
        ("capabilities", "p", "Capabilities"), ("privileged", "P", None), ("seLinuxOptions", "p", "SELinuxOptions"),
        ("windowsOptions", "p", "WindowsOptions"), ("runAsUser", "P", None), ("runAsGroup", "P", None),
        ("runAsNonRoot", "P", None), ("readOnlyRootFilesystem", "P", None),
        ("allowPrivilegeEscalation", "P", None), ("procMount", "P", None),
        ("seccompProfile", "p", "SeccompProfile"), ("appArmorProfile", "p", "SeccompProfile"),
    ),
    "Capabilities": (("add", "L", None), ("drop", "L", None)),
    "SELinuxOptions": (("user", "s", None), ("role", "s", None), ("type", "s", None), ("level", "s", None)),
    "WindowsOptions": (
        ("gmsaCredentialSpecName", "P", None), ("gmsaCredentialSpec", "P", None), ("runAsUserName", "P", None),
        ("hostProcess", "P", None),
    ),
    "SeccompProfile": (("type", "S", None), ("localhostProfile", "P", None)),
    "SidecarContainerUpgradeStrategy": (("upgradeType", "s", None), ("hotUpgradeEmptyImage", "s", None)),
    "ShareVolumePolicy": (("type", "s", None),),
    "TransferEnvVar": (
        ("sourceContainerName", "s", None), ("sourceContainerNameFrom", "p", "SourceContainerNameSource"),
        ("envName", "s", None), ("envNames", "L", None),
    ),
    "SourceContainerNameSource": (("fieldRef", "p", "ObjectFieldSelector"),),
    "ResourcesPolicy": (
        ("targetContainersMode", "S", None), ("targetContainersNameRegex", "s", None),
        ("resourcesExpr", "st", "ResourcesExpr"),
    ),
    "ResourcesExpr": (("limits", "p", "ResourceExprValues"), ("requests", "p", "ResourceExprValues")),
    "ResourceExprValues": (("cpu", "s", None), ("memory", "s", None)),
}
STRUCTS["SidecarContainer"] = STRUCTS["Container"] + STRUCTS["SidecarExtras"]

CONTAINER_FIELDS = tuple(f[0] for f in STRUCTS["Container"])


def safe_encode_string(text):
    """k8s.io/apimachinery ``rand.SafeEncodeString``: map each character through the 27-letter alphabet."""
    return "".join(SAFE_ALPHABET[ord(c) % 27] for c in text)


# ---------------------------------------------------------------- quantities


def canonical_quantity(value):
    """Render a resource quantity like Go's ``Quantity.String()`` after ``RoundUp(milli)`` (``resources.parse_quantity``
    and ``resources.canonical``). Unparseable input is returned unchanged (as a string) so that the validator can
    report it.
    """
    if isinstance(value, int):  # bool included: str(True)
        return str(value)
    text = str(value).strip()
    try:
        quantity = parse_quantity(text)
    except QuantityError:
        return text
    quantity.set_milli(quantity.milli_value())
    return canonical(quantity)


# ---------------------------------------------------------------- Go JSON


def go_sorted(value):
    """JSON-like data with every map's keys sorted as strings (Go marshals ``map[string]...`` that way)."""
    if isinstance(value, dict):
        return {str(k): go_sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [go_sorted(v) for v in value]
    return value


def _is_zero(value):
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def _encode_struct(value, type_name):
    if not isinstance(value, dict):
        return value
    out = {}
    for name, kind, sub in STRUCTS[type_name]:
        field = value.get(name)
        if kind == "S":
            out[name] = "" if field is None else field
        elif kind == "I":
            out[name] = 0 if field is None else field
        elif kind in ("s", "i", "b"):
            if not _is_zero(field):
                out[name] = field
        elif kind == "P":
            if field is not None:
                out[name] = field
        elif kind == "N":
            out[name] = field
        elif kind == "L":
            if field:
                out[name] = list(field) if isinstance(field, list) else field
        elif kind == "l":
            if field:
                out[name] = [_encode_struct(item, sub) for item in field] if isinstance(field, list) else field
        elif kind == "st":
            out[name] = _encode_struct(field or {}, sub)
        elif kind == "p":
            if field is not None:
                out[name] = _encode_struct(field, sub)
        elif kind in ("m", "q"):
            if field:
                if isinstance(field, dict):
                    conv = canonical_quantity if kind == "q" else (lambda v: v)
                    out[name] = {str(k): conv(field[k]) for k in sorted(field, key=str)}
                else:
                    out[name] = field
        elif kind == "Q":
            out[name] = "0" if field is None else canonical_quantity(field)
        elif kind == "o":
            out[name] = 0 if field is None else field
        else:
            if field is not None:
                out[name] = go_sorted(field)
    return out


def go_dumps(value):
    """Serialise an already ordered structure like Go ``json.Marshal`` (compact, HTML-escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _encode_list(containers, blank_image):
    if containers is None:
        return None
    out = []
    for container in containers:
        if blank_image and isinstance(container, dict):
            container = dict(container, image="")
        out.append(_encode_struct(container, "SidecarContainer"))
    return out


def go_json(spec, blank_image=False):
    """Return the exact bytes Kruise hashes for a SidecarSet ``spec`` (already defaulted)."""
    spec = spec or {}
    data = {"containers": _encode_list(spec.get("containers"), blank_image)}
    init_containers = spec.get("initContainers") or []
    if any(isinstance(c, dict) and c.get("restartPolicy") == "Always" for c in init_containers):
        data["initContainers"] = _encode_list(spec.get("initContainers"), blank_image)
    return go_dumps(data).encode("utf-8")


def _digest(data):
    return safe_encode_string(hashlib.sha256(data).hexdigest())


def compute_hash(spec):
    """``kruise.io/sidecarset-hash`` of a defaulted SidecarSet spec."""
    return _digest(go_json(spec))


def compute_hash_without_image(spec):
    """``kruise.io/sidecarset-hash-without-image``: the same hash with every image blanked."""
    return _digest(go_json(spec, blank_image=True))


def sidecarset_hashes(sidecarset):
    """Return ``(hash, hash_without_image)`` of a defaulted SidecarSet object."""
    spec = (sidecarset or {}).get("spec") or {}
    return compute_hash(spec), compute_hash_without_image(spec)
