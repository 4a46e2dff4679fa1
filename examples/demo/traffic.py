"""Loopback traffic through every pod's sidecar while a rollout runs (make demo, test_demo_e2e).

    PYTHONPATH=examples/mesh-sidecar python examples/demo/traffic.py --ports 21001,21011 \
        --rate 20 --max-duration 300 --out traffic.json [--records-dir DIR]

One meshsidecar ``LoadGen`` per port (the open-loop, never-retrying load client of
examples/mesh-sidecar), all in one event loop. It runs until SIGTERM/SIGINT or ``--max-duration``
seconds (so it is bounded in time and in count: at most rate x max-duration requests per port),
lets the requests in flight finish, then writes one JSON summary (total and per port: requests,
failed, errors, builds that answered, latency percentiles) and exits 0 if nothing failed, else 1.
Only 127.0.0.1 is contacted, or with ``--targets IP:PORT,...`` the given addresses (the MOSN demo
on a real node: the pods' own IPs on the node's bridge, examples/mosn/demo.py).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time

from meshsidecar.loadgen import LoadGen, dump_records, summarize


async def _run(args):
    if args.targets:
        ports = [t.strip() for t in args.targets.split(",") if t.strip()]
        urls = {t: "http://%s/" % t for t in ports}
    else:
        ports = [int(p) for p in args.ports.split(",") if p.strip()]
        urls = {p: "http://127.0.0.1:%d/" % p for p in ports}
    gens = {port: LoadGen(urls[port], args.rate, args.max_duration,
                          args.keepalive_workers, args.close_workers, args.timeout) for port in ports}
    loop = asyncio.get_running_loop()
    stopped = {"at": None}

    def stop():
        if stopped["at"] is None:
            stopped["at"] = time.time()
            for gen in gens.values():
                gen.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    t0 = time.time()
    if args.started_file:
        with open(args.started_file, "w", encoding="utf-8") as handle:
            handle.write("%f\n" % t0)
    results = await asyncio.gather(*(gen.run() for gen in gens.values()))
    per_port = {}
    everything = []
    for port, records in zip(gens, results):
        per_port[str(port)] = summarize(records)
        everything.extend(records)
        if args.records_dir:
            dump_records(records, os.path.join(args.records_dir, "records-%s.jsonl" % str(port).replace(":", "_")))
    total = summarize(everything)
    total.update(duration_s=round(time.time() - t0, 3), ports=len(ports), rate_per_port=args.rate,
                 stopped_by_signal=stopped["at"] is not None)
    return {"total": total, "per_port": per_port}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--ports", help="comma-separated sidecar ports on 127.0.0.1")
    where.add_argument("--targets", help="comma-separated IP:PORT (pod IPs of a real node)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second per port")
    parser.add_argument("--max-duration", type=float, default=300.0, help="hard limit, seconds")
    parser.add_argument("--keepalive-workers", type=int, default=4)
    parser.add_argument("--close-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--out", help="write the JSON summary here (also printed)")
    parser.add_argument("--records-dir", help="write every attempt as JSON lines, one file per port")
    parser.add_argument("--started-file", help="touched once the traffic starts")
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    text = json.dumps(result, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text, flush=True)
    return 0 if result["total"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
