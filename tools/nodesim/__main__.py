"""CLI: ``python -m nodesim [--kubeconfig F] [--config F] [--nodes N] [--zero-delay] ...``."""

import argparse
import logging
import os
import signal
import sys
import threading

if __package__ in (None, ""):  # `python tools/nodesim/__main__.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "nodesim"  # pylint: disable=redefined-builtin

from nodesim.config import Config  # noqa: E402
from kubeclient import KubeClient  # noqa: E402
from nodesim.kube import POOL_SIZE, Kube  # noqa: E402
from nodesim.simulator import Simulator  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nodesim", description="Simulated nodes + kubelet for a real kube-apiserver")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--context", default=None)
    parser.add_argument("--config", default=os.environ.get("NODESIM_CONFIG"), help="YAML/JSON behaviour config")
    parser.add_argument("--nodes", type=int, default=None, help="number of nodes (default 3, or config 'nodes')")
    parser.add_argument("--zones", default=None, help="comma-separated zone names (default zone-a,zone-b,zone-c)")
    parser.add_argument("--node-prefix", default=None, help="node name prefix (default sim-node-)")
    parser.add_argument("--zero-delay", action="store_true", default=None, help="no simulated delays (benchmarks)")
    parser.add_argument("--no-events", dest="events", action="store_false", default=None, help="do not create Events")
    parser.add_argument("--writers", type=int, default=None, help="writer threads (default 8)")
    parser.add_argument("--process-dir", default=os.environ.get("NODESIM_PROCESS_DIR"),
                        help="process mode: directory of the pods' volumes, logs and pods.json (default: config "
                             "processes.dir, else a temporary directory)")
    parser.add_argument("--ready-file", default=None, help="touch this file once the nodes are registered")
    parser.add_argument("--log-level", default=os.environ.get("NODESIM_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = Config.load(args.config, zero_delay=args.zero_delay)
    kube = Kube(KubeClient(args.kubeconfig, args.context, pool_size=POOL_SIZE, quiet_tls=True))  # loopback, self-signed
    sim = Simulator(
        kube, cfg, node_count=args.nodes, zones=args.zones.split(",") if args.zones else None,
        node_prefix=args.node_prefix, events=args.events, writers=args.writers, process_dir=args.process_dir,
    )

    def _stop(signum, _frame):
        logging.getLogger("nodesim").info("signal %d, stopping", signum)
        sim.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.ready_file:
        def _ready():
            sim.synced.wait()
            with open(args.ready_file, "w", encoding="utf-8") as handle:
                handle.write("%d\n" % os.getpid())
        threading.Thread(target=_ready, daemon=True).start()
    logging.getLogger("nodesim").info(
        "starting: %d nodes, zero_delay=%s, config=%s", sim.node_count, cfg.zero_delay, args.config or "-")
    sim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
