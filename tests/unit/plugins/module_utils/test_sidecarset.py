# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading, v1alpha1/v1beta1 conversion, defaults and validation of SidecarSets (docs/kruise-mapping.md)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import sidecarset as ss_mod
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import compile_sidecarset
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import namespace_labels as namespace_labels_of
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    empty_image,
    get_hash,
    get_hash_without_image,
    hot_sidecars,
    load_sidecarsets,
    normalize_sidecarset,
    parse_sidecarset_yaml,
    sidecar_containers,
    sidecarset_name,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "sidecarsets")
FIXTURES = os.path.join(ROOT, "tests", "unit", "fixtures")


def fixture(name):
    return os.path.join(FIXTURES, name)


def base(**spec_extra):
    spec = {"selector": {"matchLabels": {"app": "x"}}, "containers": [{"name": "side", "image": "repo/side:1.0"}]}
    spec.update(spec_extra)
    return {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "demo"}, "spec": spec}


def container(**fields):
    value = {"name": "side", "image": "repo/side:1.0"}
    value.update(fields)
    return value


def errors_of(obj, source=None):
    with pytest.raises(SidecarSetError) as info:
        normalize_sidecarset(obj, source=source)
    return info.value


# ---------------------------------------------------------------- examples, conversion, defaults


def test_load_examples_sorted_and_converted():
    loaded = load_sidecarsets([EXAMPLES])
    assert [sidecarset_name(s) for s in loaded] == ["hotupgrade-sidecarset", "mosn", "sized-sidecars"]
    mosn = loaded[1]
    assert mosn["apiVersion"] == "apps.kruise.io/v1beta1"
    assert "namespace" not in mosn["spec"]
    assert mosn["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "default"}}
    assert mosn["spec"]["updateStrategy"] == {"type": "RollingUpdate", "maxUnavailable": 1, "partition": 0}
    assert mosn["spec"]["revisionHistoryLimit"] == 10
    side = mosn["spec"]["containers"][0]
    assert side["podInjectPolicy"] == "BeforeAppContainer"
    assert side["shareVolumePolicy"] == {"type": "enabled"}
    assert side["upgradeStrategy"] == {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "openkruise/hotupgrade-sample:empty"}
    assert get_hash(mosn) and get_hash_without_image(mosn)
    assert [c["name"] for c in hot_sidecars(mosn)] == ["mosn"]
    assert empty_image(sidecar_containers(mosn)[0]) == "openkruise/hotupgrade-sample:empty"


def test_example_a_defaults():
    hot = load_sidecarsets([os.path.join(EXAMPLES, "hotupgrade-sample.yaml")])[0]
    side = hot["spec"]["containers"][0]
    assert side["imagePullPolicy"] == "Always"
    assert side["terminationMessagePath"] == "/dev/termination-log"
    assert side["terminationMessagePolicy"] == "File"
    assert side["shareVolumePolicy"] == {"type": "disabled"}
    assert "namespaceSelector" not in hot["spec"]


def test_normalize_is_idempotent_and_does_not_mutate_input():
    raw = parse_sidecarset_yaml(open(os.path.join(EXAMPLES, "mosn.yaml")).read())[0]
    before = copy.deepcopy(raw)
    once = normalize_sidecarset(raw)
    assert raw == before
    assert normalize_sidecarset(once) == once
    assert normalize_sidecarset(copy.deepcopy(once)) == once


def test_v1alpha1_namespace_wins_over_namespace_selector():
    obj = base(namespace="shop", namespaceSelector={"matchLabels": {"team": "a"}})
    obj["apiVersion"] = "apps.kruise.io/v1alpha1"
    out = normalize_sidecarset(obj)
    assert out["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}


def test_v1alpha1_custom_version_label_becomes_spec_field():
    obj = base()
    obj["apiVersion"] = "apps.kruise.io/v1alpha1"
    obj["metadata"]["labels"] = {"apps.kruise.io/sidecarset-custom-version": "v7", "team": "mesh"}
    out = normalize_sidecarset(obj)
    assert out["spec"]["customVersion"] == "v7"
    assert out["metadata"]["labels"] == {"team": "mesh"}


def test_v1alpha1_and_v1beta1_forms_give_the_same_object():
    alpha = base(namespace="default")
    alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
    beta = base(namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "default"}})
    assert normalize_sidecarset(alpha) == normalize_sidecarset(beta)


def test_v1beta1_rejects_spec_namespace():
    err = errors_of(base(namespace="default"))
    assert ("spec.namespace", "not a v1beta1 field (v1alpha1 only): use spec.namespaceSelector") in err.errors


def test_plain_dict_with_only_metadata_and_spec():
    out = load_sidecarsets([{"metadata": {"name": "inline"}, "spec": base()["spec"]}])[0]
    assert out["apiVersion"] == "apps.kruise.io/v1beta1" and out["kind"] == "SidecarSet"


def test_plain_dict_with_namespace_is_taken_as_v1alpha1():
    out = normalize_sidecarset({"metadata": {"name": "inline"}, "spec": base(namespace="ns1")["spec"]})
    assert out["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ns1"}}


@pytest.mark.parametrize("image,policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("registry:5000/busybox", "Always"),
    ("registry:5000/busybox:1.36", "IfNotPresent"), ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_default(image, policy):
    out = normalize_sidecarset(base(containers=[container(image=image)]))
    assert out["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_container_and_probe_defaults():
    side = container(
        ports=[{"containerPort": 80}],
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        livenessProbe={"httpGet": {"port": 80}},
        readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 5},
        lifecycle={"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
        resources={"limits": {"cpu": 1, "memory": "1024Mi"}},
    )
    out = normalize_sidecarset(base(containers=[side], initContainers=[container(name="init")]))
    got = out["spec"]["containers"][0]
    assert got["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert got["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert got["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert got["readinessProbe"]["periodSeconds"] == 5 and got["readinessProbe"]["timeoutSeconds"] == 1
    assert got["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/quit", "scheme": "HTTP"}
    assert got["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert out["spec"]["initContainers"][0]["podInjectPolicy"] == "AfterAppContainer"
    assert out["spec"]["initContainers"][0]["upgradeStrategy"] == {"upgradeType": "ColdUpgrade"}


def test_spec_level_defaults():
    out = normalize_sidecarset(base(
        patchPodMetadata=[{"annotations": {"example.com/a": "b"}}],
        injectionStrategy={"revision": {"customVersion": "v1"}},
        volumes=[{"name": "bare"}, {"name": "cfg", "configMap": {"name": "c"}}],
    ))
    spec = out["spec"]
    assert spec["patchPodMetadata"][0]["patchPolicy"] == "Retain"
    assert spec["injectionStrategy"]["revision"]["policy"] == "Always"
    assert spec["volumes"] == [{"name": "bare", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}]


def test_transfer_env_field_ref_api_version_default():
    side = container(transferEnv=[{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['main']"}},
                                   "envName": "TZ"}])
    out = normalize_sidecarset(base(containers=[side]))
    assert out["spec"]["containers"][0]["transferEnv"][0]["sourceContainerNameFrom"]["fieldRef"]["apiVersion"] == "v1"


def _defaults_cases():
    """Every field ``_apply_defaults`` sets, unset (missing, ``None``, falsy) and set, plus non-mapping values."""
    def side(name, **fields):
        return dict(name=name, image="reg.example/%s" % name, **fields)

    falsy = [None, 0, "", {}]
    containers = [
        side("latest:latest", imagePullPolicy="", terminationMessagePath="", terminationMessagePolicy=None,
             podInjectPolicy=None, upgradeStrategy={"upgradeType": ""}, shareVolumePolicy={"type": None},
             ports=[{"containerPort": 1}, {"containerPort": 2, "protocol": "UDP"}, "x", {"protocol": ""}],
             env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "p"}}}, {"name": "B", "valueFrom": "x"},
                  {"name": "C", "valueFrom": {"fieldRef": {"apiVersion": "v2"}}}, {"name": "D", "valueFrom": {"fieldRef": "x"}},
                  "x", {"name": "E"}],
             transferEnv=[{"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "p"}}},
                          {"sourceContainerNameFrom": {"fieldRef": {"apiVersion": ""}}},
                          {"sourceContainerNameFrom": {"fieldRef": {"apiVersion": "v9"}}}, {"sourceContainerNameFrom": "x"}, 7],
             resources=None,
             livenessProbe={"httpGet": {"port": 1}, "timeoutSeconds": 0, "periodSeconds": None, "grpc": {"port": 2}},
             readinessProbe={"httpGet": {"path": "", "scheme": None}, "successThreshold": 5, "failureThreshold": "",
                             "grpc": {"service": None}},
             startupProbe="x",
             lifecycle={"postStart": {"httpGet": {"path": "/p", "scheme": "HTTPS"}}, "preStop": {"httpGet": "x"}}),
        side("digest@sha256:0", imagePullPolicy="Never", terminationMessagePath="/t", terminationMessagePolicy="F",
             podInjectPolicy="AfterAppContainer", upgradeStrategy="x", shareVolumePolicy="x",
             resources={"limits": {"cpu": "1000m"}, "requests": "x"}, readinessProbe={"grpc": {"service": 0}}, livenessProbe={"grpc": {"service": "s"}},
             lifecycle="x", ports="x", env="x"),
        side("plain:1", upgradeStrategy=None, shareVolumePolicy=None, resources="x", livenessProbe=None),
        "not-a-container",
    ]
    volumes = [{"name": "bare"}, {"name": "hp", "hostPath": {"path": "/"}}, {"name": "hp2", "hostPath": {"type": "Dir"}},
               {"name": "hp3", "hostPath": {"type": 0}}]
    volumes += [{"name": key, key: {}} for key in ("secret", "configMap", "downwardAPI", "projected")]
    volumes += [{"name": "m", "secret": {"defaultMode": 0}}, {"name": "e", "emptyDir": None}, "x"]
    cases = []
    for value in falsy:
        cases.append({"spec": {
            "updateStrategy": {"type": value, "maxUnavailable": value, "partition": value},
            "initContainers": [side("init", podInjectPolicy=value)], "containers": containers, "volumes": volumes,
            "revisionHistoryLimit": value,
            "patchPodMetadata": [{"patchPolicy": value}, {"patchPolicy": "Overwrite"}, "x"],
            "injectionStrategy": {"revision": {"policy": value}},
        }})
    cases.append({"spec": {"updateStrategy": None, "initContainers": "x", "containers": None, "volumes": "x",
                           "patchPodMetadata": "x", "injectionStrategy": {"revision": "x"}}})
    cases.append({"spec": {"updateStrategy": "x", "injectionStrategy": "x"}})
    return cases


def test_apply_defaults_output_is_pinned():
    """The defaulted objects, key order included, as recorded before ``_apply_defaults`` was table-driven."""
    out = []
    for case in _defaults_cases():
        case = copy.deepcopy(case)  # the cases share their containers and volumes
        ss_mod._apply_defaults(case)
        out.append(case)
    with open(fixture("apply-defaults.json")) as handle:
        assert json.dumps(out) + "\n" == handle.read()


# ---------------------------------------------------------------- validation


RULES = [
    # (description, object mutator, expected path, expected message fragment)
    ("name charset", lambda o: o["metadata"].update(name="bad_name"), "metadata.name", "must match"),
    ("name length", lambda o: o["metadata"].update(name="a" * 64), "metadata.name", "at most 63"),
    ("name uppercase", lambda o: o["metadata"].update(name="Mosn"), "metadata.name", "lowercase"),
    ("selector required", lambda o: o["spec"].pop("selector"), "spec.selector", "required and must not be empty"),
    ("selector empty", lambda o: o["spec"].update(selector={}), "spec.selector", "must not be empty"),
    ("selector invalid", lambda o: o["spec"].update(selector={"matchExpressions": [{"key": "a", "operator": "Is"}]}),
     "spec.selector.matchExpressions[0].operator", "not a valid selector operator"),
    ("namespaceSelector empty", lambda o: o["spec"].update(namespaceSelector={}), "spec.namespaceSelector",
     "must not be empty"),
    ("updateStrategy.selector empty", lambda o: o["spec"].update(updateStrategy={"selector": {"matchLabels": {}}}),
     "spec.updateStrategy.selector", "must not be empty"),
    ("no containers", lambda o: o["spec"].update(containers=[]), "spec.containers", "at least one container"),
    ("podInjectPolicy", lambda o: o["spec"]["containers"][0].update(podInjectPolicy="Middle"),
     "spec.containers[0].podInjectPolicy", "must be BeforeAppContainer or AfterAppContainer"),
    ("shareVolumePolicy", lambda o: o["spec"]["containers"][0].update(shareVolumePolicy={"type": "yes"}),
     "spec.containers[0].shareVolumePolicy.type", "must be enabled or disabled"),
    ("container name", lambda o: o["spec"]["containers"][0].update(name="Side_Car"), "spec.containers[0].name",
     "DNS-1123 label"),
    ("duplicate names across init and containers",
     lambda o: o["spec"].update(initContainers=[container()]), "spec.containers[0].name", "duplicate container name"),
    ("image required", lambda o: o["spec"]["containers"][0].pop("image"), "spec.containers[0].image", "required"),
    ("mount refers to a missing volume",
     lambda o: o["spec"]["containers"][0].update(volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
     "spec.containers[0].volumeMounts[0].name", "volume 'nope' not found in spec.volumes"),
    ("device refers to a missing volume",
     lambda o: o["spec"]["containers"][0].update(volumeDevices=[{"name": "nope", "devicePath": "/dev/x"}]),
     "spec.containers[0].volumeDevices[0].name", "not found in spec.volumes"),
    ("mountPath collision", lambda o: (o["spec"].update(volumes=[{"name": "v", "emptyDir": {}}]),
                                       o["spec"]["containers"][0].update(volumeMounts=[
                                           {"name": "v", "mountPath": "/x"}, {"name": "v", "mountPath": "/x"}])),
     "spec.containers[0].volumeMounts[1].mountPath", "must be unique"),
    ("transferEnv fieldRef apiVersion",
     lambda o: o["spec"]["containers"][0].update(transferEnv=[{"envName": "A", "sourceContainerNameFrom": {
         "fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.labels['x']"}}}]),
     "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.apiVersion", "must be v1"),
    ("transferEnv plain fieldPath",
     lambda o: o["spec"]["containers"][0].update(transferEnv=[{"envName": "A", "sourceContainerNameFrom": {
         "fieldRef": {"fieldPath": "metadata.name"}}}]),
     "spec.containers[0].transferEnv[0].sourceContainerNameFrom.fieldRef.fieldPath", "field label not supported"),
    ("transferEnv without source",
     lambda o: o["spec"]["containers"][0].update(transferEnv=[{"envName": "A"}]),
     "spec.containers[0].transferEnv[0]", "sourceContainerName or sourceContainerNameFrom is required"),
    ("partition negative", lambda o: o["spec"].update(updateStrategy={"partition": -1}), "spec.updateStrategy.partition",
     "greater than or equal to 0"),
    ("maxUnavailable malformed percent", lambda o: o["spec"].update(updateStrategy={"maxUnavailable": "5 %"}),
     "spec.updateStrategy.maxUnavailable", "percentage"),
    ("partition with selector", lambda o: o["spec"].update(updateStrategy={
        "partition": 2, "selector": {"matchLabels": {"canary": "true"}}}), "spec.updateStrategy.partition",
     "cannot be used together with updateStrategy.selector"),
    ("update type", lambda o: o["spec"].update(updateStrategy={"type": "OnDelete"}), "spec.updateStrategy.type",
     "must be RollingUpdate or NotUpdate"),
    ("priority both", lambda o: o["spec"].update(updateStrategy={"priorityStrategy": {
        "weightPriority": [{"weight": 10, "matchSelector": {"matchLabels": {"a": "b"}}}],
        "orderPriority": [{"orderedKey": "k"}]}}), "spec.updateStrategy.priorityStrategy", "cannot both be set"),
    ("priority weight range", lambda o: o["spec"].update(updateStrategy={"priorityStrategy": {
        "weightPriority": [{"weight": 101, "matchSelector": {"matchLabels": {"a": "b"}}}]}}),
     "spec.updateStrategy.priorityStrategy.weightPriority[0].weight", "between 0 and 100"),
    ("scatter duplicate", lambda o: o["spec"].update(updateStrategy={"scatterStrategy": [
        {"key": "zone", "value": "a"}, {"key": "zone", "value": "a"}]}), "spec.updateStrategy.scatterStrategy[1]",
     "duplicate term"),
    ("scatter empty key", lambda o: o["spec"].update(updateStrategy={"scatterStrategy": [{"key": "", "value": "a"}]}),
     "spec.updateStrategy.scatterStrategy[0].key", "must not be empty"),
    ("native sidecar with RollingUpdate",
     lambda o: o["spec"].update(initContainers=[container(name="native", restartPolicy="Always")]),
     "spec.initContainers[0].restartPolicy", "need updateStrategy.type NotUpdate"),
    ("patch without annotations", lambda o: o["spec"].update(patchPodMetadata=[{"patchPolicy": "Retain"}]),
     "spec.patchPodMetadata[0].annotations", "required"),
    ("patch bad policy", lambda o: o["spec"].update(patchPodMetadata=[{"annotations": {"a": "b"}, "patchPolicy": "Keep"}]),
     "spec.patchPodMetadata[0].patchPolicy", "must be one of Retain, Overwrite, MergePatchJson"),
    ("patch repeated key",
     lambda o: o["spec"].update(patchPodMetadata=[{"annotations": {"a": "1"}}, {"annotations": {"a": "2"}}]),
     "spec.patchPodMetadata[1].annotations.a", "key repeated"),
    ("hot upgrade needs empty image",
     lambda o: o["spec"]["containers"][0].update(upgradeStrategy={"upgradeType": "HotUpgrade"}),
     "spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage", "required when upgradeType is HotUpgrade"),
    ("hot upgrade on a plain init container",
     lambda o: o["spec"].update(initContainers=[container(name="init", upgradeStrategy={
         "upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"})]),
     "spec.initContainers[0].upgradeStrategy.upgradeType", "HotUpgrade is not possible on initContainers"),
    ("bad upgradeType", lambda o: o["spec"]["containers"][0].update(upgradeStrategy={"upgradeType": "Hot"}),
     "spec.containers[0].upgradeStrategy.upgradeType", "must be ColdUpgrade or HotUpgrade"),
    ("unknown container key", lambda o: o["spec"]["containers"][0].update(imagePullPolicyy="Always"),
     "spec.containers[0].imagePullPolicyy", "unknown field (did you mean 'imagePullPolicy'?)"),
    ("unknown probe key", lambda o: o["spec"]["containers"][0].update(readinessProbe={"exec": {"command": ["true"]},
                                                                                      "periodSecond": 3}),
     "spec.containers[0].readinessProbe.periodSecond", "unknown field"),
    ("unknown port key", lambda o: o["spec"]["containers"][0].update(ports=[{"containerPort": 80, "proto": "TCP"}]),
     "spec.containers[0].ports[0].proto", "unknown field"),
    ("unknown env key", lambda o: o["spec"]["containers"][0].update(env=[{"name": "A", "val": "1"}]),
     "spec.containers[0].env[0].val", "unknown field"),
    ("unknown mount key", lambda o: (o["spec"].update(volumes=[{"name": "v"}]), o["spec"]["containers"][0].update(
        volumeMounts=[{"name": "v", "mountpath": "/x"}])), "spec.containers[0].volumeMounts[0].mountpath", "unknown field"),
    ("unknown securityContext key", lambda o: o["spec"]["containers"][0].update(securityContext={"privileges": True}),
     "spec.containers[0].securityContext.privileges", "unknown field"),
    ("wrong type", lambda o: o["spec"]["containers"][0].update(command="sleep 1"), "spec.containers[0].command",
     "must be a list of strings"),
    ("handler missing", lambda o: o["spec"]["containers"][0].update(lifecycle={"postStart": {}}),
     "spec.containers[0].lifecycle.postStart", "must specify a handler type"),
    ("hot twin name clash", lambda o: o["spec"].update(containers=[
        container(upgradeStrategy={"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}),
        container(name="side-1")]), "spec.containers[0].name", "HotUpgrade twin name 'side-1'"),
    ("unknown spec key", lambda o: o["spec"].update(selecter={"matchLabels": {"a": "b"}}), "spec.selecter",
     "did you mean 'selector'?"),
    ("revision without name", lambda o: o["spec"].update(injectionStrategy={"revision": {"policy": "Partial"}}),
     "spec.injectionStrategy.revision", "revisionName or customVersion is required"),
    ("init lifecycle on non-native init", lambda o: o["spec"].update(initContainers=[container(
        name="init", lifecycle={"postStart": {"exec": {"command": ["true"]}}})]), "spec.initContainers[0].lifecycle",
     "may not be set for init containers"),
    ("resourcesPolicy without limits or requests", lambda o: o["spec"]["containers"][0].update(resourcesPolicy={
        "targetContainersMode": "sum"}), "spec.containers[0].resourcesPolicy.resourcesExpr",
     "at least one of limits or requests must be configured"),
    ("resourcesPolicy with resources", lambda o: o["spec"]["containers"][0].update(
        resources={"requests": {"cpu": "1"}}, resourcesPolicy={"targetContainersMode": "sum", "resourcesExpr": {
            "limits": {"cpu": "cpu"}}}), "spec.containers[0].resourcesPolicy",
     "resourcesPolicy and resources cannot be configured together"),
    ("resourcesPolicy bad regex", lambda o: o["spec"]["containers"][0].update(resourcesPolicy={
        "targetContainersMode": "max", "targetContainersNameRegex": "app[", "resourcesExpr": {
            "limits": {"cpu": "cpu"}}}), "spec.containers[0].resourcesPolicy.targetContainersNameRegex",
     "invalid regex pattern: error parsing regexp"),
    ("resourcesPolicy bad expression", lambda o: o["spec"]["containers"][0].update(resourcesPolicy={
        "targetContainersMode": "sum", "resourcesExpr": {"requests": {"cpu": "max(cpu*50%)"}}}),
     "spec.containers[0].resourcesPolicy.resourcesExpr.requests.cpu",
     "invalid expression: max function requires exactly 2 arguments, got 1"),
    ("resourcesPolicy bad mode", lambda o: o["spec"]["containers"][0].update(resourcesPolicy={
        "targetContainersMode": "avg", "resourcesExpr": {"requests": {"cpu": "cpu"}}}),
     "spec.containers[0].resourcesPolicy.targetContainersMode", 'Unsupported value: "avg"'),
    ("resourcesPolicy unknown expr key", lambda o: o["spec"]["containers"][0].update(resourcesPolicy={
        "targetContainersMode": "sum", "resourcesExpr": {"requests": {"cpus": "cpu"}}}),
     "spec.containers[0].resourcesPolicy.resourcesExpr.requests.cpus", "unknown field"),
    ("resourcesPolicy on a plain init container", lambda o: o["spec"].update(initContainers=[container(
        name="init", resourcesPolicy={"targetContainersMode": "sum", "resourcesExpr": {"requests": {"cpu": "cpu"}}})]),
     "spec.initContainers[0].resourcesPolicy",
     "resourcesPolicy is only supported for containers with RestartPolicy Always"),
]


@pytest.mark.parametrize("description,mutate,path,fragment", RULES, ids=[r[0] for r in RULES])
def test_validation_rule(description, mutate, path, fragment):
    obj = base()
    mutate(obj)
    err = errors_of(obj, source="inline.yaml")
    assert any(p == path and fragment in m for p, m in err.errors), (description, err.errors)
    assert "SidecarSet '%s' (inline.yaml): %s: " % (obj["metadata"]["name"], path) in str(err)


def test_valid_rolling_update_variants_pass():
    for strategy in ({"partition": "10%", "maxUnavailable": "0%"}, {"maxUnavailable": 0},
                     {"type": "NotUpdate", "partition": 3, "selector": {"matchLabels": {"a": "b"}}}):
        normalize_sidecarset(base(updateStrategy=dict(strategy)))
    normalize_sidecarset(base(initContainers=[container(name="native", restartPolicy="Always")],
                              updateStrategy={"type": "NotUpdate"}))


def test_mosn_typo_fixture_reports_every_error_with_file_and_path():
    path = fixture("mosn-typo.yaml")
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets([path])
    err = info.value
    assert err.sidecarset == "mosn" and err.source == path
    text = str(err).splitlines()
    assert ("SidecarSet 'mosn' (%s): spec.containers[0].lifecycle.postStar: unknown field (did you mean 'postStart'?)"
            % path) in text
    assert ("SidecarSet 'mosn' (%s): spec.containers[0].imagePullPolicyy: unknown field (did you mean "
            "'imagePullPolicy'?)" % path) in text
    assert len(text) == len(err.errors) >= 2


def test_hot_upgrade_without_empty_image_fixture():
    path = fixture("hot-no-empty-image.yaml")
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets([path])
    assert str(info.value) == ("SidecarSet 'hot' (%s): spec.containers[0].upgradeStrategy.hotUpgradeEmptyImage: "
                               "required when upgradeType is HotUpgrade" % path)


def test_yaml_syntax_error_names_file_line_and_column():
    path = fixture("bad-syntax.yaml")
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets([path])
    message = str(info.value)
    assert path in message and "YAML syntax error at line 8, column" in message


def test_non_sidecarset_document_is_named():
    path = fixture("mixed-kinds.yaml")
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets([path])
    err = info.value
    assert err.source == path and err.document == 1 and err.sidecarset == "not-a-sidecarset"
    assert "(%s, document[1]): kind: expected kind SidecarSet" % path in str(err)


def test_parse_returns_every_document():
    docs = parse_sidecarset_yaml(open(fixture("two-sidecarsets.yaml")).read(), "two.yaml")
    assert [d["metadata"]["name"] for d in docs] == ["log-agent", "envoy"]


def test_unsupported_api_version():
    text = "apiVersion: apps.kruise.io/v2\nkind: SidecarSet\nmetadata: {name: x}\nspec: {}\n"
    with pytest.raises(SidecarSetError) as info:
        parse_sidecarset_yaml(text, "v2.yaml")
    assert "apiVersion: unsupported apiVersion 'apps.kruise.io/v2'" in str(info.value)


def test_mapping_of_another_kind_or_version_is_refused_by_the_same_check():
    """A mapping (no YAML) goes through the check of ``parse_sidecarset_yaml``; without a kind or an apiVersion it is
    a SidecarSet (v1beta1 unless ``spec.namespace``), and both errors are reported."""
    with pytest.raises(SidecarSetError) as info:
        normalize_sidecarset(dict(base(), kind="Pod", apiVersion="v1"))
    assert [field for field, unused in info.value.errors] == ["kind", "apiVersion"]
    assert "kind: expected kind SidecarSet" in str(info.value) and "unsupported apiVersion 'v1'" in str(info.value)
    bare = {k: v for k, v in base().items() if k not in ("kind", "apiVersion")}
    assert normalize_sidecarset(bare)["apiVersion"] == "apps.kruise.io/v1beta1"


def test_duplicate_names_are_rejected_naming_both_files():
    first = os.path.join(EXAMPLES, "mosn.yaml")
    second = fixture("duplicate-mosn.yaml")
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets([first, second])
    assert "SidecarSet 'mosn' (%s): metadata.name: duplicate SidecarSet name (also defined in %s)" % (second, first) \
        == str(info.value)


def test_relative_paths_and_base_dir_and_missing_file():
    loaded = load_sidecarsets(["mosn.yaml"], base_dir=EXAMPLES)
    assert sidecarset_name(loaded[0]) == "mosn"
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets(["nope.yaml"], base_dir=EXAMPLES)
    assert "nope.yaml" in str(info.value) and "not found" in str(info.value)


def test_multi_document_file_errors_carry_the_document_index(tmp_path):
    good = open(os.path.join(EXAMPLES, "mosn.yaml")).read()
    bad = "apiVersion: apps.kruise.io/v1beta1\nkind: SidecarSet\nmetadata: {name: bad}\nspec: {selector: {}}\n"
    path = tmp_path / "multi.yaml"
    path.write_text(good + "---\n" + bad)
    with pytest.raises(SidecarSetError) as info:
        load_sidecarsets([str(path)])
    assert info.value.document == 1 and "SidecarSet 'bad' (%s, document[1]): spec.selector" % path in str(info.value)


def test_errors_render_one_line_per_error():
    err = SidecarSetError([("a.b", "first"), ("", "second")], sidecarset="x", source="f.yaml")
    assert str(err) == "SidecarSet 'x' (f.yaml): a.b: first\nSidecarSet 'x' (f.yaml): second"
    assert SidecarSetError("plain").errors == [("", "plain")]
    merr = ManifestError("bad", source="m.yaml", document=2, field="spec.template", line=14)
    assert str(merr) == "manifest (m.yaml, document[2], line 14): spec.template: bad"


def test_all_errors_are_collected():
    obj = base(selector={}, containers=[container(name="Bad", podInjectPolicy="X")])
    paths = {p for p, dummy in errors_of(obj).errors}
    assert {"spec.selector", "spec.containers[0].name", "spec.containers[0].podInjectPolicy"} <= paths


# ---------------------------------------------------------------- matching


def matches_pod(sidecarset, labels, namespace, namespace_labels=None):
    """PodMatchedSidecarSet as injection decides it (inject.CompiledSidecarSet.matches, its one home)."""
    return compile_sidecarset(sidecarset).matches(labels, namespace_labels or namespace_labels_of(namespace))


def test_matches_pod_rules():
    mosn = load_sidecarsets([os.path.join(EXAMPLES, "mosn.yaml")])[0]
    labels = {"mesh.apsara-edge.com/mosn-injected": "true"}
    assert matches_pod(mosn, labels, "default")
    assert not matches_pod(mosn, labels, "shop")
    assert matches_pod(mosn, labels, "shop", {"kubernetes.io/metadata.name": "default"})
    assert not matches_pod(mosn, {"mesh.apsara-edge.com/mosn-injected": "false"}, "default")
    hot = load_sidecarsets([os.path.join(EXAMPLES, "hotupgrade-sample.yaml")])[0]
    assert matches_pod(hot, {"app": "hotupgrade"}, "any-namespace")
    empty = copy.deepcopy(hot)
    empty["spec"]["selector"] = {}
    assert not matches_pod(empty, {"app": "hotupgrade"}, "default")


def test_clone_is_deep():
    value = {"a": [{"b": 1}]}
    copied = ss_mod.clone(value)
    copied["a"][0]["b"] = 2
    assert value == {"a": [{"b": 1}]}


def test_round_trip_v1beta1_to_v1alpha1_and_back():
    obj = base(customVersion="v3")
    beta = normalize_sidecarset(obj)
    alpha = ss_mod.clone(beta)  # v1alpha1 keeps customVersion as a label (sidecarset_conversion.go)
    alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
    alpha["metadata"]["labels"] = {"apps.kruise.io/sidecarset-custom-version": alpha["spec"].pop("customVersion")}
    assert alpha["apiVersion"] == "apps.kruise.io/v1alpha1"
    assert alpha["metadata"]["labels"] == {"apps.kruise.io/sidecarset-custom-version": "v3"}
    assert "customVersion" not in alpha["spec"] and beta["spec"]["customVersion"] == "v3"
    assert normalize_sidecarset(alpha) == beta


def test_latest_revision_kept_only_for_the_spec_kruise_recorded():
    """An exported SidecarSet (Kruise's hash annotation, status) keeps status.latestRevision; edited afterwards (a new
    image) or not yet observed by Kruise's controller, it loses it (docs/kruise-migration.md)."""
    exported = normalize_sidecarset(load_sidecarsets([os.path.join(EXAMPLES, "hotupgrade-sample.yaml")])[0])
    exported["metadata"]["generation"] = 2
    exported["status"] = {"latestRevision": "hotupgrade-sidecarset-7cfbb5bf9d", "observedGeneration": 2}
    assert normalize_sidecarset(exported)["status"]["latestRevision"] == "hotupgrade-sidecarset-7cfbb5bf9d"
    edited = copy.deepcopy(exported)
    edited["spec"]["containers"][0]["image"] = "openkruise/hotupgrade-sample:sidecarv3"
    out = normalize_sidecarset(edited)
    assert "latestRevision" not in out["status"] and out["status"]["observedGeneration"] == 2
    assert exported["status"]["latestRevision"] == "hotupgrade-sidecarset-7cfbb5bf9d"   # the input is not changed
    unobserved = copy.deepcopy(exported)
    unobserved["metadata"]["generation"] = 3
    assert "latestRevision" not in normalize_sidecarset(unobserved)["status"]
    hand_written = copy.deepcopy(edited)
    del hand_written["metadata"]["annotations"]["kruise.io/sidecarset-hash"]
    assert normalize_sidecarset(hand_written)["status"]["latestRevision"] == "hotupgrade-sidecarset-7cfbb5bf9d"
