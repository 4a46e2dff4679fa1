"""Benchmark: mesh-sidecar hot upgrade (listener fd hand-over) versus a plain restart, on loopback.

Run from the repository root::

    .venv/bin/python tools/bench/bench_handover.py [--rate 600] [--duration 20] [--scenario hot|naive|both]

Prints one JSON line per scenario:

* ``"bench": "handover_hot"``: v1 serving under open-loop load; at ``--upgrade-at`` seconds the v2
  process starts with the env of a Kruise upgrade (``VERSION=R``, ``ALT=1``) and its postStart
  hook runs; when the hook exits 0 the old process gets SIGTERM (the reset).
* ``"bench": "handover_naive"``: the same load, but at ``--upgrade-at`` the old process gets
  SIGTERM, exits, and only then the new one starts and binds (what a plain container restart does).

Figures: ``requests``, ``failures`` (+ classes), ``handover_ms`` (HELLO to READY at the old side),
``drain_ms``, ``hook_s``, ``gap_ms`` (naive: nobody listening), p50/p99 latency of the baseline
(before the upgrade starts) and of the upgrade window (start until hook/drain end + 0.5 s),
``served_by_version``. ``target_ok`` is ``failures == 0 and requests >= 10000 and
handover_ms <= 20`` (the naive scenario has no hand-over, so only its failures can meet the target).
Everything runs on 127.0.0.1; each run is bounded by ``rate * duration`` requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "examples", "mesh-sidecar"))

from meshsidecar.harness import Loopback  # noqa: E402  pylint: disable=wrong-import-position
from meshsidecar.loadgen import load_records, summarize  # noqa: E402  pylint: disable=wrong-import-position

NEW_VERSION = 1098297016
MIN_REQUESTS = 10000
MAX_HANDOVER_MS = 20.0


def _windows(records, t_upgrade, t_settled):
    base = summarize(records, t_to=t_upgrade)
    during = summarize(records, t_from=t_upgrade, t_to=t_settled)
    return {
        "p50_baseline_ms": base["p50_ms"],
        "p99_baseline_ms": base["p99_ms"],
        "p50_upgrade_ms": during["p50_ms"],
        "p99_upgrade_ms": during["p99_ms"],
        "max_upgrade_ms": during["max_ms"],
        "upgrade_window_requests": during["requests"],
    }


def run_hot(workdir: str, rate: float, duration: float, upgrade_at: float, drain: float) -> dict:
    with Loopback(workdir, drain_seconds=drain) as lb:
        lb.start_app(delay_ms=2)
        old = lb.start_sidecar(1, 0, "v1")
        port = lb.listen_port(1)
        records_path = os.path.join(workdir, "hot.jsonl")
        load = lb.start_load(port, rate, duration, records_path)
        time.sleep(upgrade_at)
        t_upgrade = time.time()
        new = lb.start_sidecar(NEW_VERSION, 1, "v2")
        hook_rc = lb.hook(NEW_VERSION, 1, timeout=60).wait(90)
        t_hook = time.time()
        old_rc = lb.terminate(old, timeout=drain + 10) if hook_rc == 0 else None
        load.popen.wait(duration + 60)
        old_status = lb.status(1) or {}
        new_rc = lb.terminate(new)
    records = load_records(records_path)
    total = summarize(records)
    settled = max(t_hook, old_status.get("drained_at") or t_hook) + 0.5
    late_v1 = sum(1 for r in records if r.ok and r.version == "1" and r.t_sent > (old_status.get("drained_at") or 1e18))
    handover_ms = old_status.get("handover_ms")
    result = {
        "bench": "handover_hot",
        "rate": rate,
        "duration_s": duration,
        "requests": total["requests"],
        "failures": total["failed"],
        "errors": total["errors"],
        "handover_ms": handover_ms,
        "drain_ms": old_status.get("drain_ms"),
        "inband_closes": old_status.get("inband_closes"),
        "forced_closes": old_status.get("forced_closes"),
        "hook_s": round(t_hook - t_upgrade, 3),
        "hook_rc": hook_rc,
        "old_exit": old_rc,
        "new_exit": new_rc,
        "served_by_version": total["by_version"],
        "v1_after_drained": late_v1,
        "p50_ms": total["p50_ms"],
        "p99_ms": total["p99_ms"],
    }
    result.update(_windows(records, t_upgrade, settled))
    result["target_ok"] = bool(
        total["failed"] == 0
        and total["requests"] >= MIN_REQUESTS
        and handover_ms is not None
        and handover_ms <= MAX_HANDOVER_MS
        and hook_rc == 0
        and late_v1 == 0
    )
    return result


def run_naive(workdir: str, rate: float, duration: float, upgrade_at: float, drain: float) -> dict:
    with Loopback(workdir, drain_seconds=drain) as lb:
        lb.start_app(delay_ms=2)
        old = lb.start_sidecar(1, 0, "v1")
        port = lb.listen_port(1)
        records_path = os.path.join(workdir, "naive.jsonl")
        load = lb.start_load(port, rate, duration, records_path)
        time.sleep(upgrade_at)
        t_upgrade = time.time()
        old_rc = lb.terminate(old, timeout=drain + 10)  # a plain restart: stop the old container first
        t_gone = time.time()
        new = lb.start_sidecar(2, 0, "v2", {"MESH_SIDECAR_LISTEN": f"127.0.0.1:{port}"})
        hook_rc = lb.hook(2, 0, timeout=60).wait(90)
        t_hook = time.time()
        up = lb.status(2) or {}
        load.popen.wait(duration + 60)
        new_rc = lb.terminate(new)
    records = load_records(records_path)
    total = summarize(records)
    first_v2 = min((r.t_done for r in records if r.ok and r.version == "2"), default=None)
    result = {
        "bench": "handover_naive",
        "rate": rate,
        "duration_s": duration,
        "requests": total["requests"],
        "failures": total["failed"],
        "errors": total["errors"],
        "handover_ms": None,
        "stop_ms": round((t_gone - t_upgrade) * 1000.0, 3),
        "gap_ms": round((first_v2 - t_gone) * 1000.0, 3) if first_v2 else None,
        "hook_s": round(t_hook - t_upgrade, 3),
        "hook_rc": hook_rc,
        "new_handover": up.get("handover"),
        "old_exit": old_rc,
        "new_exit": new_rc,
        "served_by_version": total["by_version"],
        "p50_ms": total["p50_ms"],
        "p99_ms": total["p99_ms"],
    }
    result.update(_windows(records, t_upgrade, t_hook + 0.5))
    result["target_ok"] = bool(total["failed"] == 0 and total["requests"] >= MIN_REQUESTS)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rate", type=float, default=600.0, help="total requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per scenario")
    parser.add_argument("--upgrade-at", type=float, default=6.0, help="seconds of baseline before the upgrade")
    parser.add_argument("--drain", type=float, default=30.0, help="MESH_SIDECAR_DRAIN_SECONDS")
    parser.add_argument("--scenario", choices=("hot", "naive", "both"), default="both")
    args = parser.parse_args(argv)
    ok = True
    scenarios = [("hot", run_hot), ("naive", run_naive)]
    for name, func in scenarios:
        if args.scenario not in (name, "both"):
            continue
        workdir = tempfile.mkdtemp(prefix=f"bench-{name}-", dir="/tmp")
        try:
            result = func(workdir, args.rate, args.duration, args.upgrade_at, args.drain)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(json.dumps(result, sort_keys=True), flush=True)
        if name == "hot":
            ok = ok and result["target_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
