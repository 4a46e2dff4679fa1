# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which pods to update in this round (Kruise ``sidecarset_strategy.go:GetNextUpgradePods``). Pure functions.

Decisions:

* Integer-valued strings (``"3"``) are accepted as ints for ``partition`` and ``maxUnavailable`` (Ansible often
  passes strings); anything else that is not ``"<n>%"`` raises ``ParameterError`` (a ``ValueError``).
* Sorting is deterministic: the ActivePods order and the priority order are stable sorts (upstream uses
  ``sort.Slice`` for both, which leaves ties in an unspecified order).
* ``orderPriority``: a pod with none of the keys gets level -1 and sorts first, as the current upstream code does.
* Scatter density comparison uses exact integer arithmetic instead of Go's float32.
* ``updateStrategy.type: NotUpdate`` and ``paused`` yield an empty batch (``stopped`` says why).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math
import re

from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import assess
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import (
    is_pod_active,
    is_pod_ready,
    is_pod_ready_condition,
    is_pod_state_consistent,
    is_pod_updated,
    matching_problem,
    pod_condition,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import match_label_selector
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import update_strategy

_PERCENT_RE = re.compile(r"^(\d+)%$")
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


# ---------------------------------------------------------------------------------------------------------
# Counts
# ---------------------------------------------------------------------------------------------------------

def _int_or_percent(value, what):
    """Return ``(number, is_percent)``."""
    if isinstance(value, bool):
        raise ParameterError("%s must be an int or a percentage, got %r" % (what, value))
    if isinstance(value, int):
        return value, False
    text = str(value).strip()
    match = _PERCENT_RE.match(text)
    if match:
        return int(match.group(1)), True
    if re.match(r"^-?\d+$", text):
        return int(text), False
    raise ParameterError("%s must be an int or a percentage like '25%%', got %r" % (what, value))


def calculate_partition(partition, replicas):
    """``CalculatePartitionReplicas``: the number of matched pods to leave on old revisions.

    ``None`` -> 0. A percentage is rounded up (a value above 0% keeps at least one old pod); a percentage below
    100% that would keep every pod of more than one replica keeps ``replicas - 1``. Clamped to ``[0, replicas]``.
    """
    if partition is None:
        return 0
    number, is_percent = _int_or_percent(partition, "partition")
    value = int(math.ceil(number * replicas / 100.0)) if is_percent else number
    if replicas > 1 and value == replicas and is_percent and number != 100:
        value = replicas - 1
    return max(min(value, replicas), 0)


def max_unavailable_count(value, matched):
    """``maxUnavailable`` as a count: the int, or the percentage of ``matched`` rounded UP; ``None`` -> 1."""
    if value is None:
        return 1
    number, is_percent = _int_or_percent(value, "maxUnavailable")
    if number < 0:
        raise ParameterError("maxUnavailable must not be negative, got %r" % (value,))
    if is_percent:
        return int(math.ceil(number * matched / 100.0))
    return number


# ---------------------------------------------------------------------------------------------------------
# Sorting
# ---------------------------------------------------------------------------------------------------------

def _parse_time(value):
    """RFC3339 -> naive UTC datetime; ``None``/empty -> ``None`` (Go's zero time)."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    if "." in text:
        head, tail = text.split(".", 1)
        digits = re.match(r"^\d+", tail).group(0)
        text = head + "." + digits[:6].ljust(6, "0") + tail[len(digits):]
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


_EPOCH = datetime.datetime(1970, 1, 1)


def _zero_then_latest(value):
    """``afterOrZero`` as a sort key: a zero time sorts first; otherwise the later time first."""
    return (0, 0) if value is None else (1, (_EPOCH - value) // datetime.timedelta(microseconds=1))


def _active_pods_key(pod):
    """``controller.ActivePods.Less`` as a sort key: unscheduled, phase, not ready, most recently ready (ready pods
    only), more restarts, newer ``creationTimestamp``."""
    status = pod.get("status") or {}
    ready = is_pod_ready_condition(pod)
    ready_time = _parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime")) if ready else None
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        _PHASE_ORDINAL.get(status.get("phase"), 0),
        ready,
        _zero_then_latest(ready_time),
        -max([s.get("restartCount") or 0 for s in status.get("containerStatuses") or []] or [0]),
        _zero_then_latest(_parse_time((pod.get("metadata") or {}).get("creationTimestamp"))),
    )


def _labels(pod):
    return (pod.get("metadata") or {}).get("labels") or {}


def _int_suffix(value):
    match = re.search(r"(\d+)$", value or "")
    return int(match.group(1)) if match else 0


def _priority_key(strategy):
    """Sort key for ``priorityStrategy`` (lower sorts first), or ``None`` when unset."""
    weights = (strategy or {}).get("weightPriority") or []
    orders = (strategy or {}).get("orderPriority") or []
    if weights:
        def weight_key(pod):
            labels = _labels(pod)
            return -sum(term.get("weight", 0) for term in weights if match_label_selector(term.get("matchSelector") or {}, labels))
        return weight_key
    if orders:
        def order_key(pod):
            labels = _labels(pod)
            for level, term in enumerate(orders):
                if term.get("orderedKey") in labels:
                    return level, -_int_suffix(labels[term["orderedKey"]])
            return -1, 0
        return order_key
    return None


def _scatter_terms(strategy, all_pods, waiting):
    """``parseUpdateScatterTerms`` then ``getScatterTerms``: expand ``*`` and order by matched count."""
    terms = []
    for term in strategy or []:
        expanded = [term] if term.get("value") != "*" else [
            {"key": term["key"], "value": _labels(p)[term["key"]]} for p in all_pods if term["key"] in _labels(p)]
        for candidate in expanded:
            pair = {"key": candidate["key"], "value": candidate["value"]}
            if pair not in terms:
                terms.append(pair)
    if len(terms) <= 1:
        return terms
    counted = [(sum(1 for p in waiting if _labels(p).get(term["key"]) == term["value"]), term) for term in terms]
    return [term for count, term in sorted(counted, key=lambda item: -item[0]) if count]


def _go_round(value):
    return int(math.floor(value + 0.5))


def _scatter_group(matched, unmatched):
    groups = min(matched, unmatched)
    return {"groups": groups, "matched": _go_round(matched / groups), "unmatched": _go_round(unmatched / groups), "remainder": 0}


def _group_by_density(total_matched, total_unmatched, update_matched, update_unmatched):
    """``calculateGroupByDensity``."""
    update_group = _scatter_group(update_matched, update_unmatched)
    if total_unmatched * update_matched >= update_unmatched * total_matched:
        return update_group
    group = _scatter_group(total_matched, total_unmatched)  # the density of all pods, in groups the update fills
    group["groups"] = min(update_matched // group["matched"], update_unmatched // group["unmatched"])
    group["remainder"] = update_unmatched - group["groups"] * group["unmatched"]
    return group


def _scatter_by_term(term, all_pods, waiting):
    """``scatterPodsByRule``: spread the matched pods evenly, the last matched one at the very end."""
    def hit(pod):
        return _labels(pod).get(term["key"]) == term["value"]

    matched = [p for p in waiting if hit(p)]
    unmatched = [p for p in waiting if not hit(p)]
    if len(matched) <= 1 or len(unmatched) <= 1:
        return waiting
    total_matched = sum(1 for p in all_pods if hit(p)) - 1
    total_unmatched = sum(1 for p in all_pods if not hit(p))
    last = matched.pop()
    group = _group_by_density(total_matched, total_unmatched, len(matched), len(unmatched))
    ordered = unmatched[:group["remainder"]]
    unmatched = unmatched[group["remainder"]:]
    for group_number in range(group["groups"]):
        ordered.extend(matched[:group["matched"]])
        matched = matched[group["matched"]:]
        ordered.extend(unmatched[:group["unmatched"]])
        unmatched = unmatched[group["unmatched"]:]
    return ordered + matched + unmatched + [last]


def sort_pods(pods, sidecarset, all_pods=None):
    """Return ``pods`` in update order (``GetNextUpgradePods``'s sort); the first ones are updated first.

    ActivePods order (unscheduled, Pending < Unknown < Running, not-ready, most recently ready, more restarts,
    newer creationTimestamp), then a stable sort by ``priorityStrategy``, then the scatter sort of
    ``scatterStrategy``. ``all_pods`` (default ``pods``) are the matched pods used to expand ``value: "*"`` and
    for the scatter totals.
    """
    all_pods = pods if all_pods is None else all_pods
    strategy = update_strategy(sidecarset)
    ordered = sorted(pods, key=_active_pods_key)
    priority = _priority_key(strategy.get("priorityStrategy"))
    if priority is not None:
        ordered = sorted(ordered, key=priority)
    scatter = strategy.get("scatterStrategy")
    if scatter and len(ordered) > 1:
        for term in _scatter_terms(scatter, all_pods, ordered):
            ordered = _scatter_by_term(term, all_pods, ordered)
    return ordered


# ---------------------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------------------

def is_unavailable(pod, sidecarset):
    """Updated and (not consistent or not ``is_pod_ready``): counts against maxUnavailable."""
    return is_pod_updated(pod, sidecarset) and not (is_pod_state_consistent(pod, sidecarset) and is_pod_ready(pod, sidecarset))


def pick_batch(pods, sidecarset, max_unavailable=None, partition=None):
    """Pick this round's pods (``GetNextUpgradePods``). ``max_unavailable``/``partition`` override ``spec.updateStrategy``.

    Returns a dict:

    * ``batch``: pods to upgrade now, in order;
    * ``waiting``: upgradable pods left for a later round (budget exhausted, or stopped);
    * ``partitioned``: upgradable pods held back by ``partition`` (the last ones of the order);
    * ``not_upgradable``: ``[(pod, reason)]``, including active pods that are not matching (not injected, pair
      missing);
    * ``in_flight``: not-updated pods with a write still being applied (``(True, False)``), and updated pods
      that are unavailable (upgrading, migrating, awaiting or doing the reset, failed);
    * ``reset``: matching pods that qualify for the reset step now (``flipPodSidecarContainerDo``; not throttled);
    * ``matched``: number of matching pods; ``unavailable``: count before this batch; ``max_unavailable``: the
      budget as a count; ``partition``: as a count; ``stopped``: ``""`` or why nothing is picked.

    Inactive pods are ignored; pods not selected by ``updateStrategy.selector`` appear nowhere but in ``matched``.
    """
    strategy = dict(update_strategy(sidecarset))
    if max_unavailable is not None:
        strategy["maxUnavailable"] = max_unavailable
    if partition is not None:
        strategy["partition"] = partition
    result = {"batch": [], "waiting": [], "partitioned": [], "not_upgradable": [], "in_flight": [], "reset": [], "stopped": ""}
    matched = []
    for pod in pods:
        if not is_pod_active(pod):
            continue
        problem = matching_problem(pod, sidecarset)
        if problem:
            result["not_upgradable"].append((pod, problem))
        else:
            matched.append(pod)
    selector = strategy.get("selector")
    candidates = []
    for pod in matched:
        facts = assess(pod, sidecarset)  # IsSidecarSetUpgradable: refusal (false, false), unapplied (true, false)
        if facts.updated:
            if is_unavailable(pod, sidecarset):
                result["in_flight"].append(pod)
        elif selector is None or match_label_selector(selector, _labels(pod)):
            if facts.refusal:
                result["not_upgradable"].append((pod, facts.refusal))
            elif facts.unapplied:
                result["in_flight"].append(pod)
            else:
                candidates.append(pod)
        if not facts.refusal and not facts.reset_blocker:
            result["reset"].append(pod)
    result["matched"] = len(matched)
    result["partition"] = calculate_partition(strategy.get("partition"), len(matched))
    result["max_unavailable"] = max_unavailable_count(strategy.get("maxUnavailable"), len(matched))
    result["unavailable"] = sum(1 for pod in matched if is_unavailable(pod, sidecarset))
    ordered = sort_pods(candidates, sidecarset, all_pods=matched)
    keep = max(len(ordered) - result["partition"], 0)
    ordered, result["partitioned"] = ordered[:keep], ordered[keep:]
    if strategy.get("type") == "NotUpdate":
        result["stopped"] = "updateStrategy.type is NotUpdate"
    elif strategy.get("paused"):
        result["stopped"] = "updateStrategy is paused"
    if result["stopped"]:
        result["waiting"] = ordered
        result["reset"] = []
        return result
    unavailable = result["unavailable"]
    for index, pod in enumerate(ordered):
        if not is_pod_ready(pod, sidecarset):
            result["batch"].append(pod)
            continue
        if unavailable >= result["max_unavailable"]:
            result["waiting"] = ordered[index:]
            break
        unavailable += 1
        result["batch"].append(pod)
    return result
