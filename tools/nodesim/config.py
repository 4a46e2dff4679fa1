"""Behaviour configuration of the node simulator.

A *behaviour* is a flat dict of settings for one container instance (see ``SETTINGS``). The
effective behaviour of a container is built, later sources overriding earlier ones, from

1. ``DEFAULTS`` (or ``ZERO_DELAY_DEFAULTS`` in zero-delay mode),
2. the config file's ``defaults:`` mapping,
3. ``BUILTIN_RULES`` (conventional image tags such as ``*:broken``), then the config file's
   ``rules:``, in order; every rule whose ``image`` / ``container`` / ``namespace`` fnmatch
   patterns all match is applied,
4. the pod annotation ``nodesim.meshops.io/rules`` (a JSON list of rules, same format),
5. pod annotations ``nodesim.meshops.io/<setting>`` (every container) and
   ``nodesim.meshops.io/<container>.<setting>`` (one container).

Documented in docs/nodesim.md.
"""

import fnmatch
import hashlib
import json
import math
import os
import re
import statistics

ANNOTATION_PREFIX = "nodesim.meshops.io/"

# setting name (camelCase, as in YAML/JSON) -> kind
SETTINGS = {
    "pullDelay": "duration",          # seconds the image pull takes (only if the image is not on the node)
    "pullFailure": "bool",            # the pull fails: ErrImagePull / ImagePullBackOff, never running
    "postStartDuration": "duration",  # postStart hook run time (only if the container has one)
    "postStartFailure": "bool",       # the postStart hook fails: killed, FailedPostStartHook, restarted
    "startDelay": "duration",         # create+start time after the pull
    "readyDelay": "duration",         # running -> ready (default: readinessProbe.initialDelaySeconds * probeTimeScale)
    "neverReady": "bool",             # running, started, but never ready
    "crashAfter": "duration",         # exits with exitCode after running this long (null: never)
    "exitAfter": "duration",          # alias of crashAfter with exitCode 0 default (job-like containers)
    "exitCode": "int",                # exit code for crashAfter / exitAfter (crashAfter default 1)
    "terminationDelay": "duration",   # graceful deletion: time until the containers are terminated
    "probeTimeScale": "float",        # multiplies readinessProbe.initialDelaySeconds when readyDelay unset
    "alwaysPull": "bool",             # pull on every start even if the image is on the node
}

DEFAULTS = {
    "pullDelay": 0.3,
    "pullFailure": False,
    "postStartDuration": 0.2,
    "postStartFailure": False,
    "startDelay": 0.05,
    "readyDelay": None,
    "neverReady": False,
    "crashAfter": None,
    "exitAfter": None,
    "exitCode": None,
    "terminationDelay": 0.1,
    "probeTimeScale": 1.0,
    "alwaysPull": False,
}

ZERO_DELAY_DEFAULTS = dict(
    DEFAULTS, pullDelay=0.0, postStartDuration=0.0, startDelay=0.0, terminationDelay=0.0, probeTimeScale=0.0
)

# Conventional image tags, so that tests can ask for a failure mode just by the image name.
BUILTIN_RULES = [
    {"image": "*:broken", "pullFailure": True},
    {"image": "*:pull-fail*", "pullFailure": True},
    {"image": "*:poststart-fail*", "postStartFailure": True},
    {"image": "*:never-ready*", "neverReady": True},
    {"image": "*:crash*", "crashAfter": 1.0},
]

GLOBAL_DEFAULTS = {
    "nodes": 3,
    "zones": ["zone-a", "zone-b", "zone-c"],
    "nodePrefix": "sim-node-",
    "events": True,
    "backoffInitial": 1.0,   # kubelet: 10 s
    "backoffMax": 10.0,      # kubelet: 300 s
    "imagePullBackoffInitial": 1.0,
    "writers": 8,
}

_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$")
_LOGNORMAL_RE = re.compile(r"^\s*lognormal\s*\(([^)]*)\)\s*$")


class Lognormal:
    """A duration drawn per pod from a lognormal distribution: ``lognormal(MEDIAN, SIGMA[, MAX])``.

    ``sample(seed)`` is deterministic: the same seed (the pod's name) always gets the same value, so two
    rollouts over the same pods (a benchmark comparing two schedulers) see the same per-pod durations.
    """

    def __init__(self, median, sigma, cap=None, text=""):
        if median is None or median <= 0 or sigma < 0:
            raise ValueError("lognormal needs a median > 0 and a sigma >= 0: %r" % (text,))
        self.median, self.sigma, self.cap, self.text = median, sigma, cap, text

    def sample(self, seed):
        digest = hashlib.sha256(("%s|%s" % (self.text, seed)).encode()).digest()
        uniform = (int.from_bytes(digest[:8], "big") + 0.5) / 2.0 ** 64
        value = self.median * math.exp(self.sigma * statistics.NormalDist().inv_cdf(uniform))
        return min(value, self.cap) if self.cap is not None else value

    def __repr__(self):
        return self.text


def parse_distribution(text):
    """``lognormal(3s, 0.9)`` or ``lognormal(3s, 0.9, 60s)`` -> ``Lognormal``; ``None`` for anything else."""
    match = _LOGNORMAL_RE.match(text)
    if not match:
        return None
    args = [a.strip() for a in match.group(1).split(",")]
    if len(args) not in (2, 3):
        raise ValueError("not a distribution (lognormal(MEDIAN, SIGMA[, MAX])): %r" % (text,))
    try:
        sigma = float(args[1])
    except ValueError:
        raise ValueError("not a distribution (SIGMA must be a number): %r" % (text,)) from None
    return Lognormal(parse_duration(args[0]), sigma, parse_duration(args[2]) if len(args) == 3 else None, text.strip())


def parse_duration(value):
    """Seconds as float from 1.5, "1.5", "300ms", "2s", "1m"; None for None/"none"/"null"."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not a duration: %r" % (value,))
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Lognormal):
        return value
    text = str(value).strip().lower()
    if text in ("", "none", "null", "never"):
        return None
    distribution = parse_distribution(text)
    if distribution is not None:
        return distribution
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError("not a duration: %r" % (value,))
    number = float(match.group(1))
    unit = match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def parse_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise ValueError("not a boolean: %r" % (value,))


def _camel(name):
    """pull-delay / pull_delay / pullDelay -> pullDelay."""
    parts = re.split(r"[-_]", name)
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def normalize_setting(name, value):
    key = _camel(name)
    if key not in SETTINGS:
        raise ValueError("unknown nodesim setting %r (known: %s)" % (name, ", ".join(sorted(SETTINGS))))
    kind = SETTINGS[key]
    if kind == "duration":
        return key, parse_duration(value)
    if kind == "bool":
        return key, parse_bool(value)
    if kind == "int":
        return key, None if value is None else int(value)
    return key, float(value)


def normalize_settings(mapping, skip=("image", "container", "namespace")):
    out = {}
    for name, value in (mapping or {}).items():
        if name in skip:
            continue
        key, val = normalize_setting(name, value)
        out[key] = val
    return out


def normalize_rule(rule):
    if not isinstance(rule, dict):
        raise ValueError("a rule must be a mapping, got %r" % (rule,))
    norm = {
        "image": str(rule.get("image", "*")),
        "container": str(rule.get("container", "*")),
        "namespace": str(rule.get("namespace", "*")),
    }
    norm["settings"] = normalize_settings(rule)
    return norm


def rule_matches(rule, image, container, namespace):
    return (
        fnmatch.fnmatchcase(image, rule["image"])
        and fnmatch.fnmatchcase(container, rule["container"])
        and fnmatch.fnmatchcase(namespace, rule["namespace"])
    )


class Config:
    """Parsed simulator configuration (global settings + behaviour rules)."""

    def __init__(self, data=None, zero_delay=None):
        data = dict(data or {})
        self.zero_delay = bool(data.pop("zeroDelay", False)) if zero_delay is None else zero_delay
        if zero_delay is not None:
            data.pop("zeroDelay", None)
        self.globals = dict(GLOBAL_DEFAULTS)
        for key in list(GLOBAL_DEFAULTS):
            if key in data:
                self.globals[key] = data.pop(key)
        if self.zero_delay:
            self.globals["backoffInitial"] = min(float(self.globals["backoffInitial"]), 0.1)
            self.globals["backoffMax"] = min(float(self.globals["backoffMax"]), 0.5)
            self.globals["imagePullBackoffInitial"] = min(float(self.globals["imagePullBackoffInitial"]), 0.1)
        base = ZERO_DELAY_DEFAULTS if self.zero_delay else DEFAULTS
        self.defaults = dict(base)
        self.defaults.update(normalize_settings(data.pop("defaults", None)))
        rules = data.pop("rules", None) or []
        use_builtin = data.pop("builtinRules", True)
        # process mode (tools/nodesim/processes.py): parsed by the simulator, None = off
        self.processes = data.pop("processes", None)
        self.path = None
        self.rules = [normalize_rule(r) for r in ((BUILTIN_RULES if use_builtin else []) + list(rules))]
        if data:
            raise ValueError("unknown nodesim config keys: %s" % ", ".join(sorted(data)))

    @classmethod
    def load(cls, path=None, zero_delay=None):
        data = {}
        if path:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            if path.endswith(".json"):
                data = json.loads(text)
            else:
                import yaml  # pylint: disable=import-outside-toplevel

                data = yaml.safe_load(text) or {}
        cfg = cls(data, zero_delay=zero_delay)
        cfg.path = os.path.abspath(path) if path else None
        return cfg

    def behaviour(self, image, container, namespace, annotations=None, seed=None):
        """Effective behaviour dict for one container instance; a ``lognormal(...)`` duration is drawn with
        ``seed`` (the pod's name), so each pod gets its own value and always the same one."""
        result = dict(self.defaults)
        for rule in self.rules:
            if rule_matches(rule, image, container, namespace):
                result.update(rule["settings"])
        annotations = annotations or {}
        raw_rules = annotations.get(ANNOTATION_PREFIX + "rules")
        if raw_rules:
            try:
                for rule in json.loads(raw_rules):
                    rule = normalize_rule(rule)
                    if rule_matches(rule, image, container, namespace):
                        result.update(rule["settings"])
            except (ValueError, TypeError) as exc:
                raise ValueError("bad %srules annotation: %s" % (ANNOTATION_PREFIX, exc)) from exc
        per_container = {}
        for key, value in annotations.items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue
            name = key[len(ANNOTATION_PREFIX):]
            if name == "rules":
                continue
            if "." in name:
                cname, setting = name.rsplit(".", 1)
                if cname == container:
                    per_container[setting] = value
            else:
                k, v = normalize_setting(name, value)
                result[k] = v
        for setting, value in per_container.items():
            k, v = normalize_setting(setting, value)
            result[k] = v
        for key, value in result.items():
            if isinstance(value, Lognormal):
                result[key] = value.sample(seed)
        if result.get("exitAfter") is not None and result.get("crashAfter") is None:
            result["crashAfter"] = result["exitAfter"]
            if result.get("exitCode") is None:
                result["exitCode"] = 0
        if result.get("crashAfter") is not None and result.get("exitCode") is None:
            result["exitCode"] = 1
        return result
