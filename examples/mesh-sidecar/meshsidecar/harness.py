"""Loopback orchestration of real processes, shared by the integration tests and the benchmark.

Contract: everything listens on 127.0.0.1 only; every process started through a
:class:`Loopback` is stopped (SIGTERM, then SIGKILL after a bound) and reaped when the
``with`` block ends, whatever happened inside it. Processes run ``sys.executable -m meshsidecar``
with ``PYTHONPATH`` pointing at this package's parent directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from meshsidecar.status import read_status

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Proc:
    """A started process, its role label and where its stderr goes."""

    name: str
    popen: subprocess.Popen
    stderr_path: str
    version: Optional[int] = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""


class Loopback:
    """A scratch directory plus the processes of one scenario (use as a context manager)."""

    def __init__(self, workdir: str, drain_seconds: float = 5.0, env: Optional[Dict[str, str]] = None) -> None:
        self.workdir = workdir
        self.control_dir = os.path.join(workdir, "ctl")
        os.makedirs(self.control_dir, mode=0o700, exist_ok=True)
        self.procs: List[Proc] = []
        self.upstream_port = 0
        self.base_env = dict(os.environ)
        self.base_env["PYTHONPATH"] = PACKAGE_PARENT + (
            os.pathsep + self.base_env["PYTHONPATH"] if self.base_env.get("PYTHONPATH") else ""
        )
        self.base_env.update(
            {
                "MESH_SIDECAR_CONTROL_DIR": self.control_dir,
                "MESH_SIDECAR_LISTEN": "127.0.0.1:0",
                "MESH_SIDECAR_DRAIN_SECONDS": str(drain_seconds),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for key in ("SIDECARSET_VERSION", "SIDECARSET_VERSION_ALT", "MESH_SIDECAR_EMPTY", "MESH_SIDECAR_FAULT"):
            self.base_env.pop(key, None)
        self.base_env.update(env or {})

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Loopback":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop_all()

    def _spawn(self, name: str, args: List[str], env: Dict[str, str], stdout=subprocess.DEVNULL) -> Proc:
        err_path = os.path.join(self.workdir, f"{name}.{len(self.procs)}.err")
        with open(err_path, "wb") as err:
            popen = subprocess.Popen(
                [sys.executable, "-m", "meshsidecar", *args],
                env=env,
                stdout=stdout,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        proc = Proc(name, popen, err_path)
        self.procs.append(proc)
        return proc

    def sidecar_env(self, version: int, alt: int, build: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """The environment Kruise would give a copy with these annotations."""
        env = dict(self.base_env)
        env.update(
            {
                "SIDECARSET_VERSION": str(version),
                "SIDECARSET_VERSION_ALT": str(alt),
                "MESH_SIDECAR_BUILD": build,
                "MESH_SIDECAR_UPSTREAM": f"127.0.0.1:{self.upstream_port}",
            }
        )
        env.update(extra or {})
        return env

    def start_app(self, delay_ms: float = 2.0, timeout: float = 10.0) -> int:
        """Start the upstream app on a free port; returns the port."""
        proc = self._spawn(
            "app", ["app", "--port", "0", "--delay-ms", str(delay_ms)], dict(self.base_env), stdout=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        line = proc.popen.stdout.readline()  # the app prints it once listening
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"app did not start: {proc.stderr()}")
        self.upstream_port = int(json.loads(line)["port"])
        return self.upstream_port

    def start_sidecar(self, version: int, alt: int, build: str, extra: Optional[Dict[str, str]] = None) -> Proc:
        proc = self._spawn(f"sidecar-{version}", ["serve"], self.sidecar_env(version, alt, build, extra))
        proc.version = version
        return proc

    def hook(self, version: int, alt: int, timeout: float = 60.0, wait: str = "switched") -> subprocess.Popen:
        """Start the postStart hook exactly as the SidecarSet runs it; returns the Popen."""
        args = [sys.executable, "-m", "meshsidecar", "hook", "post-start", "--timeout", str(timeout), "--wait", wait]
        return subprocess.Popen(
            args,
            env=self.sidecar_env(version, alt, "hook"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    def run_cli(
        self, version: int, alt: int, *args: str, timeout: float = 30.0, extra: Optional[Dict[str, str]] = None
    ) -> int:
        """Run a short command (``ready``, ``hook ...``) with a sidecar's env; returns its exit code."""
        return subprocess.run(
            [sys.executable, "-m", "meshsidecar", *args],
            env=self.sidecar_env(version, alt, "cli", extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        ).returncode

    def start_load(self, port: int, rate: float, duration: float, records: str, **opts) -> Proc:
        args = [
            "load",
            "--url",
            f"http://127.0.0.1:{port}/",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--json",
            "--records",
            records,
        ]
        for key, value in opts.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        return self._spawn("load", args, dict(self.base_env), stdout=subprocess.PIPE)

    # ------------------------------------------------------------------ observation
    def status(self, version: int) -> Optional[dict]:
        return read_status(os.path.join(self.control_dir, f"status-{version}.json"))

    def wait_status(self, version: int, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """Poll ``status-<version>.json`` until ``pred(status)``; raises ``TimeoutError`` with the last one."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.status(version)
            if last is not None and pred(last):
                return last
            time.sleep(0.02)
        raise TimeoutError(f"status-{version}: condition not met in {timeout}s; last={last}")

    def listen_port(self, version: int, timeout: float = 10.0) -> int:
        status = self.wait_status(version, lambda s: s.get("state") == "SERVING" and bool(s.get("listen")), timeout)
        return int(status["listen"].rsplit(":", 1)[1])

    # ------------------------------------------------------------------ teardown
    @staticmethod
    def terminate(proc: Proc, sig: int = signal.SIGTERM, timeout: float = 10.0) -> Optional[int]:
        """Send ``sig`` and reap; SIGKILL after ``timeout``. Returns the exit code (negative = signal)."""
        if proc.popen.poll() is None:
            try:
                proc.popen.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            return proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)
            return None

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                self.terminate(proc, timeout=5.0)
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()
