"""Run playbooks/inject.yml through the real ansible-playbook (offline mode, no cluster)."""

import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOK = os.path.join(ROOT, "playbooks", "inject.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def run_playbook(*extra, check=False):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    cmd = [ANSIBLE_PLAYBOOK, PLAYBOOK] + list(extra) + (["--check", "--diff"] if check else [])
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def mosn_out(tmp_path_factory):
    dest = tmp_path_factory.mktemp("out")
    proc = run_playbook("-e", "sidecarset=examples/sidecarsets/mosn.yaml", "-e", "src=examples/manifests", "-e", "dest=%s/" % dest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest, proc


def test_inject_playbook_writes_injected_manifests(mosn_out):
    dest, proc = mosn_out
    assert "changed=1" in proc.stdout
    docs = list(yaml.safe_load_all((dest / "test-app.yaml").read_text()))
    containers = docs[0]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["mosn-1", "mosn-2", "test-app"]
    assert containers[1]["image"] == "openkruise/hotupgrade-sample:empty"
    # hotupgrade-app.yaml does not match the MOSN selector: copied unchanged
    assert (dest / "hotupgrade-app.yaml").read_text() == open(os.path.join(ROOT, "examples/manifests/hotupgrade-app.yaml")).read()


def test_inject_playbook_second_run_changes_nothing(mosn_out):
    dest, dummy = mosn_out
    before = (dest / "test-app.yaml").read_text()
    proc = run_playbook("-e", "sidecarset=examples/sidecarsets/mosn.yaml", "-e", "src=examples/manifests", "-e", "dest=%s/" % dest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout
    assert (dest / "test-app.yaml").read_text() == before


def test_inject_playbook_check_mode_writes_nothing(tmp_path):
    proc = run_playbook("-e", "sidecarset=examples/sidecarsets/mosn.yaml", "-e", "src=examples/manifests", "-e", "dest=%s/" % tmp_path, check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=1" in proc.stdout
    assert "mosn-2" in proc.stdout  # the diff shows the injected twin
    assert list(tmp_path.iterdir()) == []


def test_inject_playbook_bad_sidecarset_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = open(os.path.join(ROOT, "examples/sidecarsets/mosn.yaml")).read()
    bad.write_text(text.replace("hotUpgradeEmptyImage: openkruise/hotupgrade-sample:empty", "foo: bar"))
    dest = tmp_path / "out"
    proc = run_playbook("-e", "sidecarset=%s" % bad, "-e", "src=examples/manifests", "-e", "dest=%s/" % dest)
    assert proc.returncode != 0
    assert str(bad) in proc.stdout
    assert "spec.containers[0].upgradeStrategy" in proc.stdout
    assert not dest.exists()


def test_inject_playbook_unwritable_dest_leaves_dest_untouched(tmp_path):
    """All or nothing, root included: one destination cannot be written (a folder stands where the file goes), so
    none is, not even the one before it (``hotupgrade-app.yaml`` sorts first and would be rewritten)."""
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "hotupgrade-app.yaml").write_text("original\n")
    (dest / "test-app.yaml").mkdir()
    (dest / "test-app.yaml" / "keep").write_text("x\n")
    proc = run_playbook("-e", "sidecarset=examples/sidecarsets/mosn.yaml", "-e", "src=examples/manifests", "-e", "dest=%s/" % dest)
    assert proc.returncode != 0
    assert "destination is a directory, expected a file" in proc.stdout
    assert str(dest / "test-app.yaml") in proc.stdout
    assert (dest / "hotupgrade-app.yaml").read_text() == "original\n"
    assert sorted(p.name for p in dest.iterdir()) == ["hotupgrade-app.yaml", "test-app.yaml"]  # no staged leftovers
    assert [p.name for p in (dest / "test-app.yaml").iterdir()] == ["keep"]


def test_inject_playbook_dest_under_a_file_fails_cleanly(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x\n")
    proc = run_playbook("-e", "sidecarset=examples/sidecarsets/mosn.yaml", "-e", "src=examples/manifests", "-e", "dest=%s/out/" % blocker)
    assert proc.returncode != 0
    assert "not a directory" in proc.stdout
    assert str(blocker) in proc.stdout
    assert blocker.read_text() == "x\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
