"""rollout_longest_first_from: the pods after the canary start longest first, by a previous rollout's report.

Against the real API server (local control plane + node simulator). maxUnavailable 1 makes the window strictly
sequential, so the order the report's pods started in is the order the window took them.
"""

import json

import pytest
from test_rollout import PLAYBOOKS, make_app, run_playbook, sidecarset_doc, task_messages, wait_ready, working_image, write_yaml
from workloads import pods_of


def started_order(report):
    return [p["name"] for p in sorted(json.loads(report.read_text())["pods"], key=lambda p: p["started_at"])]


@pytest.mark.slow
def test_rollout_takes_the_slowest_pods_of_the_last_rollout_first(nodesim, namespace, tmp_path):
    kube = nodesim
    make_app(kube, namespace, "web", 5, sidecarset_doc("mesh/proxy:v1", max_unavailable=1))
    wait_ready(kube, namespace, 5)

    def rollout(image, report, **extra):
        variables = {"rollout_sidecarset": write_yaml(tmp_path / ("%s.yaml" % image.rsplit(":", 1)[1]),
                                                      sidecarset_doc(image, max_unavailable=1)),
                     "rollout_namespace": namespace, "rollout_report_path": str(report)}
        variables.update(extra)
        return run_playbook(kube, PLAYBOOKS / "rollout.yml", variables)

    first = tmp_path / "first.json"
    proc = rollout("mesh/proxy:v2", first)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    kruise = started_order(first)
    assert len(kruise) == 5

    # the previous report, as if the pods had taken longer the later Kruise's order put them: 1 s, 2 s, ... 5 s
    # (a pod the report does not name counts as the median: test_podlist.py)
    history = json.loads(first.read_text())
    for pod in history["pods"]:
        pod["timings"]["total"] = float(kruise.index(pod["name"]) + 1)
    slow = tmp_path / "history.json"
    slow.write_text(json.dumps(history))

    second = tmp_path / "second.json"
    proc = rollout("mesh/proxy:v3", second, rollout_longest_first_from=str(slow), rollout_canary=1)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # the canary is the first pod of Kruise's order now (the first rollout changed what that order sees); the
    # window then takes the rest longest first: the reverse of the first rollout's order
    order = started_order(second)
    (canary,) = [p["name"] for p in json.loads(second.read_text())["pods"] if p["batch"] == 1]
    assert order[0] == canary and order[1:] == [name for name in reversed(kruise) if name != canary]
    assert all(working_image(p) == "mesh/proxy:v3" for p in pods_of(kube, namespace))
    assert any("(window, 4 pods): done=4" in line for line in task_messages(proc, "Report the batch"))


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    ("[1, 2]", "not the report of a rollout"),
])
def test_a_bad_history_is_named(nodesim, namespace, tmp_path, content, message):
    path = tmp_path / "history.json"
    if content is not None:
        path.write_text(content)
    proc = run_playbook(nodesim, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": write_yaml(tmp_path / "ss.yaml", sidecarset_doc("mesh/proxy:v2")),
        "rollout_namespace": namespace, "rollout_longest_first_from": str(path)})
    assert proc.returncode != 0
    assert message in proc.stdout.lower() + proc.stderr.lower() and str(path) in proc.stdout + proc.stderr, proc.stdout[-3000:]
