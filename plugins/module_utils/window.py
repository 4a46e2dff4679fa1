# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade driver's rules, as pure functions: the stop rule, the maxUnavailable window, progress.

* ``over_fail_limit(failed, size, max_fail_percentage)``: the one stop rule (the driver's; the rollout role's
  bookkeeping, ``rollout_journal``, imports it from here).
* ``window_capacity(window, occupying, outside_unavailable)``: how many more pods may start now. Kruise's
  controller keeps at most ``maxUnavailable`` matched pods unavailable (``sidecarset_strategy.go``:
  ``calculateUpgradeCount``); the driver applies it continuously, pod by pod, instead of once per round.
* ``progress(...)`` and ``progress_line(snapshot)``: the live progress record (done, in flight, failed, left,
  rate, estimated time left) and its one-line form, printed by the ``sidecar_upgrade`` action plugin.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def over_fail_limit(failed, size, max_fail_percentage):
    """True when ``failed`` pods of ``size`` exceed ``max_fail_percentage`` percent of them (any failure at 0%)."""
    return failed > 0 and failed * 100 > int(max_fail_percentage) * size


def window_capacity(window, occupying, outside_unavailable=0):
    """Pods that may start now: ``window`` minus the pods of the run holding a slot, minus the other pods already
    unavailable; ``window`` 0 or less means no window (everything may start)."""
    if window is None or window <= 0:
        return float("inf")
    return max(0, int(window) - int(occupying) - int(outside_unavailable))


def progress(total, done, failed, in_flight, started, now, events=None):
    """The progress record: counts, the rate (pods finished per second since ``started``) and the time left."""
    finished = done + failed
    left = max(0, total - finished - in_flight)
    elapsed = max(0.0, now - started)
    rate = finished / elapsed if elapsed > 0 else 0.0
    remaining = left + in_flight
    eta = round(remaining / rate, 1) if rate > 0 else None
    return {
        "total": total, "done": done, "failed": failed, "in_flight": in_flight, "left": left,
        "elapsed": round(elapsed, 1), "rate": round(rate, 2), "eta": eta if remaining else 0.0,
        "events": list(events or []),
    }


def progress_line(snapshot, label=""):
    """``[label] 412/1000 done, 100 in flight, 0 failed, 488 left, 23.5 pods/s, about 25 s left``."""
    eta = snapshot.get("eta")
    return "%s%d/%d done, %d in flight, %d failed, %d left, %s pods/s, %s (%s s elapsed)" % (
        ("[%s] " % label) if label else "", snapshot["done"], snapshot["total"], snapshot["in_flight"], snapshot["failed"],
        snapshot["left"], snapshot["rate"], "about %s s left" % eta if eta is not None else "time left unknown", snapshot["elapsed"])
