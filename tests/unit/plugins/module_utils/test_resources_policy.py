# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kruise v1.9.0's calculator and resourcesPolicy: inputs and expected values from its own tests
(pkg/util/calculator/calculator_test.go, pkg/webhook/pod/mutating/sidecarset_resources_test.go)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import resources as r

Q = r.parse_quantity


@pytest.mark.parametrize("expr,variables,expected", [
    ("cpu", {"cpu": Q("100m")}, "100m"),
    ("cpu * 2", {"cpu": Q("50m")}, "100m"),
    ("max(cpu, 200m)", {"cpu": Q("100m")}, "200m"),
    ("min(max(max(max(0.5,0.5*cpu),cpu-1.0),cpu-1.0),3.0)", {"cpu": Q("1")}, "500m"),
    ("max(0.25, cpu)", {"cpu": Q("100m")}, "250m"),
    ("min(cpu, 1.5)", {"cpu": Q("2")}, "1500m"),
    ("memory + 100Mi", {"memory": Q("200Mi")}, "300Mi"),
    ("0.5 * memory + max(0, memory-2Gi)", {"memory": Q("8Gi")}, "10Gi"),
    ("max(min(2*cpu,-cpu+3.0),2*cpu-3.0)", {"cpu": Q("1.5")}, "1500m"),
    ("20 - 10", {}, "10"),
    ("10 - 10", {}, "0"),
])
def test_calculator_values(expr, variables, expected):
    assert str(r.evaluate(expr, variables)) == expected


@pytest.mark.parametrize("expr,message", [
    ("-10", "calculation result is negative: -10"),
    ("50m - 100m", "calculation result is negative: -50m"),
    ("10 / 0", "division by zero"),
    ("40m * 2m", "multiplication of two quantities"),
    ("2 / 40m", "division by quantity"),
    ("undefined_var", "undefined variable: undefined_var"),
    ("max(1)", "max function requires exactly 2 arguments, got 1"),
    ("1 +", "parse error: syntax error at line 1, col 4"),
])
def test_calculator_errors(expr, message):
    with pytest.raises(r.CalculatorError) as info:
        r.evaluate(expr, {"cpu": Q("100m")})
    assert str(info.value) == message


@pytest.mark.parametrize("expr,aggregated,is_limit,expected", [
    ("cpu*50%", "200m", True, "100m"),
    ("memory*30%", "600Mi", True, "180Mi"),
    ("max(cpu*50%, 100m)", "150m", True, "100m"),
    ("max(cpu*50%, 100m)", "400m", True, "200m"),
    ("cpu + 50m", "100m", True, "150m"),
    ("max(memory*20% + 100Mi, 200Mi)", "800Mi", True, "260Mi"),
    ("500m", "100m", True, "500m"),
    ("1Gi", "500Mi", True, "1Gi"),
    ("cpu*50%", "0", False, "0"),
    ("memory*25%", "400Mi", False, "100Mi"),
    ("1", "2", False, "1"),
    ("1", "2Mi", False, "1"),
    ("", "100m", False, "0"),
])
def test_evaluate_resource_expression(expr, aggregated, is_limit, expected):
    assert str(r.evaluate_resource_expression(expr, Q(aggregated), is_limit)) == expected


def _app(name, limits=None, requests=None):
    return {"name": name, "resources": {"limits": limits or {}, "requests": requests or {}}}


def test_sum_with_percentage():
    spec = {"containers": [_app("app1", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "50m", "memory": "100Mi"}),
                           _app("app2", {"cpu": "400m", "memory": "400Mi"}, {"cpu": "100m", "memory": "200Mi"})]}
    policy = {"targetContainersMode": "sum", "targetContainersNameRegex": ".*", "resourcesExpr": {
        "limits": {"cpu": "cpu*50%", "memory": "200Mi"}, "requests": {"cpu": "cpu*50%", "memory": "100Mi"}}}
    got = r.apply_resources_policy(spec, {"name": "sidecar1", "resourcesPolicy": policy}, set())
    assert got == {"limits": {"cpu": "300m", "memory": "200Mi"}, "requests": {"cpu": "75m", "memory": "100Mi"}}


def test_max_one_container_unlimited_memory():
    spec = {"containers": [_app("app1", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m", "memory": "100Mi"}),
                           _app("app2", {"cpu": "400m"}, {"cpu": "200m"})]}
    policy = {"targetContainersMode": "max", "targetContainersNameRegex": ".*", "resourcesExpr": {
        "limits": {"cpu": "cpu*40%", "memory": "memory*30%"}, "requests": {"cpu": "cpu*25%", "memory": "memory*20%"}}}
    got = r.apply_resources_policy(spec, {"name": "sidecar1", "resourcesPolicy": policy}, set())
    assert got == {"limits": {"cpu": "160m"}, "requests": {"cpu": "50m", "memory": "20Mi"}}


def test_no_target_refuses_the_pod():
    spec = {"containers": [_app("app1", {"cpu": "200m"})]}
    policy = {"targetContainersMode": "sum", "targetContainersNameRegex": "^nonexistent$",
              "resourcesExpr": {"limits": {"cpu": "cpu*50%"}}}
    with pytest.raises(r.SidecarSetError, match='no containers match the regex pattern "\\^nonexistent\\$"'):
        r.apply_resources_policy(spec, {"name": "sidecar1", "resourcesPolicy": policy}, set())


def test_validation_messages():
    container = {"name": "s", "resources": {"limits": {"cpu": "1"}},
                 "resourcesPolicy": {"targetContainersMode": "sum", "resourcesExpr": {"limits": {"cpu": "cpu"}}}}
    assert r.validate_resources_policy(container, "spec.containers[0]", False) == [
        ("spec.containers[0].resourcesPolicy", "resourcesPolicy and resources cannot be configured together")]
    container = {"name": "s", "resourcesPolicy": {"targetContainersMode": "sum", "targetContainersNameRegex": "(?=a)",
                                                  "resourcesExpr": {"requests": {"memory": "cpu*50%"}}}}
    errors = r.validate_resources_policy(container, "spec.initContainers[0]", True)
    assert errors[0] == ("spec.initContainers[0].resourcesPolicy",
                         "resourcesPolicy is only supported for containers with RestartPolicy Always")
    assert errors[1][0] == "spec.initContainers[0].resourcesPolicy.targetContainersNameRegex"
    assert errors[2] == ("spec.initContainers[0].resourcesPolicy.resourcesExpr.requests.memory",
                         "invalid expression: undefined variable: cpu")


def test_inject_dedupes_the_pods_own_image_pull_secrets():
    """Kruise's mergeSidecarSecrets (pkg/webhook/pod/mutating/sidecarset.go) de-duplicates the pod's secrets too."""
    from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import inject_pod
    sidecarset = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "s"},
                  "spec": {"selector": {"matchLabels": {"app": "a"}}, "imagePullSecrets": [{"name": "x"}, {"name": "b"}],
                           "containers": [{"name": "side", "image": "side:1"}]}}
    pod = {"metadata": {"labels": {"app": "a"}},
           "spec": {"imagePullSecrets": [{"name": "a"}, {"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "app", "image": "app:1"}]}}
    new_pod, dummy = inject_pod(pod, [sidecarset], now="2021-06-04T05:44:26Z")
    assert new_pod["spec"]["imagePullSecrets"] == [{"name": "a"}, {"name": "b"}, {"name": "x"}]
