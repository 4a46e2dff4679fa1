"""Several clusters at a time (rollout_cluster_parallelism, issue 13): three "clusters" that are the same API server,
each a namespace of its own (cluster entries with name + kubeconfig + namespace).

* parallelism 2 over 3 clusters: every pod upgraded; the first two clusters' invocations overlap in time and the
  third starts after they ended (a wave of two, then a wave of one); live progress lines labelled per cluster.
* the stop rule: cluster 1's pods cannot pull the new image; with rollout_max_fail_percentage 0 the rollout stops,
  the cluster in flight beside it finishes its invocation, the cluster not started yet is never written.
* inventory-driven (pod hosts of three clusters), two at a time, with a task-file gate: every pod host changed.
"""

import json
import re
import uuid

import pytest
import yaml

from test_rollout import PLAYBOOKS, custom_stats, images, pods_of, run_playbook, sidecarset_doc, working_image, write_yaml
from test_rollout_inventory import recap
from workloads import create_injected_deployment, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PODS = 3


@pytest.fixture
def three_clusters(nodesim):
    """Three namespaces with PODS injected pods each, on v1; yields (kube, [(cluster name, namespace), ...])."""
    kube = nodesim
    suffix = uuid.uuid4().hex[:6]
    # not conftest's create_namespace: "from conftest import" is another module when tests/unit run in the same session
    names = [kube.create_namespace("it-clusters-%s-%d" % (suffix, i), labels={"meshops.io/test": "integration"})
             for i in range(3)]
    try:
        for name in names:
            kube.wait_default_service_account(name, timeout=30)
        yield kube, names
    finally:
        for name in names:
            kube.delete_namespace(name)


def _deploy(kube, namespace, annotations=None):
    create_injected_deployment(kube, sidecarset_doc("mesh/proxy:v1"), "web", namespace, PODS, labels={"mesh": "on"},
                               app_image="app:1", container="app", grace_period=0, annotations=annotations)


def _clusters(kube, namespaces):
    return [{"name": "c%d" % i, "kubeconfig": kube.kubeconfig, "namespace": ns} for i, ns in enumerate(namespaces)]


def _versions(kube, namespace):
    return {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods_of(kube, namespace)}


def _spans(data):
    """Per cluster: (first start, last end) of its batches, from the report."""
    spans = {}
    for batch in data["batches"]:
        start, end = spans.get(batch["cluster"], (batch["started"], batch["ended"]))
        spans[batch["cluster"]] = (min(start, batch["started"]), max(end, batch["ended"]))
    return spans


def test_two_clusters_at_a_time_over_three(three_clusters, tmp_path):
    kube, namespaces = three_clusters
    for ns in namespaces:
        _deploy(kube, ns, annotations={"nodesim.meshops.io/post-start-duration": "2s"})
    for ns in namespaces:
        wait_ready(kube, ns, PODS, timeout=120)
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable=PODS))
    report = tmp_path / "report.json"
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": v2, "rollout_clusters": _clusters(kube, namespaces), "rollout_report_path": str(report),
        "rollout_progress_interval": 1}, string_vars={"rollout_cluster_parallelism": "2"})  # a survey answer: a string
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]

    for ns in namespaces:
        assert [working_image(p) for p in pods_of(kube, ns)] == ["mesh/proxy:v2"] * PODS, ns
    data = json.loads(report.read_text())
    assert [p["cluster"] for p in data["plans"]] == ["c0", "c1", "c2"]
    assert data["result"]["upgraded"] == 3 * PODS and data["result"]["stopped"] == ""
    assert {p["cluster"] for p in data["pods"]} == {"c0", "c1", "c2"}
    assert all(p["phase"] == "done" for p in data["pods"]), data["pods"]
    spans = _spans(data)
    # c0 and c1 ran at the same time: each started before the other ended
    assert spans["c0"][0] < spans["c1"][1] and spans["c1"][0] < spans["c0"][1], spans
    # c2, the second wave, started after both had ended
    assert spans["c2"][0] >= max(spans["c0"][1], spans["c1"][1]), spans
    # the pods agree with the batches: c0's and c1's pods overlap, c2's start after every one of them ended
    first_wave_end = max(p["started_at"] + p["timings"]["total"] for p in data["pods"] if p["cluster"] != "c2")
    assert min(p["started_at"] for p in data["pods"] if p["cluster"] == "c2") >= first_wave_end - 0.002
    assert min(p["started_at"] for p in data["pods"] if p["cluster"] == "c1") < max(
        p["started_at"] + p["timings"]["total"] for p in data["pods"] if p["cluster"] == "c0")

    # live progress, labelled per cluster, while the background invocations ran
    for name in ("c0", "c1", "c2"):
        assert re.search(r"^\[progress %s\] \d+/%d done, " % (name, PODS), proc.stdout, re.M), proc.stdout[-5000:]
    stats = custom_stats(proc)["sidecar_rollout"]
    assert stats["upgraded"] == 3 * PODS and stats["clusters"] == ["c0", "c1", "c2"] and stats["failed"] == 0
    # one line per batch, named by its cluster
    lines = re.findall(r'"msg": "(\[c\d\] batch [^"]*)"', proc.stdout)
    assert sorted(line.split("]")[0] for line in lines) == ["[c0", "[c1", "[c2"], lines


@pytest.mark.parametrize("parallelism,canary", [(1, 0), (2, 0), (2, 1)], ids=["one-at-a-time", "two-at-a-time", "two-canaries"])
def test_a_stop_on_one_cluster_starts_no_other(three_clusters, tmp_path, parallelism, canary):
    """c1's pods cannot pull v2 (a node simulator rule on its pods), rollout_max_fail_percentage 0.
    * one at a time: c0 is done, c1 stops the rollout, c2 is never touched;
    * two at a time: c0 and c1 run together, c1 stops the rollout, c0 finishes its invocation (in flight), c2 is
      never touched;
    * two at a time with a canary of 1: the canaries of c0 and c1 run together, c1's fails; c0's canary finishes,
      and no further invocation starts: c0's other pods and c2 are never touched."""
    kube, namespaces = three_clusters
    broken = {"nodesim.meshops.io/rules": json.dumps([{"image": "*:v2", "pullFailure": True}])}
    for i, ns in enumerate(namespaces):
        _deploy(kube, ns, annotations=broken if i == 1 else None)
    for ns in namespaces:
        wait_ready(kube, ns, PODS, timeout=120)
    before = {ns: _versions(kube, ns) for ns in namespaces}
    before_c2 = {p["metadata"]["name"]: images(p) for p in pods_of(kube, namespaces[2])}
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable=PODS))
    report = tmp_path / "report.json"
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": v2, "rollout_clusters": _clusters(kube, namespaces), "rollout_report_path": str(report),
        "rollout_max_fail_percentage": 0, "rollout_timeout": 20, "rollout_cluster_parallelism": parallelism,
        "rollout_canary": canary})
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert "Rollout stopped: " in proc.stdout, proc.stdout[-4000:]

    data = json.loads(report.read_text())
    result = data["result"]
    c1_failed = canary or PODS
    assert result["failed"] is True and " on c1: " in result["stopped"], result
    assert "%d of %d pods failed" % (c1_failed, c1_failed) in result["stopped"], result
    # c2 was never planned, its pods never written
    assert [p["cluster"] for p in data["plans"]] == ["c0", "c1"]
    assert not [p for p in data["pods"] if p["cluster"] == "c2"]
    assert _versions(kube, namespaces[2]) == before[namespaces[2]]
    assert {p["metadata"]["name"]: images(p) for p in pods_of(kube, namespaces[2])} == before_c2
    # c0 finished its invocation (in flight beside c1, or before it), and started no other
    c0_done = canary or PODS
    assert sorted(p["phase"] for p in data["pods"] if p["cluster"] == "c0") == ["done"] * c0_done
    assert sorted(working_image(p) for p in pods_of(kube, namespaces[0])) == (
        ["mesh/proxy:v1"] * (PODS - c0_done) + ["mesh/proxy:v2"] * c0_done)
    c0_records = {p["name"] for p in data["pods"] if p["cluster"] == "c0"}
    assert {n: v for n, v in _versions(kube, namespaces[0]).items() if n not in c0_records} == {
        n: v for n, v in before[namespaces[0]].items() if n not in c0_records}
    assert sorted(p["phase"] for p in data["pods"] if p["cluster"] == "c1") == ["failed"] * c1_failed
    assert [b["kind"] for b in data["batches"]] == (["canary", "canary"] if canary else ["window", "window"])
    stats = custom_stats(proc)["sidecar_rollout"]
    assert stats["failed"] == c1_failed and stats["upgraded"] == c0_done and " on c1: " in stats["stopped"]
    if parallelism == 2:
        spans = _spans(data)
        assert spans["c0"][0] < spans["c1"][1] and spans["c1"][0] < spans["c0"][1], spans


def test_inventory_driven_two_at_a_time_with_a_task_file_gate(three_clusters, tmp_path):
    """Pod hosts of three clusters (k8s_cluster + k8s_connection, as AWX's copy of the pods inventory carries them),
    two clusters at a time, lock-step batches with a task-file gate (the gated path: upgrade in the background, the
    gate and the reset per cluster after the round): every pod host reports changed, the gate saw each cluster's
    migrated pods once."""
    kube, namespaces = three_clusters
    for ns in namespaces:
        _deploy(kube, ns)
    hosts = {}
    for i, ns in enumerate(namespaces):
        for pod in wait_ready(kube, ns, PODS, timeout=120):
            hosts["c%d-%s" % (i, pod["metadata"]["name"])] = {
                "pod_name": pod["metadata"]["name"], "pod_namespace": ns, "k8s_cluster": "c%d" % i,
                "k8s_connection": {"kubeconfig": kube.kubeconfig}}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    seen = tmp_path / "seen.txt"
    gate = write_yaml(tmp_path / "gate.yml", [{"name": "Record what the gate sees", "ansible.builtin.lineinfile": {
        "path": str(seen), "create": True, "mode": "0644",
        "line": "{{ rollout_batch_pods | map(attribute='namespace') | unique | join(',') }} "
                "{{ rollout_batch_pods | map(attribute='phase') | unique | join(',') }} {{ rollout_batch_pods | length }}"},
        "changed_when": False}])  # the user's task: its change would count on the orchestrating host
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2", max_unavailable=PODS))
    report = tmp_path / "report.json"
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": v2, "rollout_report_path": str(report), "rollout_health_tasks": gate,
        "rollout_cluster_parallelism": 2}, args=["-i", str(inventory)])
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]

    counts = recap(proc)
    assert {host: counts[host]["changed"] for host in hosts} == {host: 1 for host in hosts}, counts
    assert all(counts[host]["failed"] == 0 for host in hosts)
    data = json.loads(report.read_text())
    assert [p["cluster"] for p in data["plans"]] == ["c0", "c1", "c2"]
    assert sorted((p["cluster"], p["phase"], p["writes"] == ["upgrade", "reset"]) for p in data["pods"]) == sorted(
        ("c%d" % i, "done", True) for i in range(3) for dummy in range(PODS))
    assert sorted(seen.read_text().split("\n")[:-1]) == sorted("%s migrated %d" % (ns, PODS) for ns in namespaces)
    for ns in namespaces:
        assert [working_image(p) for p in pods_of(kube, ns)] == ["mesh/proxy:v2"] * PODS, ns
    spans = _spans(data)
    assert spans["c0"][0] < spans["c1"][1] and spans["c1"][0] < spans["c0"][1], spans
    assert spans["c2"][0] >= max(spans["c0"][1], spans["c1"][1]), spans
