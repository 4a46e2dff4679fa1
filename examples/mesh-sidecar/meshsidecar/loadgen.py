"""Open-loop HTTP/1.1 load client that never retries: the zero-failure oracle.

Contract:

* The total ``rate`` is split evenly over ``keepalive_workers + close_workers`` workers, each on a
  fixed schedule (``start + phase + k / worker_rate``); the total request count is
  ``round(rate * duration)``, so every run is bounded in count and (via ``timeout``) in time.
* Keep-alive workers reuse one connection; a response with ``Connection: close`` makes them close
  it and dial a fresh one for the next request (not a failure). When a request is still running
  at its successor's scheduled time, the successor is sent as soon as possible and its latency
  still counts from its *intended* time (no coordinated omission).
* Close workers open one connection per request and send ``Connection: close``; their requests
  are launched at their scheduled time whether or not earlier ones have finished.
* Every attempt yields exactly one :class:`Record`. Failures are: connect errors, resets, EOF
  before a complete response, timeouts, and any status other than 200. Nothing is retried.
* ``version``/``build`` come from the ``x-sidecar-version``/``x-sidecar-build`` response headers.
  Times are epoch seconds (``time.time()`` scale) so they compare with the sidecars' status files.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit


@dataclass
class Record:
    """One request attempt."""

    t_intended: float
    t_sent: float
    t_done: float
    ok: bool
    error: str
    status: int
    version: str
    build: str
    keepalive: bool
    worker: int
    conn: int

    @property
    def latency_ms(self) -> float:
        return (self.t_done - self.t_intended) * 1000.0


class _Clock:
    """Monotonic scheduling expressed on the wall-clock scale."""

    def __init__(self) -> None:
        self.mono0 = time.monotonic()
        self.wall0 = time.time()

    def wall(self) -> float:
        return self.wall0 + (time.monotonic() - self.mono0)

    async def sleep_until(self, wall_t: float) -> None:
        delay = wall_t - self.wall()
        if delay > 0:
            await asyncio.sleep(delay)


async def _read_response(reader: asyncio.StreamReader) -> Tuple[int, Dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, dummy, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower().endswith("chunked"):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            await reader.readexactly(size + 2)
    elif status not in (204, 304) and not 100 <= status < 200:
        await reader.read()  # close-delimited
        headers["connection"] = "close"
    return status, headers


class LoadGen:
    """One load run against ``url``; ``await run()`` returns the records."""

    def __init__(
        self,
        url: str,
        rate: float,
        duration: float,
        keepalive_workers: int = 16,
        close_workers: int = 8,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host:port/path URLs are supported, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.rate = rate
        self.duration = duration
        self.keepalive_workers = keepalive_workers
        self.close_workers = close_workers
        self.timeout = timeout
        self.records: List[Record] = []
        self._conn_ids = 0
        self._clock = _Clock()
        self._stop_at = math.inf

    def stop(self) -> None:
        """End the schedule early: no request intended from now on is sent (the ones in flight finish).
        Call it from the event loop running :meth:`run`."""
        self._stop_at = min(self._stop_at, self._clock.wall())

    def _request(self, close: bool) -> bytes:
        conn = "close" if close else "keep-alive"
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"User-Agent: meshsidecar-loadgen\r\nConnection: {conn}\r\n\r\n"
        ).encode()

    def _schedule(self) -> List[List[float]]:
        workers = self.keepalive_workers + self.close_workers
        total = int(round(self.rate * self.duration))
        if workers <= 0 or total <= 0:
            return [[] for dummy in range(workers)]
        per_worker_rate = self.rate / workers
        start = self._clock.wall() + 0.05
        plans: List[List[float]] = [[] for dummy in range(workers)]
        for k in range(total):
            worker = k % workers
            index = k // workers
            phase = (worker / workers) / per_worker_rate
            plans[worker].append(start + phase + index / per_worker_rate)
        return plans

    def _new_conn_id(self) -> int:
        self._conn_ids += 1
        return self._conn_ids

    async def _keepalive_worker(self, worker: int, plan: List[float]) -> None:
        reader: Optional[asyncio.StreamReader] = None
        writer: Optional[asyncio.StreamWriter] = None
        conn_id = 0
        payload = self._request(close=False)
        for t_intended in plan:
            await self._clock.sleep_until(min(t_intended, self._stop_at))
            if t_intended >= self._stop_at:
                break
            t_sent = self._clock.wall()
            status, version, build, error = 0, "", "", ""
            try:
                async with asyncio.timeout(self.timeout):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(self.host, self.port)
                        conn_id = self._new_conn_id()
                    t_sent = self._clock.wall()
                    writer.write(payload)
                    await writer.drain()
                    status, headers = await _read_response(reader)
                version = headers.get("x-sidecar-version", "")
                build = headers.get("x-sidecar-build", "")
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    writer = None
                if status != 200:
                    error = f"http_{status}"
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as exc:
                error = type(exc).__name__
                if writer is not None:
                    writer.close()
                writer = None
            self.records.append(
                Record(
                    t_intended,
                    t_sent,
                    self._clock.wall(),
                    not error,
                    error,
                    status,
                    version,
                    build,
                    True,
                    worker,
                    conn_id,
                )
            )
        if writer is not None:
            writer.close()

    async def _one_shot(self, worker: int, t_intended: float) -> None:
        t_sent = self._clock.wall()
        status, version, build, error, conn_id = 0, "", "", "", 0
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                conn_id = self._new_conn_id()
                t_sent = self._clock.wall()
                writer.write(self._request(close=True))
                await writer.drain()
                status, headers = await _read_response(reader)
            version = headers.get("x-sidecar-version", "")
            build = headers.get("x-sidecar-build", "")
            if status != 200:
                error = f"http_{status}"
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as exc:
            error = type(exc).__name__
        finally:
            if writer is not None:
                writer.close()
        self.records.append(
            Record(
                t_intended, t_sent, self._clock.wall(), not error, error, status, version, build, False, worker, conn_id
            )
        )

    async def _close_worker(self, worker: int, plan: List[float]) -> None:
        tasks = []
        for t_intended in plan:
            await self._clock.sleep_until(t_intended)
            if t_intended >= self._stop_at:
                break
            tasks.append(asyncio.get_running_loop().create_task(self._one_shot(worker, t_intended)))
        await asyncio.gather(*tasks)

    async def run(self) -> List[Record]:
        """Execute the whole schedule; returns one record per scheduled request."""
        plans = self._schedule()
        jobs = []
        for worker, plan in enumerate(plans):
            if worker < self.keepalive_workers:
                jobs.append(self._keepalive_worker(worker, plan))
            else:
                jobs.append(self._close_worker(worker, plan))
        await asyncio.gather(*jobs)
        self.records.sort(key=lambda r: r.t_intended)
        return self.records


def percentile(values: List[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[rank]


def summarize(records: Iterable[Record], t_from: Optional[float] = None, t_to: Optional[float] = None) -> dict:
    """Counts, error classes, versions and latency percentiles of the records intended in ``[t_from, t_to)``."""
    chosen = [
        r for r in records if (t_from is None or r.t_intended >= t_from) and (t_to is None or r.t_intended < t_to)
    ]
    errors: Dict[str, int] = {}
    versions: Dict[str, int] = {}
    builds: Dict[str, int] = {}
    for r in chosen:
        if r.ok:
            versions[r.version] = versions.get(r.version, 0) + 1
            builds[r.build] = builds.get(r.build, 0) + 1
        else:
            key = f"{r.error}({'ka' if r.keepalive else 'close'})"
            errors[key] = errors.get(key, 0) + 1
    lat = [r.latency_ms for r in chosen if r.ok]
    return {
        "requests": len(chosen),
        "ok": sum(1 for r in chosen if r.ok),
        "failed": sum(1 for r in chosen if not r.ok),
        "errors": errors,
        "by_version": versions,
        "by_build": builds,
        "p50_ms": round(percentile(lat, 50), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "max_ms": round(max(lat), 3) if lat else 0.0,
    }


def dump_records(records: Iterable[Record], path: str) -> None:
    """Write one JSON object per record (JSON lines)."""
    with open(path, "w", encoding="utf-8") as handle:
        for r in records:
            handle.write(json.dumps(asdict(r)) + "\n")


def load_records(path: str) -> List[Record]:
    """Read records written by :func:`dump_records`."""
    with open(path, encoding="utf-8") as handle:
        return [Record(**json.loads(line)) for line in handle if line.strip()]


def main(args) -> int:
    """CLI entry (``python -m meshsidecar load``): exit 0 when no request failed, 1 otherwise."""
    gen = LoadGen(args.url, args.rate, args.duration, args.keepalive_workers, args.close_workers, args.timeout)
    t0 = time.time()
    records = asyncio.run(gen.run())
    if args.records:
        dump_records(records, args.records)
    summary = summarize(records)
    summary["duration_s"] = round(time.time() - t0, 3)
    summary["rate"] = args.rate
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value}")
    return 0 if summary["failed"] == 0 else 1
