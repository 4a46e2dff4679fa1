# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Label selectors: Kubernetes matching semantics, validation and list-API strings."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import (
    compile_label_selector,
    is_empty_selector,
    match_label_selector,
    selector_to_string,
    validate_label_selector,
)

LABELS = {"app": "web", "tier": "front", "env": "prod"}

CASES = [
    ({"matchLabels": {"app": "web"}}, True),
    ({"matchLabels": {"app": "db"}}, False),
    ({"matchLabels": {"app": "web", "tier": "front"}}, True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}, False),
    ({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "Gt", "values": ["1"]}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": None}]}, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]},
                           {"key": "tier", "operator": "NotIn", "values": ["back"]},
                           {"key": "app", "operator": "Exists"}, {"key": "x", "operator": "DoesNotExist"}]}, True),
    ({}, True),
    (None, False),
]


@pytest.mark.parametrize("selector,expected", CASES)
def test_match_label_selector(selector, expected):
    assert match_label_selector(selector, LABELS) is expected


@pytest.mark.parametrize("selector,expected", CASES)
def test_compiled_selector_agrees(selector, expected):
    assert compile_label_selector(selector)(LABELS) is expected


def test_empty_selector_detection():
    assert is_empty_selector(None) and is_empty_selector({}) and is_empty_selector({"matchLabels": {}})
    assert not is_empty_selector({"matchExpressions": [{"key": "a", "operator": "Exists"}]})


def test_match_with_no_labels():
    assert match_label_selector({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, None)
    assert not match_label_selector({"matchLabels": {"a": "b"}}, None)


def test_valid_selector_has_no_errors():
    selector = {"matchLabels": {"example.com/app": "web-1"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                     {"key": "x", "operator": "Exists"}]}
    assert validate_label_selector(selector, "spec.selector") == []


@pytest.mark.parametrize("selector,path,fragment", [
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]},
     "spec.selector.matchExpressions[0].operator", "not a valid selector operator"),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "spec.selector.matchExpressions[0].values", "must be specified"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
     "spec.selector.matchExpressions[0].values", "may not be specified"),
    ({"matchLabels": {"bad key!": "x"}}, "spec.selector.matchLabels", "invalid label key"),
    ({"matchLabels": {"a": "-bad-"}}, "spec.selector.matchLabels.a", "invalid label value"),
    ({"matchLabels": {"a": True}}, "spec.selector.matchLabels.a", "must be a string"),
    ({"matchLables": {"a": "b"}}, "spec.selector.matchLables", "unknown field"),
    ("app=web", "spec.selector", "must be a mapping"),
])
def test_invalid_selectors(selector, path, fragment):
    errors = validate_label_selector(selector, "spec.selector")
    assert any(p == path and fragment in m for p, m in errors), errors


def test_selector_to_string():
    selector = {"matchLabels": {"tier": "front", "app": "web"},
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["qa", "dev"]},
                                     {"key": "zone", "operator": "In", "values": ["b", "a"]},
                                     {"key": "canary", "operator": "DoesNotExist"},
                                     {"key": "owner", "operator": "Exists"}]}
    assert selector_to_string(selector) == "app=web,!canary,env notin (dev,qa),owner,tier=front,zone in (a,b)"
    assert selector_to_string(None) == "" and selector_to_string({}) == ""
    with pytest.raises(ValueError):
        selector_to_string({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
