"""Inventory-driven rollouts: the pods of the ``pods`` inventory plugin, after ``--limit`` (ansible-playbook) and
after the job's Limit (ansible-runner, what AWX runs), are exactly the pods upgraded."""

import json
import os
import subprocess

import pytest
import yaml

from test_rollout import (ANSIBLE_BIN, PLAYBOOKS, ROOT, ansible_env, custom_stats, images, make_app, pods_of,
                          run_playbook, sidecarset_doc, wait_ready, working_image, write_yaml)

ZONE_LABEL = "topology.kubernetes.io/zone"


def scoped(image, namespace, **kwargs):
    """The test's SidecarSet, restricted to its namespace (other tests' pods are never planned)."""
    doc = sidecarset_doc(image, label="mesh-inv", **kwargs)
    doc["spec"]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return doc


def pods_inventory(kube, tmp_path, namespace):
    write_yaml(tmp_path / "current.yaml", scoped("mesh/proxy:v1", namespace))
    path = tmp_path / "mesh.pods.yml"
    path.write_text(yaml.safe_dump({
        "plugin": "meshops.sidecarset.pods",
        "sidecarset": "current.yaml",
        "clusters": [{"name": "sim", "kubeconfig": kube.kubeconfig}],
        # zone-a -> group zone_a
        "keyed_groups": [{"key": "pod_zone | replace('-', '_')", "prefix": "", "separator": ""}],
    }))
    return path


def zones_of(kube, pods):
    nodes = {n.metadata.name: (n.metadata.labels or {}).get(ZONE_LABEL) for n in kube.core.list_node().items}
    return {p["metadata"]["name"]: nodes.get(p["spec"].get("nodeName")) for p in pods}


def thirty_pods(kube, namespace):
    v1 = scoped("mesh/proxy:v1", namespace)
    for app in ("alpha", "beta", "gamma"):
        make_app(kube, namespace, app, 10, v1, label="mesh-inv")
    before = {p["metadata"]["name"]: p for p in wait_ready(kube, namespace, 30)}
    zones = zones_of(kube, before.values())
    assert sorted(set(zones.values())) == ["zone-a", "zone-b", "zone-c"], zones
    return before, zones


def check_only_zone_upgraded(kube, namespace, before, zones, zone):
    after = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
    assert set(after) == set(before)
    for name, pod in after.items():
        assert pod["metadata"]["uid"] == before[name]["metadata"]["uid"]
        if zones[name] == zone:
            assert working_image(pod) == "mesh/proxy:v2", name
        else:
            # not one write to the pods outside the selection
            assert pod["metadata"]["resourceVersion"] == before[name]["metadata"]["resourceVersion"], name
            assert images(pod) == images(before[name])
    return after


def recap(proc):
    """``{host: {"ok": n, "changed": n, "failed": n, ...}}`` from the PLAY RECAP."""
    out = {}
    for line in proc.stdout.split("PLAY RECAP")[-1].splitlines():
        if " : " in line:
            host, counts = line.split(" : ", 1)
            out[host.strip()] = {k: int(v) for k, v in (item.split("=") for item in counts.split())}
    return out


@pytest.mark.slow
def test_limit_zone_a_upgrades_exactly_its_pods_then_runner_limit_zone_b(nodesim, namespace, tmp_path):
    kube = nodesim
    before, zones = thirty_pods(kube, namespace)
    inventory = pods_inventory(kube, tmp_path, namespace)
    v2 = write_yaml(tmp_path / "v2.yaml", scoped("mesh/proxy:v2", namespace, max_unavailable="10%"))
    report = tmp_path / "report.json"
    zone_a = {n for n, z in zones.items() if z == "zone-a"}
    hosts_a = {"sim/%s/%s" % (namespace, n) for n in zone_a}

    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {"rollout_sidecarset": v2, "rollout_report_path": str(report)},
                        args=["-i", str(inventory), "--limit", "zone_a"])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    after = check_only_zone_upgraded(kube, namespace, before, zones, "zone-a")

    data = json.loads(report.read_text())
    plan = data["plans"][0]
    # maxUnavailable and partition are counted over every matched pod (10% of 30), the selection is the limit's
    assert plan["cluster"] == "sim" and plan["kruise_matched"] == 30 and plan["max_unavailable"] == 3
    assert plan["matched"] == len(zone_a) and plan["selection"]["outside"] == 30 - len(zone_a)
    assert plan["to_upgrade"] == len(zone_a) and plan["selection"]["missing"] == []
    # the default window: one call for the selection, at most maxUnavailable (3) pods in flight
    assert [(b["kind"], b["size"], b["max_unavailable"]) for b in data["batches"]] == [("window", len(zone_a), 3)]
    assert {p["name"] for p in data["pods"]} == zone_a
    assert data["result"]["upgraded"] == len(zone_a) and data["result"]["matched"] == len(zone_a)
    # one orchestration: one plan and one sidecar_upgrade call per batch, not a task per host
    assert proc.stdout.count("TASK [meshops.sidecarset.rollout : Plan the rollout") == 1
    # each pod host reports its outcome: changed, and only the limit's hosts are in the play
    summary = recap(proc)
    assert set(summary) == hosts_a, summary
    assert all(c["changed"] == 1 and c["failed"] == 0 for c in summary.values()), summary
    assert custom_stats(proc)["sidecar_rollout"]["upgraded"] == len(zone_a)

    # the same through ansible-runner, as AWX runs a job: its inventory is a copy of the source's hosts and
    # variables (no plugin), the Limit set, the connection from the environment (the credential)
    import ansible_runner  # pylint: disable=import-outside-toplevel

    listed = subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(inventory), "--list", "--export"],
                            cwd=str(ROOT), env=ansible_env(kube), capture_output=True, text=True, timeout=120, check=True)
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]

    def plain(value):
        if isinstance(value, dict):
            return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    static = {"all": {"hosts": {}, "children": {}}}
    for host, variables in hostvars.items():
        variables = plain(variables)
        variables.pop("k8s_connection", None)  # AWX: the Kubernetes credential's K8S_AUTH_* instead
        static["all"]["hosts"][host] = variables
        group = variables["pod_zone"].replace("-", "_")
        static["all"]["children"].setdefault(group, {"hosts": {}})["hosts"][host] = None
    private = tmp_path / "runner"
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts.yml").write_text(yaml.safe_dump(static))
    envvars = ansible_env(kube)
    envvars["PATH"] = str(ANSIBLE_BIN) + os.pathsep + envvars.get("PATH", "")
    envvars.pop("KUBECONFIG", None)
    runner = ansible_runner.run(private_data_dir=str(private), playbook=str(PLAYBOOKS / "rollout.yml"), limit="zone_b",
                                extravars={"rollout_sidecarset": v2}, envvars=envvars, quiet=True)
    stdout = runner.stdout.read()
    assert runner.rc == 0 and runner.status == "successful", stdout[-6000:]
    before_b = dict(after)
    zone_b = {n for n, z in zones.items() if z == "zone-b"}
    final = {p["metadata"]["name"]: p for p in pods_of(kube, namespace)}
    for name, pod in final.items():
        if name in zone_b:
            assert working_image(pod) == "mesh/proxy:v2", name
        else:
            assert pod["metadata"]["resourceVersion"] == before_b[name]["metadata"]["resourceVersion"], name
    # the job's host summary, as AWX shows it: every zone_b pod changed, nothing else ran
    hosts_b = {"sim/%s/%s" % (namespace, n) for n in zone_b}
    assert set(runner.stats["changed"]) == hosts_b, runner.stats
    assert not runner.stats.get("failures"), runner.stats
    outcomes = [e for e in runner.events if e.get("event") == "runner_on_ok"
                and "outcome" in (e.get("event_data") or {}).get("task", "")]
    assert {e["event_data"]["host"] for e in outcomes} == hosts_b
