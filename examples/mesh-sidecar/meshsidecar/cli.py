"""Command line: ``python -m meshsidecar {serve,hook post-start,ready,app,load}``.

==========================================  ===============================================================
command                                     contract
==========================================  ===============================================================
``serve``                                   run the sidecar (env config, see ``config.py``); exit 0 on
                                            SIGTERM, 1 if it could not start (FAILED), 2 on bad env
``hook post-start [--timeout 60]``          postStart hook; exit codes in ``hook.py`` (0 / 1 / 2)
``  [--wait switched|drained]``
``ready``                                   readiness exec check (0 ready, 1 not ready, 2 bad env)
``app [--host H] [--port N] [--delay-ms]``  test upstream, prints ``{"event":"listening","port":N}``
``load --url U --rate R --duration S``      open-loop load client; ``--json`` prints a summary line,
                                            ``--records F`` writes every attempt; exit 1 if any failed
==========================================  ===============================================================
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from meshsidecar.config import Config, ConfigError
from meshsidecar.roles import RoleError, decide_from_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m meshsidecar", description="meshsidecar: hot-upgradable HTTP/1.1 proxy sidecar and its tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the proxy sidecar")
    hook = sub.add_parser("hook", help="lifecycle hooks")
    hook_sub = hook.add_subparsers(dest="hook", required=True)
    post = hook_sub.add_parser("post-start", help="block until this side serves")
    post.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up (exit 1)")
    post.add_argument(
        "--wait",
        choices=("switched", "drained"),
        default="switched",
        help="return once the old side is draining (default) or drained",
    )
    sub.add_parser("ready", help="readiness check against this process's own control socket")
    app = sub.add_parser("app", help="tiny upstream app for tests")
    app.add_argument("--host", default="127.0.0.1")
    app.add_argument("--port", type=int, default=8080)
    app.add_argument("--delay-ms", type=float, default=0.0)
    load = sub.add_parser("load", help="open-loop load client (no retries)")
    load.add_argument("--url", required=True)
    load.add_argument("--rate", type=float, default=600.0, help="total requests per second")
    load.add_argument("--duration", type=float, default=20.0, help="seconds")
    load.add_argument("--keepalive-workers", type=int, default=16)
    load.add_argument("--close-workers", type=int, default=8)
    load.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    load.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    load.add_argument("--records", help="write every attempt as JSON lines to this file")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "app":
        from meshsidecar import app

        return app.main(args.host, args.port, args.delay_ms)
    if args.command == "load":
        from meshsidecar import loadgen

        return loadgen.main(args)
    try:
        decision = decide_from_env(os.environ)
        cfg = Config.from_env()
    except (RoleError, ConfigError) as exc:
        sys.stderr.write(f"meshsidecar: {exc}\n")
        return 2
    if args.command == "serve":
        from meshsidecar import server

        return server.serve(cfg, decision)
    from meshsidecar import hook

    if args.command == "ready":
        return hook.ready(cfg, decision)
    return hook.post_start(cfg, decision, args.timeout, args.wait)
