"""The rollout role's health gates (roles/rollout/tasks/gates.yml) against the real API server + node simulator.

With ``rollout_health_url`` or ``rollout_health_tasks`` set, each batch is upgraded with ``phase=upgrade`` (the new
twin serves, the old one idles on its old image), then gated (an HTTP check per migrated pod, the user's task
file), and only the pods that passed are reset (old twin back on the empty image). A pod that fails a gate is
reported failed and keeps both twins; ``rollout_max_fail_percentage`` decides whether the rollout goes on.

The HTTP gate is checked against a small HTTP server run by the test itself on 127.0.0.1: it records every
request (the path names the pod, so the per-pod template is seen evaluated) and answers 503 for chosen pods.
"""

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from modrun import run_module
from test_rollout import (
    EMPTY, PLAYBOOKS, custom_stats, images, make_app, pods_of, run_playbook, sidecarset_doc, total_changed, wait_ready,
    working_image, write_yaml,
)

V1 = "mesh/proxy:v1"
V2 = "mesh/proxy:v2"
HEALTH_REASON = "health check failed"

# The per-pod URL as argument_specs.yml documents it: plain-text placeholders the role replaces for each pod.
POD_URL = "http://127.0.0.1:%d/{namespace}/{name}?pod_ip={pod_ip}&host_ip={host_ip}&node={node}&cluster={cluster}"


# ------------------------------------------------------------------------------------------ helpers


class HealthServer:
    """A threaded HTTP server on 127.0.0.1 (free port) answering 200, or 503 for the pods in ``bad``.

    Paths are ``/<namespace>/<pod>``; every request is recorded as ``(namespace, pod, query)``.
    """

    def __init__(self, bad=()):
        self.bad = set(bad)
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # pylint: disable=invalid-name
                url = urlsplit(self.path)
                namespace, pod = (url.path.strip("/").split("/") + ["", ""])[:2]
                query = {key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
                with server.lock:
                    server.requests.append((namespace, pod, query))
                    status = 503 if pod in server.bad else 200
                body = b"ok\n" if status == 200 else b"unhealthy\n"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, template=POD_URL):
        return template % self.port

    def asked(self):
        """How many requests named each pod."""
        with self.lock:
            return Counter(pod for dummy, pod, dummy in self.requests)

    def restart(self, bad=()):
        """Forget the requests so far and answer 503 for ``bad`` from now on."""
        with self.lock:
            self.bad = set(bad)
            self.requests = []

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def setup_app(kube, namespace, tmp_path, replicas, max_unavailable):
    """``replicas`` ready pods on v1, the v2 SidecarSet file, and the batches the role will cut (Kruise's order)."""
    make_app(kube, namespace, "web", replicas, sidecarset_doc(V1, max_unavailable=max_unavailable))
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, replicas)}
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc(V2, max_unavailable=max_unavailable))
    info, proc = run_module("sidecarset_info", {"sidecarset": v2, "namespace": namespace}, env=kube.env)
    assert not info.get("failed"), proc.stdout[-3000:]
    order = [p["name"] for p in info["rollout"]["order"]]
    assert sorted(order) == sorted(before)
    return before, v2, [order[i:i + max_unavailable] for i in range(0, len(order), max_unavailable)]


def rollout(kube, v2, namespace, report, **variables):
    """Run playbooks/rollout.yml (variables through the JSON extra-vars file); return the process and the report."""
    if report.exists():
        report.unlink()
    extra = {"rollout_sidecarset": v2, "rollout_namespace": namespace, "rollout_report_path": str(report), "rollout_timeout": 60}
    extra.update(variables)
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", extra)
    assert report.exists(), "no report written:\n" + output(proc)
    return proc, json.loads(report.read_text())


def output(proc):
    return proc.stdout[-6000:] + proc.stderr[-3000:]


def refs(namespace, names):
    return ["%s/%s" % (namespace, name) for name in names]


def live_pods(kube, namespace):
    return {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}


def proxy_images(pod):
    return sorted(image for name, image in images(pod).items() if name.startswith("proxy-"))


def assert_done(pod, name):
    """Upgraded and reset: the new twin serves v2, the old twin is back on the empty image."""
    assert proxy_images(pod) == sorted([V2, EMPTY]), (name, images(pod))
    assert working_image(pod) == V2, name


def assert_not_reset(pod, name):
    """Upgraded but not reset: the new twin runs v2, the old twin still holds v1."""
    assert proxy_images(pod) == [V1, V2], (name, images(pod))


def assert_untouched(pod, old, name):
    assert images(pod) == images(old), name
    assert pod["metadata"]["annotations"] == old["metadata"]["annotations"], name


def assert_report_pods(data, before, bad):
    """The report holds every pod: ``bad`` failed its gate after the upgrade write alone, the others are done."""
    pods = {p["name"]: p for p in data["pods"]}
    assert set(pods) == set(before)
    assert pods[bad]["phase"] == "failed" and pods[bad]["failed"] and HEALTH_REASON in pods[bad]["reason"], pods[bad]
    assert pods[bad]["writes"] == ["upgrade"], pods[bad]
    for name in set(before) - {bad}:
        assert pods[name]["phase"] == "done" and not pods[name]["failed"], pods[name]
        assert pods[name]["writes"] == ["upgrade", "reset"], pods[name]


# ------------------------------------------------------------------------------------------ HTTP gate


@pytest.mark.slow
def test_http_gate_per_pod_placeholders(nodesim, namespace, tmp_path):
    """The per-pod URL placeholders ({namespace}, {name}, {pod_ip}, {host_ip}, {node}, {cluster}) are filled in for
    each pod: the check runs once per pod, with that pod's own values."""
    kube = nodesim
    before, v2, dummy = setup_app(kube, namespace, tmp_path, replicas=2, max_unavailable=2)
    with HealthServer() as server:
        proc, data = rollout(kube, v2, namespace, tmp_path / "report.json", rollout_health_url=server.url(),
                             rollout_health_retries=1, rollout_health_delay=0)
        requests = list(server.requests)
    assert proc.returncode == 0, output(proc)
    assert sorted(pod for dummy, pod, dummy in requests) == sorted(before), requests
    assert all(query["pod_ip"] == before[pod]["status"]["podIP"] for dummy, pod, query in requests), requests
    assert all(query["host_ip"] == before[pod]["status"]["hostIP"] for dummy, pod, query in requests), requests
    assert all(query["node"] == before[pod]["spec"]["nodeName"] for dummy, pod, query in requests), requests
    assert all(query["cluster"] == "default" for dummy, dummy, query in requests), requests
    assert all(p["phase"] == "done" for p in data["pods"]), data["pods"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["batches", "window"])
def test_http_gate_fails_one_pod_and_the_rollout_goes_on_within_max_fail(nodesim, namespace, tmp_path, strategy):
    """HTTP gate with rollout_max_fail_percentage 50 and maxUnavailable 2: the URL template is evaluated per migrated
    pod (namespace, name, pod_ip, host_ip of the module result), a pod answered 503 is tried rollout_health_retries
    times, reported failed with the health-check reason and not reset; 1 failed pod of 2 (batches; of 6 in a window)
    is within 50 %, so the rollout goes on, every other pod is upgraded and reset, and the play succeeds. In a window
    sidecar_upgrade runs the gate itself, per pod before its reset."""
    kube = nodesim
    before, v2, batches = setup_app(kube, namespace, tmp_path, replicas=6, max_unavailable=2)
    assert len(batches) == 3
    bad = batches[0][0]
    report = tmp_path / "report.json"
    with HealthServer(bad=[bad]) as server:
        proc, data = rollout(kube, v2, namespace, report, rollout_health_url=server.url(), rollout_health_retries=2,
                             rollout_health_delay=0, rollout_max_fail_percentage=50, rollout_strategy=strategy)
        requests = list(server.requests)
    assert proc.returncode == 0, output(proc)

    # every migrated pod checked once, the failing one rollout_health_retries (2) times; the query carries its IPs
    assert Counter(pod for dummy, pod, dummy in requests) == dict({name: 1 for name in before}, **{bad: 2}), requests
    for ns, pod, query in requests:
        assert ns == namespace, requests
        assert query["pod_ip"] and query["pod_ip"] == before[pod]["status"]["podIP"], (pod, query)
        assert query["host_ip"] and query["host_ip"] == before[pod]["status"]["hostIP"], (pod, query)

    # the report: the batches as planned (in a window: one, in the same order), the bad pod failed, the others done
    if strategy == "window":
        assert [(b["kind"], b["pods"], b["failed"]) for b in data["batches"]] == [("window", refs(namespace, sum(batches, [])), 1)]
    else:
        assert [b["pods"] for b in data["batches"]] == [refs(namespace, b) for b in batches]
        assert [b["failed"] for b in data["batches"]] == [1, 0, 0]
    assert_report_pods(data, before, bad)
    assert data["result"]["stopped"] == "" and data["result"]["failed"] is False
    assert data["result"]["failed_pods"] == ["default/" + refs(namespace, [bad])[0]]

    # the pods: upgraded in place; the bad one keeps its old twin on v1
    live = live_pods(kube, namespace)
    assert {n: p["metadata"]["uid"] for n, p in live.items()} == {n: p["metadata"]["uid"] for n, p in before.items()}
    assert_not_reset(live[bad], bad)
    for name in set(before) - {bad}:
        assert_done(live[name], name)

    stats = custom_stats(proc)["sidecar_rollout"]
    assert stats["upgraded"] == 5 and stats["failed"] == 1 and stats["batches"] == (3 if strategy == "batches" else 1)
    assert stats["stopped"] == ""


@pytest.mark.slow
def test_http_gate_failure_stops_the_rollout_and_a_rerun_converges(nodesim, namespace, tmp_path):
    """HTTP gate with rollout_max_fail_percentage 0: a 503 in the second batch fails that pod (not reset) while the
    other pod of the batch passes and is reset; the rollout stops after that batch (the third is untouched) and the
    play fails after writing the report. Once the server answers 200 for everyone, a re-run resumes the failed pod
    first (its upgrade is kept, only the reset is written), upgrades the rest, and a third run changes nothing."""
    kube = nodesim
    before, v2, batches = setup_app(kube, namespace, tmp_path, replicas=6, max_unavailable=2)
    assert len(batches) == 3
    bad = batches[1][0]
    report = tmp_path / "report.json"
    gates = {"rollout_health_retries": 1, "rollout_health_delay": 0, "rollout_max_fail_percentage": 0, "rollout_strategy": "batches"}
    with HealthServer(bad=[bad]) as server:
        proc, data = rollout(kube, v2, namespace, report, rollout_health_url=server.url(), **gates)
        assert proc.returncode != 0, output(proc)
        assert "Rollout stopped: batch 2 (batch) on default: 1 of 2 pods failed" in proc.stdout, output(proc)
        # one request per migrated pod of the two batches that ran
        assert server.asked() == {name: 1 for name in batches[0] + batches[1]}, server.requests

        assert [b["pods"] for b in data["batches"]] == [refs(namespace, b) for b in batches[:2]]
        assert "1 of 2 pods failed" in data["result"]["stopped"] and data["result"]["failed"] is True
        pods = {p["name"]: p for p in data["pods"]}
        assert set(pods) == set(batches[0] + batches[1])
        assert pods[bad]["phase"] == "failed" and HEALTH_REASON in pods[bad]["reason"], pods[bad]
        assert pods[bad]["writes"] == ["upgrade"], pods[bad]
        for name in set(pods) - {bad}:
            assert pods[name]["phase"] == "done" and pods[name]["writes"] == ["upgrade", "reset"], pods[name]
        live = live_pods(kube, namespace)
        assert_not_reset(live[bad], bad)
        for name in set(pods) - {bad}:
            assert_done(live[name], name)
        for name in batches[2]:
            assert_untouched(live[name], before[name], name)

        # the server recovers: the re-run resumes the failed pod, then upgrades the untouched batch
        server.restart()
        proc, data = rollout(kube, v2, namespace, report, rollout_health_url=server.url(), **gates)
        assert proc.returncode == 0, output(proc)
        assert server.asked() == {name: 1 for name in [bad] + batches[2]}, server.requests
        assert [(b["kind"], b["pods"]) for b in data["batches"]] == [("resume", refs(namespace, [bad])), ("batch", refs(namespace, batches[2]))]
        pods = {p["name"]: p for p in data["pods"]}
        assert sorted(pods) == sorted([bad] + batches[2]) and len(data["pods"]) == 3, data["pods"]
        assert all(p["phase"] == "done" and not p["failed"] and p["changed"] for p in pods.values()), data["pods"]
        assert pods[bad]["writes"] == ["reset"], pods[bad]
        for name in batches[2]:
            assert pods[name]["writes"] == ["upgrade", "reset"], pods[name]
        live = live_pods(kube, namespace)
        assert {n: p["metadata"]["uid"] for n, p in live.items()} == {n: p["metadata"]["uid"] for n, p in before.items()}
        for name, pod in live.items():
            assert_done(pod, name)
        stats = custom_stats(proc)["sidecar_rollout"]
        assert stats["upgraded"] == 3 and stats["failed"] == 0 and stats["stopped"] == ""

        # converged: nothing left to check or change
        server.restart()
        proc, data = rollout(kube, v2, namespace, report, rollout_health_url=server.url(), **gates)
        assert proc.returncode == 0, output(proc)
        assert total_changed(proc) == 0, output(proc)
        assert not server.asked() and data["pods"] == [] and data["batches"] == []


# ------------------------------------------------------------------------------------------ task-file gate


@pytest.mark.slow
def test_task_file_gate_fails_the_pods_it_names(nodesim, namespace, tmp_path):
    """Task-file gate: the user's tasks run once per batch and see the batch's migrated pods as rollout_batch_pods
    (module results); the pod they put into rollout_health_failed_pods is reported failed and not reset, the others
    are reset and done (1 failed of 3 is within rollout_max_fail_percentage 50, so the rollout goes on)."""
    kube = nodesim
    before, v2, batches = setup_app(kube, namespace, tmp_path, replicas=6, max_unavailable=3)
    assert len(batches) == 2
    bad = batches[1][1]
    seen = tmp_path / "seen.jsonl"
    tasks = write_yaml(tmp_path / "gate.yml", [
        {"name": "Record what the gate sees", "ansible.builtin.lineinfile": {
            "path": str(seen), "create": True, "mode": "0644",
            "line": "{{ rollout_batch_pods | map(attribute='name') | list | to_json }}\t{{ rollout_batch_pods | map(attribute='phase') | list | to_json }}"}},
        {"name": "Fail one pod", "ansible.builtin.set_fact": {
            "rollout_health_failed_pods": "{{ rollout_batch_pods | map(attribute='name') | select('equalto', '%s') | list }}" % bad}},
    ])
    report = tmp_path / "report.json"
    proc, data = rollout(kube, v2, namespace, report, rollout_health_tasks=tasks, rollout_max_fail_percentage=50)
    assert proc.returncode == 0, output(proc)

    lines = [line.split("\t") for line in seen.read_text().splitlines()]
    assert [json.loads(names) for names, dummy in lines] == batches
    assert all(json.loads(phases) == ["migrated"] * len(json.loads(names)) for names, phases in lines), lines

    assert [b["failed"] for b in data["batches"]] == [0, 1]
    assert_report_pods(data, before, bad)
    live = live_pods(kube, namespace)
    assert_not_reset(live[bad], bad)
    for name in set(before) - {bad}:
        assert_done(live[name], name)
    stats = custom_stats(proc)["sidecar_rollout"]
    assert stats["upgraded"] == 5 and stats["failed"] == 1 and stats["stopped"] == ""


@pytest.mark.slow
def test_failing_task_file_fails_the_whole_batch(nodesim, namespace, tmp_path):
    """Task-file gate whose task fails outright: the failure is rescued, every pod of the batch is failed and none is
    reset (their old twins keep v1); with rollout_max_fail_percentage 0 the rollout stops after that batch (the next
    batch is untouched) and the play fails after writing the report."""
    kube = nodesim
    before, v2, batches = setup_app(kube, namespace, tmp_path, replicas=6, max_unavailable=3)
    assert len(batches) == 2
    tasks = write_yaml(tmp_path / "gate.yml", [{"name": "A broken check", "ansible.builtin.fail": {"msg": "the check itself broke"}}])
    report = tmp_path / "report.json"
    proc, data = rollout(kube, v2, namespace, report, rollout_health_tasks=tasks)
    assert proc.returncode != 0, output(proc)
    assert "the check itself broke" in proc.stdout and "rescued=1" in proc.stdout, output(proc)
    assert "Rollout stopped: batch 1 (batch) on default: 3 of 3 pods failed" in proc.stdout, output(proc)

    assert [b["pods"] for b in data["batches"]] == [refs(namespace, batches[0])] and data["batches"][0]["failed"] == 3
    pods = {p["name"]: p for p in data["pods"]}
    assert set(pods) == set(batches[0])
    for name, pod in pods.items():
        assert pod["phase"] == "failed" and HEALTH_REASON in pod["reason"] and pod["writes"] == ["upgrade"], pod
    assert custom_stats(proc)["sidecar_rollout"]["failed"] == 3
    live = live_pods(kube, namespace)
    for name in batches[0]:
        assert_not_reset(live[name], name)
    for name in batches[1]:
        assert_untouched(live[name], before[name], name)
