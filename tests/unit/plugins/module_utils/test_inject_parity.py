# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Injection held against Kruise v1.9.0's pod webhook (issue 16): ``resourcesPolicy`` wired into injection and
the merge rules of ``buildSidecars`` / ``mergeSidecarContainers`` / ``util.MergeVolumes``. Inputs and expected
values are those of Kruise's own tests where they give them (pkg/webhook/pod/mutating/sidecarset_resources_test.go,
sidecarset_test.go); the tests are ours."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import inject_pod
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import normalize_sidecarset

NOW = "2021-06-04T05:44:26Z"


def sidecarset(name="s", containers=None, init_containers=None, volumes=None, **spec):
    body = {"selector": {"matchLabels": {"app": "a"}}}
    if containers is not None:
        body["containers"] = containers
    if init_containers is not None:
        body["initContainers"] = init_containers
    if volumes is not None:
        body["volumes"] = volumes
    body.update(spec)
    return {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": name}, "spec": body}


def pod(containers, init_containers=None, **spec):
    body = {"containers": containers}
    if init_containers is not None:
        body["initContainers"] = init_containers
    body.update(spec)
    return {"metadata": {"labels": {"app": "a"}, "namespace": "default"}, "spec": body}


def app(name, limits=None, requests=None, **extra):
    container = {"name": name, "image": "nginx:1.14.2", "resources": {"limits": limits or {}, "requests": requests or {}}}
    container.update(extra)
    return container


def names(containers):
    return [c["name"] for c in containers]


def by_name(containers, name):
    return next(c for c in containers if c["name"] == name)


# --------------------------------------------------------------------------------------------- resourcesPolicy


def policy(mode, regex=None, limits=None, requests=None):
    out = {"targetContainersMode": mode, "resourcesExpr": {}}
    if regex is not None:
        out["targetContainersNameRegex"] = regex
    if limits is not None:
        out["resourcesExpr"]["limits"] = limits
    if requests is not None:
        out["resourcesExpr"]["requests"] = requests
    return out


def test_resources_policy_regex_filter_kruise_case():
    """'regex filter - specific container': only large.engine.v4 counts."""
    ss = sidecarset(containers=[{"name": "sidecar1", "image": "sidecar:latest", "resourcesPolicy": policy(
        "sum", "^large.engine.v4$", {"cpu": "max(cpu*50%, 50m)", "memory": "200Mi"},
        {"cpu": "max(cpu*50%, 50m)", "memory": "100Mi"})}])
    the_pod = pod([app("large.engine.v4", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "50m", "memory": "100Mi"}),
                   app("large.engine.v8", {"cpu": "400m", "memory": "400Mi"}, {"cpu": "100m", "memory": "200Mi"})])
    new_pod, dummy = inject_pod(the_pod, [ss], now=NOW)
    sidecar = by_name(new_pod["spec"]["containers"], "sidecar1")
    assert sidecar["resources"] == {"limits": {"cpu": "100m", "memory": "200Mi"},
                                    "requests": {"cpu": "50m", "memory": "100Mi"}}
    assert "resourcesPolicy" not in sidecar


def test_resources_policy_native_sidecar_targets_kruise_case():
    """'init-container with resource policy (native sidecar)': a native-sidecar init container of the pod counts,
    a plain init container does not; the sidecar is itself a native-sidecar init container."""
    ss = sidecarset(containers=[], init_containers=[{
        "name": "init-sidecar", "image": "sidecar:latest", "restartPolicy": "Always", "resourcesPolicy": policy(
            "sum", "^app.*$", {"cpu": "max(cpu*30%, 50m)", "memory": "max(memory*25%, 100Mi)"},
            {"cpu": "cpu*20%", "memory": "memory*15%"})}], updateStrategy={"type": "NotUpdate"})
    the_pod = pod([app("app3", {"cpu": "600m", "memory": "1200Mi"}, {"cpu": "300m", "memory": "600Mi"})],
                  init_containers=[
                      app("app1", {"cpu": "400m", "memory": "800Mi"}, {"cpu": "200m", "memory": "400Mi"},
                          restartPolicy="Always"),
                      app("app2", {"cpu": "400m", "memory": "800Mi"}, {"cpu": "200m", "memory": "400Mi"})])
    new_pod, dummy = inject_pod(the_pod, [ss], now=NOW)
    sidecar = by_name(new_pod["spec"]["initContainers"], "init-sidecar")
    assert sidecar["resources"] == {"limits": {"cpu": "300m", "memory": "500Mi"},
                                    "requests": {"cpu": "100m", "memory": "150Mi"}}


def test_resources_policy_leaves_out_the_sidecarsets_names_kruise_case():
    """TestGetTargetContainers: the names of every matched SidecarSet's containers and init containers, and plain
    init containers, are not targets (here: a pod container named like another SidecarSet's sidecar)."""
    other = sidecarset("other", containers=[{"name": "sidecar1", "image": "x:1"}],
                       init_containers=[{"name": "init-sidecar1", "image": "x:1"}])
    ss = sidecarset("sizer", containers=[{"name": "sizer", "image": "s:1", "resourcesPolicy": policy(
        "sum", "^.*$", requests={"cpu": "cpu"})}])
    the_pod = pod([app("app1", requests={"cpu": "1"}), app("app2", requests={"cpu": "2"}),
                   app("sidecar1", requests={"cpu": "100"})],
                  init_containers=[app("init-sidecar1", requests={"cpu": "100"}),
                                   app("plain-init-container", requests={"cpu": "100"}),
                                   app("sidecar-container", requests={"cpu": "4"}, restartPolicy="Always")])
    new_pod, dummy = inject_pod(the_pod, [ss, other], now=NOW)
    assert by_name(new_pod["spec"]["containers"], "sizer")["resources"] == {"requests": {"cpu": "7"}}


def test_resources_policy_no_target_refuses_the_pod():
    ss = sidecarset(containers=[{"name": "sidecar1", "image": "s:1", "resourcesPolicy": policy(
        "sum", "^nonexistent$", {"cpu": "cpu*50%"})}])
    with pytest.raises(SidecarSetError) as info:
        inject_pod(pod([app("app1", {"cpu": "200m"})]), [ss], now=NOW)
    assert info.value.sidecarset == "s"
    assert 'no containers match the regex pattern "^nonexistent$"' in str(info.value)


def test_resources_policy_unlimited_limit_is_not_set_and_missing_requests_count_zero():
    """'sum mode - one container without CPU limit (unlimited)' and 'container without requests (treated as 0)'."""
    ss = sidecarset(containers=[{"name": "sidecar1", "image": "s:1", "resourcesPolicy": policy(
        "sum", limits={"cpu": "cpu*50%", "memory": "memory*50%"}, requests={"cpu": "cpu*50%"})}])
    the_pod = pod([app("app1", {"cpu": "200m", "memory": "200Mi"}, {"cpu": "100m"}),
                   app("app2", {"memory": "400Mi"})])
    new_pod, dummy = inject_pod(the_pod, [ss], now=NOW)
    assert by_name(new_pod["spec"]["containers"], "sidecar1")["resources"] == {
        "limits": {"memory": "300Mi"}, "requests": {"cpu": "50m"}}


def test_resources_policy_both_hot_upgrade_twins_get_it():
    ss = sidecarset(containers=[{"name": "envoy", "image": "envoy:1", "resourcesPolicy": policy(
        "max", requests={"cpu": "cpu*10%", "memory": "memory*10%"}),
        "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "empty:1"}}])
    the_pod = pod([app("web", requests={"cpu": "2", "memory": "1Gi"}), app("job", requests={"cpu": "500m"})])
    new_pod, dummy = inject_pod(the_pod, [ss], now=NOW)
    expected = {"requests": {"cpu": "200m", "memory": "107374182400m"}}
    # memory*10% of 1Gi: Kruise's calculator works on milli units (1073741824000m * 0.1), truncated
    assert by_name(new_pod["spec"]["containers"], "envoy-1")["resources"] == expected
    assert by_name(new_pod["spec"]["containers"], "envoy-2")["resources"] == expected


def test_resources_policy_reinjection_recomputes_from_the_app_containers_only():
    ss = sidecarset(containers=[{"name": "sidecar1", "image": "s:1", "resourcesPolicy": policy(
        "sum", requests={"cpu": "cpu*50%"})}])
    first, dummy = inject_pod(pod([app("app1", requests={"cpu": "1"})]), [ss], now=NOW)
    assert by_name(first["spec"]["containers"], "sidecar1")["resources"] == {"requests": {"cpu": "500m"}}
    again, dummy = inject_pod(first, [ss], now=NOW)
    assert again == first
    first["spec"]["containers"][-1]["resources"] = {"requests": {"cpu": "3"}}
    changed, dummy = inject_pod(first, [ss], now=NOW)
    assert by_name(changed["spec"]["containers"], "sidecar1")["resources"] == {"requests": {"cpu": "1500m"}}


def test_resources_policy_regex_defaults_to_match_all_and_is_hashed():
    """The CRD defaults targetContainersNameRegex to '.*' before Kruise's webhook hashes the SidecarSet."""
    bare = normalize_sidecarset(sidecarset(containers=[{"name": "c", "image": "c:1", "resourcesPolicy": policy(
        "sum", requests={"cpu": "cpu"})}]))
    explicit = normalize_sidecarset(sidecarset(containers=[{"name": "c", "image": "c:1", "resourcesPolicy": policy(
        "sum", ".*", requests={"cpu": "cpu"})}]))
    other = normalize_sidecarset(sidecarset(containers=[{"name": "c", "image": "c:1", "resourcesPolicy": policy(
        "sum", "^app$", requests={"cpu": "cpu"})}]))
    assert bare["spec"]["containers"][0]["resourcesPolicy"]["targetContainersNameRegex"] == ".*"
    key = "kruise.io/sidecarset-hash"
    assert bare["metadata"]["annotations"][key] == explicit["metadata"]["annotations"][key]
    assert bare["metadata"]["annotations"][key] != other["metadata"]["annotations"][key]
