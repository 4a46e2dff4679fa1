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


# --------------------------------------------------------------------------------------------- merge rules


def test_sidecar_volumes_in_order_of_first_use_kruise_case():
    """TestBuildSidecarVolumes_WithDifferentVolumeScenarios 'existing volumes in sidecarSet': init containers
    first, then containers, each by its mounts then its devices; spec.volumes order does not matter."""
    ss = sidecarset(
        init_containers=[{"name": "init", "image": "i:1",
                          "volumeMounts": [{"name": "volume-1", "mountPath": "/a/b"},
                                           {"name": "volume-2", "mountPath": "/c/d"}],
                          "volumeDevices": [{"name": "disk0", "devicePath": "/dev/nvme0"}]}],
        containers=[{"name": "staragent", "image": "s:1",
                     "volumeMounts": [{"name": "volume-3", "mountPath": "/a/b"},
                                      {"name": "volume-4", "mountPath": "/c/d"}],
                     "volumeDevices": [{"name": "disk1", "devicePath": "/dev/nvme1"}]}],
        volumes=[{"name": n, "emptyDir": {}} for n in ("disk1", "volume-4", "volume-3", "disk0", "volume-2",
                                                       "volume-1", "unused")])
    the_pod = pod([app("app")], volumes=[{"name": "volume-a", "emptyDir": {}}, {"name": "volume-b", "emptyDir": {}}])
    new_pod, dummy = inject_pod(the_pod, [ss], now=NOW)
    assert names(new_pod["spec"]["volumes"]) == ["volume-a", "volume-b", "volume-1", "volume-2", "disk0",
                                                 "volume-3", "volume-4", "disk1"]


def test_sidecar_volumes_first_sidecarset_wins_and_the_pods_own_volume_wins():
    """util.MergeVolumes: a pod volume of the same name is kept; between SidecarSets the first one's is used."""
    first = sidecarset("a-first", containers=[{"name": "x", "image": "x:1", "volumeMounts": [
        {"name": "shared", "mountPath": "/s"}, {"name": "pods", "mountPath": "/p"}]}],
        volumes=[{"name": "shared", "emptyDir": {"medium": "Memory"}}, {"name": "pods", "emptyDir": {}}])
    second = sidecarset("b-second", containers=[{"name": "y", "image": "y:1", "volumeMounts": [
        {"name": "shared", "mountPath": "/s"}]}], volumes=[{"name": "shared", "hostPath": {"path": "/tmp"}}])
    the_pod = pod([app("app")], volumes=[{"name": "pods", "hostPath": {"path": "/var/pods"}}])
    new_pod, dummy = inject_pod(the_pod, [second, first], now=NOW)
    volumes = {v["name"]: v for v in new_pod["spec"]["volumes"]}
    assert names(new_pod["spec"]["volumes"]) == ["pods", "shared"]
    assert volumes["pods"] == {"name": "pods", "hostPath": {"path": "/var/pods"}}
    assert volumes["shared"]["emptyDir"] == {"medium": "Memory"}


def _merge_case(pod_names, *sidecars):
    ss = sidecarset(containers=[{"name": n, "image": "s:1", "podInjectPolicy": p} for n, p in sidecars])
    new_pod, dummy = inject_pod(pod([app(n) for n in pod_names]), [ss], now=NOW)
    return names(new_pod["spec"]["containers"])


SIDECARS = (("new-sidecar-1", "BeforeAppContainer"), ("sidecar-1", "AfterAppContainer"),
            ("sidecar-2", "AfterAppContainer"))


@pytest.mark.parametrize("pod_names,sidecars,expected", [
    (["app-container"], SIDECARS, ["new-sidecar-1", "app-container", "sidecar-1", "sidecar-2"]),
    (["app-container"], SIDECARS[2:], ["app-container", "sidecar-2"]),
    (["app-container"], SIDECARS[:1], ["new-sidecar-1", "app-container"]),
    (["sidecar-1", "app-container", "sidecar-2"], SIDECARS[1:], ["sidecar-1", "app-container", "sidecar-2"]),
    (["sidecar-1", "app-container", "sidecar-2"], SIDECARS,
     ["new-sidecar-1", "sidecar-1", "app-container", "sidecar-2"]),
], ids=["new sidecars", "only after", "only before", "named like sidecars, none new",
        "named like sidecars, a new Before one goes to index 0"])
def test_merge_sidecar_containers_kruise_cases(pod_names, sidecars, expected):
    """TestMergeSidecarContainers: a pod container of a sidecar's name is replaced in place; new BeforeAppContainer
    sidecars form a block at index 0, AfterAppContainer ones are appended."""
    assert _merge_case(pod_names, *sidecars) == expected


def test_merge_keeps_reinjected_sidecars_in_front():
    """Ours (Kruise never re-injects): a SidecarSet injected earlier keeps its Before sidecars ahead of a new one, so
    re-injection gives what a fresh injection gives."""
    ss1 = sidecarset(containers=[{"name": "envoy", "image": "e:1"}])
    first, dummy = inject_pod(pod([app("app")]), [ss1], now=NOW)
    ss2 = sidecarset(containers=[{"name": "envoy", "image": "e:2"}, {"name": "log", "image": "l:1"}])
    again, dummy = inject_pod(first, [ss2], now=NOW)
    fresh, dummy = inject_pod(pod([app("app")]), [ss2], now=NOW)
    assert names(again["spec"]["containers"]) == names(fresh["spec"]["containers"]) == ["envoy", "log", "app"]


def test_subpath_expr_env_is_the_first_of_its_name():
    """GetInjectedVolumeMountsAndEnvs copies util.GetContainerEnvVar: the first env of that name."""
    ss = sidecarset(containers=[{"name": "side", "image": "s:1", "shareVolumePolicy": {"type": "enabled"}}])
    the_app = app("app", env=[{"name": "POD", "value": "first"}, {"name": "POD", "value": "second"}],
                  volumeMounts=[{"name": "logs", "mountPath": "/logs", "subPathExpr": "x/$(POD)"}])
    new_pod, dummy = inject_pod(pod([the_app], volumes=[{"name": "logs", "emptyDir": {}}]), [ss], now=NOW)
    side = by_name(new_pod["spec"]["containers"], "side")
    assert [e for e in side["env"] if e["name"] == "POD"] == [{"name": "POD", "value": "first"}]


def test_env_merge_order_transfer_then_subpath_own_env_wins():
    """buildSidecars: own env, IS_INJECTED, then MergeEnvVar(transfer envs + subPathExpr envs): a name already
    present is skipped, the first of a name wins."""
    ss = sidecarset(containers=[{"name": "side", "image": "s:1", "env": [{"name": "MODE", "value": "own"}],
                                 "shareVolumePolicy": {"type": "enabled"},
                                 "transferEnv": [{"sourceContainerName": "app", "envNames": ["MODE", "ZONE"]}]}])
    the_app = app("app", env=[{"name": "MODE", "value": "app"}, {"name": "ZONE", "value": "z1"},
                              {"name": "DIR", "value": "d"}],
                  volumeMounts=[{"name": "logs", "mountPath": "/logs", "subPathExpr": "$(DIR)/$(ZONE)"}])
    new_pod, dummy = inject_pod(pod([the_app], volumes=[{"name": "logs", "emptyDir": {}}]), [ss], now=NOW)
    side = by_name(new_pod["spec"]["containers"], "side")
    assert side["env"] == [{"name": "MODE", "value": "own"}, {"name": "IS_INJECTED", "value": "true"},
                           {"name": "ZONE", "value": "z1"}, {"name": "DIR", "value": "d"}]


def test_is_injected_reads_the_first_env_of_that_name():
    """IsInjectedSidecarContainerInPod: GetContainerEnvValue returns the first IS_INJECTED's value, so an app with
    IS_INJECTED=false then =true is an app container and its mounts are shared."""
    ss = sidecarset(containers=[{"name": "side", "image": "s:1", "shareVolumePolicy": {"type": "enabled"}}])
    the_app = app("app", env=[{"name": "IS_INJECTED", "value": "false"}, {"name": "IS_INJECTED", "value": "true"}],
                  volumeMounts=[{"name": "logs", "mountPath": "/logs"}])
    new_pod, dummy = inject_pod(pod([the_app], volumes=[{"name": "logs", "emptyDir": {}}]), [ss], now=NOW)
    side = by_name(new_pod["spec"]["containers"], "side")
    assert side["volumeMounts"] == [{"name": "logs", "mountPath": "/logs"}]


# --------------------------------------------------------------------------------------------- patchPodMetadata


def _upgrade_case():
    from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory
    base = podfactory.sidecarset(containers=[podfactory.cold("log", "reg.example/log:v1"),
                                             podfactory.hot("mesh", "reg.example/mesh:v1")])
    the_pod = podfactory.pod(sets=[base])
    the_pod["metadata"]["annotations"].update({
        "example.com/retained": "pod's own", "example.com/overwritten": "old",
        "example.com/merged": '{"keep":1,"drop":2}', "example.com/other-writer": "theirs"})
    target = podfactory.with_images(base, "hash-2", mesh="reg.example/mesh:v2", log="reg.example/log:v2")
    target["spec"]["patchPodMetadata"] = [
        {"patchPolicy": "Retain", "annotations": {"example.com/retained": "sidecarset's",
                                                  "example.com/added": "new"}},
        {"patchPolicy": "Overwrite", "annotations": {"example.com/overwritten": "v2"}},
        {"patchPolicy": "MergePatchJson", "annotations": {"example.com/merged": '{"drop":null,"add":"<x>"}'}},
    ]
    return the_pod, target


def test_patch_pod_metadata_is_reapplied_in_the_upgrade_write():
    """updatePodSidecarAndHash runs PatchPodMetadata on the pod it updates: Retain adds only a missing key,
    Overwrite sets, MergePatchJson merge-patches (Go's re-marshalled JSON: sorted, HTML-escaped). The keys go in the
    same single patch as the images and the pod hash, guarded by the pod's resourceVersion."""
    from ansible_collections.meshops.sidecarset.plugins.module_utils.hotupgrade import plan_next, plan_patch_body
    the_pod, target = _upgrade_case()
    plan = plan_next(the_pod, target, 2000, NOW)
    assert plan.action == "upgrade", plan
    body = plan_patch_body(the_pod, plan)
    annotations = body["metadata"]["annotations"]
    assert body["metadata"]["resourceVersion"] == the_pod["metadata"]["resourceVersion"]
    assert {c["name"]: c["image"] for c in body["spec"]["containers"]} == {
        "log": "reg.example/log:v2", "mesh-2": "reg.example/mesh:v2"}
    assert "kruise.io/sidecarset-hash" in annotations
    assert annotations["example.com/added"] == "new"
    assert annotations["example.com/overwritten"] == "v2"
    assert annotations["example.com/merged"] == '{"add":"\\u003cx\\u003e","keep":1}'
    # Retain on a key the pod has, and annotations of other writers: not part of the write
    assert "example.com/retained" not in annotations
    assert "example.com/other-writer" not in annotations


def test_patch_pod_metadata_write_keeps_a_concurrent_writers_annotations():
    """The write is a strategic merge patch of the annotation map carrying only our keys: annotations another
    writer set (before our read, or after it and then retried on 409) are left as they are."""
    from ansible_collections.meshops.sidecarset.plugins.module_utils.hotupgrade import plan_next, plan_patch_body
    the_pod, target = _upgrade_case()
    body = plan_patch_body(the_pod, plan_next(the_pod, target, 2000, NOW))
    # another writer changes the pod after our read: the API server's merge of our annotations into theirs
    stored = dict(the_pod["metadata"]["annotations"])
    stored.update({"example.com/late-writer": "theirs too", "example.com/other-writer": "theirs, changed"})
    stored.update({k: v for k, v in body["metadata"]["annotations"].items() if v is not None})
    assert stored["example.com/late-writer"] == "theirs too"
    assert stored["example.com/other-writer"] == "theirs, changed"
    assert stored["example.com/retained"] == "pod's own"
    assert stored["example.com/overwritten"] == "v2" and stored["example.com/added"] == "new"


def test_patch_pod_metadata_not_json_refuses_the_pod():
    from ansible_collections.meshops.sidecarset.plugins.module_utils.hotupgrade import plan_next
    the_pod, target = _upgrade_case()
    the_pod["metadata"]["annotations"]["example.com/merged"] = "not json"
    plan = plan_next(the_pod, target, 2000, NOW)
    assert plan.action == "refuse" and "patchPodMetadata" in plan.reason and "example.com/merged" in plan.reason
    assert not plan.writes


def test_resources_policy_refusal_names_the_manifest_document():
    """Offline, a pod the policy refuses names the file, the document and the field (Kruise: the pod's creation
    fails with the same message)."""
    import yaml
    from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError
    from ansible_collections.meshops.sidecarset.plugins.module_utils.offline import render
    ss = normalize_sidecarset(sidecarset(containers=[{"name": "sidecar1", "image": "s:1", "resourcesPolicy": policy(
        "sum", "^nonexistent$", {"cpu": "cpu*50%"})}]))
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": pod([app("app1", {"cpu": "200m"})])}}
    with pytest.raises(ManifestError) as info:
        render([("apps/web.yaml", "web.yaml", yaml.safe_dump_all([{"kind": "ConfigMap"}, doc]))], [ss])
    assert str(info.value) == ('manifest (apps/web.yaml, document[1]): spec.template.spec.containers: SidecarSet \'s\': '
                               'resourcesPolicy of sidecar \'sidecar1\': no containers match the regex pattern '
                               '"^nonexistent$"')
