"""Process mode of the node simulator (tools/nodesim/processes.py), without an API server.

The simulator is driven by hand: a fake ``Kube`` records the status snapshots, ``pump`` runs the
main loop's work (queued callbacks + timers) until a condition holds. Processes are real
(``python -c ...``) and only listen on 127.0.0.1.
"""

import json
import os
import socket
import sys
import time

import pytest

from nodesim.config import Config
from nodesim.processes import ProcessConfig, ProcessManager, expand, resolve_field
from nodesim.simulator import Simulator

# A tiny "image": serves a TCP port until SIGTERM, writes its env into the shared volume.
SERVER = r"""
import json, os, signal, socket, sys, time
port = int(sys.argv[1])
with open(os.path.join(os.environ["SHARED"], "env-%s.json" % os.environ["NAME"]), "w") as f:
    json.dump(dict(os.environ), f)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(8)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


class FakeKube:
    def __init__(self):
        self.statuses = []
        self.deleted = []

    def patch_pod_status(self, ns, name, body):
        self.statuses.append((ns, name, body))

    def delete_pod_now(self, ns, name, uid):
        self.deleted.append((ns, name, uid))

    def create_event(self, ns, body):
        pass

    def bind_pod(self, *args):
        pass


def free_base(stride=10, count=4):
    """A port block base whose ports look free right now."""
    for _attempt in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + stride * count > 65000:
            continue
        ok = True
        for port in range(base, base + stride * count):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    pytest.skip("no free port block")


def make_sim(tmp_path, hook_rc=0, probe_rc_file=None):
    base = free_base()
    data = {
        "zeroDelay": True,
        "events": False,
        "processes": {
            "basePort": base,
            "stride": 10,
            "ports": {"app": 0, "side": 1},
            "env": {"FROM_GLOBAL": "g", "SHARED": "/shared"},
            "overrideEnv": {"LISTEN": "127.0.0.1:{side_port}"},
            "images": [
                {"image": "demo/server:*", "command": ["python", "-c", SERVER], "args": ["{side_port}"],
                 "env": {"FROM_IMAGE": "i", "LISTEN": "ignored"}},
            ],
        },
    }
    cfg = Config(data)
    cfg.path = str(tmp_path / "nodesim.yaml")
    sim = Simulator(FakeKube(), cfg, node_count=1, writers=1, process_dir=str(tmp_path / "procs"))
    sim.nodes.clear()
    from nodesim.simulator import Node  # pylint: disable=import-outside-toplevel

    sim.nodes["n0"] = Node("n0", "zone-a", 0)
    return sim, base


def pod_obj(image="demo/server:1", hook=None, probe=None, annotations=None, uid="u-1234567890"):
    container = {
        "name": "side",
        "image": image,
        "env": [
            {"name": "NAME", "value": "side"},
            {"name": "VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['v']"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "volumeMounts": [{"name": "ctl", "mountPath": "/shared"}],
    }
    if hook:
        container["lifecycle"] = {"postStart": {"exec": {"command": hook}}}
    if probe:
        container["readinessProbe"] = {"exec": {"command": probe}, "periodSeconds": 1}
    return {
        "metadata": {"namespace": "ns", "name": "p", "uid": uid, "annotations": dict(annotations or {"v": "1"})},
        "spec": {"nodeName": "n0", "containers": [container], "volumes": [{"name": "ctl", "emptyDir": {}}],
                 "terminationGracePeriodSeconds": 5},
        "status": {},
    }


def pump(sim, until, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while not sim.events_q.empty():
            sim.handle(*sim.events_q.get_nowait())
        sim.run_timers()
        sim.flush()
        if until():
            return True
        time.sleep(0.02)
    raise AssertionError("condition not reached in %.0fs" % timeout)


def container(sim):
    return sim.pods[("ns", "p")].containers["side"]


def connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def read_env(sim):
    blk = next(iter(sim.procs.blocks.values()))
    path = os.path.join(blk.volumes["ctl"], "env-side.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def env_version(sim):
    """VERSION of the env file the sidecar process wrote, or None while it is being written."""
    try:
        return read_env(sim).get("VERSION")
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------ pure helpers


def test_expand_and_fields():
    assert expand("127.0.0.1:{port1} {unknown} {json}", {"port1": "5"}) == "127.0.0.1:5 {unknown} {json}"
    meta = {"name": "p", "annotations": {"version.sidecarset.kruise.io/a-1": "7"}, "labels": {"x": "y"}}
    assert resolve_field("metadata.annotations['version.sidecarset.kruise.io/a-1']", meta) == "7"
    assert resolve_field("metadata.annotations['missing']", meta) == ""
    assert resolve_field("metadata.labels['x']", meta) == "y"
    assert resolve_field("metadata.name", meta) == "p"
    assert resolve_field("status.nothing", meta) is None


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown processes keys"):
        ProcessConfig({"bogus": 1})
    with pytest.raises(ValueError, match="image"):
        ProcessConfig({"images": [{"command": ["x"]}]})
    with pytest.raises(ValueError, match="offsets"):
        ProcessConfig({"stride": 2, "ports": {"a": 5}})
    cfg = ProcessConfig({"images": [{"image": "a/*:v1", "command": ["x"]}, {"image": "a/*", "command": ["y"]}]})
    assert cfg.image_spec("a/b:v1")["command"] == ["x"]
    assert cfg.image_spec("a/b:v2")["command"] == ["y"]
    assert cfg.image_spec("other:1") is None
    # no processes key: process mode off, the simulator has no manager
    sim = Simulator(FakeKube(), Config({}), node_count=1, writers=1)
    assert sim.procs is None


def test_argv_follows_kubernetes_command_args(tmp_path):
    mgr = ProcessManager(ProcessConfig({"basePort": 30000}), post=lambda *a: None, root=str(tmp_path))
    spec = {"command": ["python", "-m", "x"], "args": ["serve"], "env": {}, "overrideEnv": {}}
    variables = {"python": sys.executable, "port": "1"}
    assert mgr.argv(spec, {}, variables, []) == [sys.executable, "-m", "x", "serve"]
    assert mgr.argv(spec, {"args": ["hook", "{port}"]}, variables, []) == [sys.executable, "-m", "x", "hook", "1"]
    assert mgr.argv(spec, {"command": ["/bin/true"]}, variables, []) == ["/bin/true"]
    assert mgr.exec_argv(["cat", "/run/x/f"], variables, [("/run/x", "/tmp/v0")]) == ["cat", "/tmp/v0/f"]
    assert mgr.rewrite("/run/xy", [("/run/x", "/tmp/v0")]) == "/run/xy"
    mgr.shutdown()


# ------------------------------------------------------------------------------------ simulator


def test_process_lifecycle_env_hook_probe_image_change_delete(tmp_path):
    sim, base = make_sim(tmp_path)
    marker = tmp_path / "hook-ran"
    hook = ["python", "-c", "import os; open(%r, 'a').write(os.environ['VERSION'] + '\\n')" % str(marker)]
    probe = ["python", "-c", "import os, sys; sys.exit(0 if os.path.exists(sys.argv[1]) else 1)", "/shared/env-side.json"]
    try:
        sim.handle("ADDED", pod_obj(hook=hook, probe=probe))
        pump(sim, lambda: container(sim).ready)
        c = container(sim)
        first_pid = c.proc.pid
        assert connectable(base + 1)
        env = read_env(sim)
        assert env["VERSION"] == "1" and env["POD"] == "p"
        assert env["FROM_GLOBAL"] == "g" and env["FROM_IMAGE"] == "i"
        assert env["LISTEN"] == "127.0.0.1:%d" % (base + 1)   # overrideEnv wins, templated
        assert env["SHARED"].startswith(str(tmp_path / "procs"))  # mountPath rewritten to the pod's volume
        assert marker.read_text() == "1\n"                        # postStart ran with the container's env
        pump(sim, lambda: sim.kube.statuses and sim.kube.statuses[-1][2]["status"]["containerStatuses"][0]["ready"])
        with open(sim.procs.status_path, encoding="utf-8") as handle:
            pods = json.load(handle)["pods"]
        assert pods["ns/p"]["ports"] == {"app": base, "side": base + 1}
        assert pods["ns/p"]["containers"]["side"]["pid"] == first_pid

        # in-place image change with new annotations: old process SIGTERMed, new one sees the new value
        obj = pod_obj(image="demo/server:2", hook=hook, probe=probe, annotations={"v": "2"})
        sim.handle("MODIFIED", obj)
        # the readiness probe sees the old process's env file too, so also wait for the new process to write its own
        # (under load the new twin can turn ready first)
        pump(sim, lambda: container(sim).ready and container(sim).proc.pid != first_pid and env_version(sim) == "2")
        c = container(sim)
        assert c.image == "demo/server:2" and c.restart_count == 1
        assert c.last_state["containerID"] and c.last_state["exitCode"] == 0
        assert read_env(sim)["VERSION"] == "2"
        assert marker.read_text() == "1\n2\n"
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)

        # deletion: SIGTERM, the pod is deleted once the process exited
        second = c.proc
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        sim.handle("MODIFIED", obj)
        pump(sim, lambda: sim.kube.deleted or sim.writer.pending() == 0 and not second.alive)
        pump(sim, lambda: not second.alive)
        assert not connectable(base + 1)
    finally:
        sim.stop()
        sim.procs.shutdown()


def test_failing_hook_restarts_the_container(tmp_path):
    sim, _base = make_sim(tmp_path)
    try:
        sim.handle("ADDED", pod_obj(hook=["python", "-c", "import sys; sys.exit(3)"]))
        pump(sim, lambda: container(sim).restart_count >= 1)
        c = container(sim)
        assert not c.ready
        assert c.last_state["exitCode"] == 137
        assert c.state.get("waiting", {}).get("reason") in ("PostStartHookError", "CrashLoopBackOff", "ContainerCreating")
    finally:
        sim.stop()
        sim.procs.shutdown()


def test_a_process_that_exits_is_a_crash(tmp_path):
    sim, _base = make_sim(tmp_path)
    try:
        obj = pod_obj()
        obj["spec"]["containers"][0]["command"] = ["python", "-c", "import sys; sys.exit(4)"]
        sim.handle("ADDED", obj)
        pump(sim, lambda: container(sim).restart_count >= 1)
        assert container(sim).last_state["exitCode"] == 4
        assert container(sim).last_state["reason"] == "Error"
    finally:
        sim.stop()
        sim.procs.shutdown()


def test_forgotten_pod_kills_its_processes_and_frees_the_block(tmp_path):
    sim, _base = make_sim(tmp_path)
    try:
        sim.handle("ADDED", pod_obj())
        pump(sim, lambda: container(sim).ready)
        handle = container(sim).proc
        sim.handle("DELETED", pod_obj())
        pump(sim, lambda: not handle.alive and not sim.procs.blocks)
    finally:
        sim.stop()
        sim.procs.shutdown()
