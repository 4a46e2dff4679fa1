# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``run_guarded``: expected errors are one message; anything else keeps its traceback (issue 11, P7)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import (
    AnnotationError,
    ManifestError,
    ParameterError,
    PlanRefusal,
    SidecarSetError,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.modrunner import run_guarded


class Failed(Exception):
    """Raised by the fake ``fail_json`` (the real one exits)."""


class FakeModule(object):
    def __init__(self):
        self.failure = None

    def fail_json(self, **kwargs):
        self.failure = kwargs
        raise Failed(kwargs["msg"])


def guarded(error):
    module = FakeModule()

    def run(dummy_module):
        raise error

    with pytest.raises(Failed):
        run_guarded(module, run)
    return module.failure


@pytest.mark.parametrize("error", [
    SidecarSetError([("spec.containers[0].image", "required")], sidecarset="mosn", source="mosn.yaml"),
    ManifestError("kind is required", source="app.yaml", document=0),
    ParameterError("pods and batches are mutually exclusive"),
    AnnotationError("annotation kruise.io/sidecarset-hash is not valid JSON: ..."),
    PlanRefusal("refused"),
])
def test_expected_errors_are_one_message_without_traceback(error):
    failure = guarded(error)
    assert failure["msg"] == str(error)
    assert "exception" not in failure


def test_api_errors_name_the_status():
    failure = guarded(KubeError(403, "pods is forbidden"))
    assert failure == {"msg": "Kubernetes API error: HTTP 403: pods is forbidden", "status": 403}


def test_transport_errors_are_not_prefixed():
    failure = guarded(KubeError(0, "cannot reach the Kubernetes API at https://127.0.0.1:1: connection refused"))
    assert failure["msg"] == "cannot reach the Kubernetes API at https://127.0.0.1:1: connection refused"


@pytest.mark.parametrize("error", [ValueError("invalid literal for int()"), KeyError("image"), TypeError("'NoneType' object")])
def test_unexpected_errors_keep_their_traceback(error):
    """Before, a ValueError from a bug became a bare message and its traceback was lost."""
    failure = guarded(error)
    assert failure["msg"].startswith("unexpected %s, a bug of meshops.sidecarset" % type(error).__name__)
    assert str(error) in failure["msg"]
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert "in run" in failure["exception"] and type(error).__name__ in failure["exception"]


def test_success_returns_the_result():
    assert run_guarded(FakeModule(), lambda module, value: {"value": value}, 3) == {"value": 3}
