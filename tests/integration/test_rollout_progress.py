"""Live progress of a rollout (issue 13): lines while sidecar_upgrade runs, in the terminal and in AWX's job output.

6 pods whose new sidecar image takes 3 s in its postStart hook (the node simulator's per-pod setting), maxUnavailable
2, rollout_progress_interval 1: the sidecar_upgrade action plugin prints ``[progress] N/6 done, ...`` lines while the
window runs; through ansible-playbook (the terminal) and through ansible-runner (what AWX runs: each line must be a
job event of its own, shown in the job output in order, before the task's result). The timeline picture is written
next to the JSON report.
"""

import json
import os
import re
import sys

import pytest
from test_rollout import ANSIBLE_BIN, PLAYBOOKS, ansible_env, run_playbook, sidecarset_doc, wait_ready, write_yaml
from workloads import create_injected_deployment

# read by the simulator each time a container instance starts: the two new images take 3 s in postStart
SLOW = {"nodesim.meshops.io/rules": json.dumps([{"image": "mesh/proxy:slow*", "postStartDuration": "3s"}])}
LINE = re.compile(r"\[progress\] (\d+)/6 done, (\d+) in flight, (\d+) failed, (\d+) left, ([\d.]+) pods/s")


def check_lines(text):
    lines = [LINE.search(line) for line in text.splitlines() if "[progress]" in line]
    found = [m for m in lines if m]
    assert len(found) >= 2, text[-4000:]
    done = [int(m.group(1)) for m in found]
    assert done == sorted(done) and done[0] < 6, done  # printed while the window runs, counts growing
    assert all(int(m.group(2)) <= 2 for m in found), found  # never more in flight than maxUnavailable
    return found


@pytest.mark.slow
def test_progress_lines_in_the_terminal_and_in_ansible_runner_events(nodesim, namespace, tmp_path):
    kube = nodesim
    create_injected_deployment(kube, sidecarset_doc("mesh/proxy:v1", max_unavailable=2), "web", namespace, 6, labels={"mesh": "on"},
                               app_image="app:1", container="app", grace_period=0, annotations=SLOW)
    wait_ready(kube, namespace, 6, timeout=120)
    slow = write_yaml(tmp_path / "slow.yaml", sidecarset_doc("mesh/proxy:slow", max_unavailable=2))
    report = tmp_path / "report.json"
    proc = run_playbook(kube, PLAYBOOKS / "rollout.yml", {
        "rollout_sidecarset": slow, "rollout_namespace": namespace, "rollout_progress_interval": 1,
        "rollout_report_path": str(report)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    check_lines(proc.stdout)
    # before the task's own result line
    assert proc.stdout.index("[progress]") < proc.stdout.index("changed: [localhost]")
    svg = (tmp_path / "report.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<title>%s/web-" % namespace) >= 6 * 3

    # the next version through ansible-runner, as AWX runs a job
    import ansible_runner  # pylint: disable=import-outside-toplevel

    back = write_yaml(tmp_path / "slow2.yaml", sidecarset_doc("mesh/proxy:slow2", max_unavailable=2))
    private = tmp_path / "runner"
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    envvars = ansible_env(kube)
    envvars["PATH"] = str(ANSIBLE_BIN) + os.pathsep + envvars.get("PATH", "")
    runner = ansible_runner.run(private_data_dir=str(private), playbook=str(PLAYBOOKS / "rollout.yml"), envvars=envvars, quiet=True,
                                extravars={"rollout_sidecarset": back, "rollout_namespace": namespace, "rollout_progress_interval": 1})
    stdout = runner.stdout.read()
    assert runner.rc == 0 and runner.status == "successful", stdout[-4000:]
    events = [e for e in runner.events if "[progress]" in (e.get("stdout") or "")]
    assert len(events) >= 2, [e.get("event") for e in runner.events]
    check_lines("\n".join(e["stdout"] for e in events))
    # each line is an event of its own, in the job output before the upgrade task's result
    result = [e for e in runner.events if e.get("event") == "runner_on_ok" and "Upgrade the batch" in (e.get("event_data") or {}).get("task", "")]
    assert result and max(e["counter"] for e in events) < result[0]["counter"]
