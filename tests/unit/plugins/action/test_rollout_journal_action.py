# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout_journal action validates and coerces its arguments against its documented options (issue 11, P7)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
    assert action.ARGUMENT_SPEC["step"] == {"type": "str", "required": True, "choices": ["start", "batch", "finish"]}


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
