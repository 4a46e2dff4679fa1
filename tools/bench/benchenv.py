"""What every benchmark line says about where it ran.

* ``profile()``: the control-plane profile the benchmark ran on, from ``MESHOPS_BENCH_PROFILE`` (set by
  tools/bench/run.sh): ``default`` is the control plane the integration tests use; ``bench`` the same control
  plane with the node simulator's Events off. (On kube-apiserver 1.20 it also turned the ServerSideApply gate off;
  that gate is GA and locked on every supported version, so managedFields bookkeeping is now always counted.)
  Both run on the same 2 cores as the collection itself.
* ``cpu_calibration()``: seconds a fixed pure-Python loop takes here and now, so figures from runs on machines
  of different speed (or the same VM on a busier host) can be compared.
"""

import os
import time


def profile():
    return os.environ.get("MESHOPS_BENCH_PROFILE", "unknown")


def cpu_calibration(iterations=5_000_000):
    start = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i
    return round(time.perf_counter() - start, 3)


def stamp(line):
    """Add the profile and the calibration to a benchmark's JSON line (a dict); return it."""
    line["profile"] = profile()
    line["cpu_calibration_s"] = cpu_calibration()
    return line
