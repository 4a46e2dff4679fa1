# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout_journal action validates and coerces its arguments against its documented options (issue 11, P7)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
from unittest import mock

import pytest
import yaml
from ansible.errors import AnsibleActionFail

from ansible_collections.meshops.sidecarset.plugins.action import rollout_journal as action
from ansible_collections.meshops.sidecarset.plugins.modules.rollout_journal import DOCUMENTATION


def run(**args):
    task = mock.MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = False
    task.action = "meshops.sidecarset.rollout_journal"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    plugin = action.ActionModule(task, connection, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), None)
    return plugin.run(task_vars={})


@pytest.fixture
def journal():
    path = run(step="start")["journal"]
    yield path
    if os.path.exists(path):
        os.unlink(path)


UPGRADE = {"pods": [{"name": "web-0", "namespace": "shop", "phase": "done", "failed": False, "changed": True}]}


@pytest.mark.parametrize("value,stopped", [("false", ""), ("no", ""), (False, ""), ("true", "canary"), ("yes", "canary"), (True, "canary")])
def test_canary_stop_is_a_real_boolean(journal, value, stopped):
    """Before: bool("false") was True, so a canary always stopped the rollout."""
    result = run(step="batch", journal=journal, kind="canary", pods=["shop/web-0"], upgrade=UPGRADE, canary_stop=value)
    assert result["stopped"] == stopped


def test_numbers_given_as_strings_are_coerced(journal):
    result = run(step="batch", journal=journal, pods=["shop/web-0"], upgrade=UPGRADE, position="2", total="5",
                 max_unavailable="3", started="1700000000.5", max_fail_percentage="0")
    assert result["msg"].startswith("[default] batch 2/5 (batch, 1 pods)")
    assert result["batch"]["max_unavailable"] == 3


def test_the_failed_flag_of_finish_is_a_real_boolean(journal):
    assert run(step="finish", journal=journal, failed="false")["rollout_result"]["failed"] is False


@pytest.mark.parametrize("args,message", [
    ({"step": "batch", "canary_stop": "maybe"}, "canary_stop"),
    ({"step": "batch", "position": "second"}, "position"),
    ({"step": "rewind"}, "step"),
    ({}, "step"),
    ({"step": "start", "canary": True}, "canary"),
])
def test_bad_arguments_fail_the_task(args, message):
    with pytest.raises(AnsibleActionFail, match=message):
        run(**args)


def test_the_spec_is_read_from_the_documentation():
    options = yaml.safe_load(DOCUMENTATION)["options"]
    assert set(action.ARGUMENT_SPEC) == set(options)
    for name, option in options.items():
        assert action.ARGUMENT_SPEC[name]["type"] == option["type"], name
        assert action.ARGUMENT_SPEC[name].get("default") == option.get("default"), name
    assert action.ARGUMENT_SPEC["step"] == {"type": "str", "required": True, "choices": ["start", "batch", "finish", "wait"]}


def test_a_window_stopped_by_the_module_stops_the_rollout(journal, tmp_path):
    """A window whose places are all held by failed pods stops inside sidecar_upgrade; within max_fail_percentage
    the journal's own rule would go on, so the module's reason is taken (and the run fails)."""
    upgrade = {"pods": [{"name": "web-0", "namespace": "shop", "phase": "failed", "failed": True, "changed": True}],
               "stopped": "the maxUnavailable window (1) is held by 1 failed and 0 other unavailable pods; 2 pods not started"}
    result = run(step="batch", journal=journal, kind="window", pods=["shop/web-0", "shop/web-1", "shop/web-2"],
                 upgrade=upgrade, max_fail_percentage="50")
    assert result["stopped"].startswith("window on default: the maxUnavailable window (1) is held") and result["rollout_failed"]
    report = tmp_path / "rollout.json"
    finished = run(step="finish", journal=journal, report_path=str(report))
    assert finished["timeline_path"] == str(tmp_path / "rollout.svg") and (tmp_path / "rollout.svg").read_text().startswith("<svg")


def test_ended_times_a_batch_that_ran_in_the_background(journal):
    """rollout_cluster_parallelism: a background invocation is recorded after the whole round; its batch ends when
    its job ended (step=wait's ended), not when it is recorded."""
    result = run(step="batch", journal=journal, pods=["shop/web-0"], upgrade=UPGRADE, started="1700000000.5", ended="1700000003.0")
    assert result["batch"]["started"] == 1700000000.5 and result["batch"]["ended"] == 1700000003.0
    assert result["batch"]["seconds"] == 2.5


def _job(tmp_path, name, result):
    path = tmp_path / name
    path.write_text(json.dumps(result))
    return {"cluster": name, "job": {"results_file": str(path), "progress_file": "", "launched": 1700000000.0}, "limit": 600}


def test_wait_returns_each_background_invocations_result(tmp_path):
    jobs = [_job(tmp_path, "c0", {"changed": True, "pods": [{"name": "web-0"}]}), _job(tmp_path, "c1", {"changed": False, "pods": []})]
    result = run(step="wait", jobs=jobs, progress_interval="0")
    assert [r["changed"] for r in result["results"]] == [True, False]
    assert all(r["launched"] == 1700000000.0 and r["ended"] > 0 for r in result["results"])
    assert result["changed"] is False
    assert not os.path.exists(str(tmp_path / "c0"))  # the async result file is cleaned up


def test_wait_fails_when_an_invocation_failed_after_all_ended(tmp_path):
    jobs = [_job(tmp_path, "c0", {"changed": True, "pods": []}),
            _job(tmp_path, "c1", {"failed": True, "msg": "Kubernetes API error: 401 Unauthorized"})]
    with pytest.raises(AnsibleActionFail, match="sidecar_upgrade failed on c1: Kubernetes API error: 401") as caught:
        run(step="wait", jobs=jobs)
    assert [r.get("changed") for r in caught.value.result_contribution["results"]] == [True, None]
    assert not os.path.exists(str(tmp_path / "c0")) and not os.path.exists(str(tmp_path / "c1"))


@pytest.mark.parametrize("jobs", [[{"cluster": "c0"}], [{"cluster": "c0", "job": {"ansible_job_id": "j1"}}]])
def test_wait_needs_registered_background_results(jobs):
    with pytest.raises(AnsibleActionFail, match="async and poll 0"):
        run(step="wait", jobs=jobs)
