"""Each AWX job template's playbook run with its survey variables passed as strings (as AWX sends them)."""

import pytest
import yaml

from test_rollout import ROOT, custom_stats, make_app, sidecarset_doc, wait_ready, working_image, pods_of, write_yaml

TEMPLATES = ROOT / "docs" / "awx" / "job_templates"


def survey_vars(name, **answers):
    spec = yaml.safe_load((TEMPLATES / name).read_text())
    out = {q["variable"]: str(q.get("default", "")) for q in spec["survey_spec"]["spec"]}
    out.update({k: str(v) for k, v in answers.items()})
    return spec["playbook"], out


@pytest.mark.slow
def test_survey_strings_rollout_status_rollback(nodesim, namespace, tmp_path):
    from test_rollout import run_playbook  # pylint: disable=import-outside-toplevel

    kube = nodesim
    make_app(kube, namespace, "web", 4, sidecarset_doc("mesh/proxy:v1"))
    wait_ready(kube, namespace, 4)
    v2 = write_yaml(tmp_path / "v2.yaml", sidecarset_doc("mesh/proxy:v2"))

    playbook, variables = survey_vars("rollout.yml", rollout_sidecarset=v2, rollout_namespace=namespace,
                                      rollout_max_unavailable="50%", rollout_partition="1", rollout_canary="1",
                                      rollout_canary_pause_seconds="1", rollout_canary_stop="false", rollout_timeout="120")
    proc = run_playbook(kube, ROOT / playbook, string_vars=variables)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert custom_stats(proc)["sidecar_rollout"]["upgraded"] == 3
    assert sorted(working_image(p) for p in pods_of(kube, namespace)) == ["mesh/proxy:v1"] + ["mesh/proxy:v2"] * 3

    playbook, variables = survey_vars("status.yml", status_sidecarset=v2, status_namespace=namespace)
    proc = run_playbook(kube, ROOT / playbook, string_vars=variables)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert custom_stats(proc)["sidecarset_status"]["updated"] == 3

    playbook, variables = survey_vars("rollback.yml", rollback_sidecarset=v2, rollback_namespace=namespace)
    proc = run_playbook(kube, ROOT / playbook, string_vars=variables)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert custom_stats(proc)["sidecar_rollback"]["rolled_back"] == []  # nothing failed

    v1 = write_yaml(tmp_path / "v1.yaml", sidecarset_doc("mesh/proxy:v1"))
    playbook, variables = survey_vars("rollback.yml", rollback_sidecarset=v1, rollback_namespace=namespace,
                                      rollback_mode="previous", rollout_max_unavailable="2")
    proc = run_playbook(kube, ROOT / playbook, string_vars=variables)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert [working_image(p) for p in pods_of(kube, namespace)] == ["mesh/proxy:v1"] * 4
