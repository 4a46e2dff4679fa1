#!/usr/bin/env bash
# Run every benchmark (tools/bench/bench_*.py); each prints JSON lines on stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
status=0
for bench in tools/bench/bench_*.py; do
  [ -e "$bench" ] || continue
  echo "# $bench" >&2
  .venv/bin/python "$bench" || { echo "{\"bench\": \"$(basename "$bench" .py)\", \"error\": \"exit $?\"}"; status=1; }
done
exit $status
