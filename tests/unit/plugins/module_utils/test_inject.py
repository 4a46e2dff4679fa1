# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pod / pod template injection (Kruise's pod webhook), golden tests of the seed examples, re-injection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json
import os

import pytest
import yaml

from ansible_collections.meshops.sidecarset.plugins.module_utils import annotations as ann
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import (
    compile_sidecarset,
    format_timestamp,
    inject_pod,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets, normalize_sidecarset

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
NOW = "2026-03-01T12:00:00Z"
LATER = "2026-03-02T08:30:00Z"
MOSN_HASH = "c8dxf586x582zx27728d4526z44z4bwvz482z4v6x9b85c727wc9cx2z54x9cvd5"
MOSN_HASH_WO = "x449c4b47w29445wxd669f4774vcvw4cx8f5zzf5z688f9xcd769w8448bvbfvd2"
HOT_HASH = "8z89b4xb4xxbx2bz4xf99c25v4z4fzv296wd245vwc9z2vf4wz4c747c654z825b"
HOT_HASH_WO = "xw4c5bc2cvw74vz4wfc8c9dz96c698c824vz4444w4cf277vz5f77dz4b5d52849"


def sidecarset(name):
    return load_sidecarsets([os.path.join(EXAMPLES, "sidecarsets", name + ".yaml")])[0]


def template(name):
    with open(os.path.join(EXAMPLES, "manifests", name + ".yaml")) as handle:
        return yaml.safe_load(handle)["spec"]["template"]


def version_env(twin):
    return [
        {"name": "SIDECARSET_VERSION", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['version.sidecarset.kruise.io/%s']" % twin}}},
        {"name": "SIDECARSET_VERSION_ALT", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['versionalt.sidecarset.kruise.io/%s']" % twin}}},
    ]


def names(pod, key="containers"):
    return [c["name"] for c in pod["spec"].get(key) or []]


def by_name(pod, name, key="containers"):
    return next(c for c in pod["spec"][key] if c["name"] == name)


def simple(name, containers, selector=None, **spec):
    body = {"selector": selector or {"matchLabels": {"app": "web"}}, "containers": containers}
    body.update(spec)
    return normalize_sidecarset({"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet",
                                 "metadata": {"name": name}, "spec": body})


def web_pod(**spec):
    body = {"containers": [{"name": "app", "image": "web:1"}]}
    body.update(spec)
    return {"metadata": {"labels": {"app": "web"}}, "spec": body}


# ---------------------------------------------------------------- golden: example B (MOSN)


def test_golden_mosn_on_test_app():
    pod = template("test-app")
    before = copy.deepcopy(pod)
    out, injected = inject_pod(pod, [sidecarset("mosn")], namespace="default", now=NOW)
    assert pod == before
    assert injected == ["mosn"]
    assert names(out) == ["mosn-1", "mosn-2", "test-app"]
    mosn1, mosn2, app = out["spec"]["containers"]
    assert app == before["spec"]["containers"][0]
    common = {
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "resources": {},
        "lifecycle": {"postStart": {"exec": {"command": ["/bin/sh", "-c", "sleep 30"]}}},
        "volumeMounts": [{"name": "mosn-log", "mountPath": "/home/admin/mosn/logs"}],
    }
    assert mosn1 == dict(common, name="mosn-1", image="tinyqian/mosn:v1",
                         env=[{"name": "IS_INJECTED", "value": "true"}] + version_env("mosn-1"))
    assert mosn2 == dict(common, name="mosn-2", image="openkruise/hotupgrade-sample:empty",
                         env=[{"name": "IS_INJECTED", "value": "true"}] + version_env("mosn-2"))
    for key in ("podInjectPolicy", "upgradeStrategy", "shareVolumePolicy"):
        assert key not in mosn1
    assert out["spec"]["volumes"] == [{"name": "mosn-log", "emptyDir": {}}]
    assert out["metadata"]["labels"] == before["metadata"]["labels"]
    assert out["metadata"]["annotations"] == {
        "kruise.io/sidecarset-hash": '{"mosn":{"updateTimestamp":"%s","hash":"%s","sidecarSetName":"mosn",'
                                     '"sidecarList":["mosn"]}}' % (NOW, MOSN_HASH),
        "kruise.io/sidecarset-hash-without-image": '{"mosn":{"updateTimestamp":"%s","hash":"%s",'
                                                   '"sidecarSetName":"mosn","sidecarList":["mosn"]}}' % (NOW, MOSN_HASH_WO),
        "kruise.io/sidecarset-injected-list": "mosn",
        "kruise.io/sidecarset-working-hotupgrade-container": '{"mosn":"mosn-1"}',
        "version.sidecarset.kruise.io/mosn-1": "1",
        "versionalt.sidecarset.kruise.io/mosn-1": "0",
        "version.sidecarset.kruise.io/mosn-2": "0",
        "versionalt.sidecarset.kruise.io/mosn-2": "1",
    }


def test_mosn_shares_app_mounts_with_both_twins():
    pod = template("test-app")
    app = pod["spec"]["containers"][0]
    app["env"] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    app["volumeMounts"] = [
        {"name": "html", "mountPath": "/usr/share/nginx/html"},
        {"name": "logs", "mountPath": "/var/log/nginx", "subPathExpr": "$(POD_NAME)"},
        {"name": "other", "mountPath": "/home/admin/mosn/logs"},  # collides with mosn's own mount: dropped
    ]
    pod["spec"]["volumes"] = [{"name": "html", "emptyDir": {}}, {"name": "logs", "emptyDir": {}},
                              {"name": "other", "emptyDir": {}}]
    out, dummy = inject_pod(pod, [sidecarset("mosn")], now=NOW)
    for twin in ("mosn-1", "mosn-2"):
        sidecar = by_name(out, twin)
        assert sidecar["volumeMounts"] == [
            {"name": "mosn-log", "mountPath": "/home/admin/mosn/logs"},
            {"name": "html", "mountPath": "/usr/share/nginx/html"},
            {"name": "logs", "mountPath": "/var/log/nginx", "subPathExpr": "$(POD_NAME)"},
        ]
        assert [e["name"] for e in sidecar["env"]] == ["IS_INJECTED", "POD_NAME", "SIDECARSET_VERSION",
                                                       "SIDECARSET_VERSION_ALT"]
        assert sidecar["env"][1] == app["env"][0]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["html", "logs", "other", "mosn-log"]
    assert "IS_INJECTED" not in json.dumps(by_name(out, "test-app"))


def test_mosn_does_not_share_mounts_of_injected_containers():
    pod = template("test-app")
    pod["spec"]["containers"].append({"name": "other-sidecar", "image": "x:1",
                                      "env": [{"name": "IS_INJECTED", "value": "true"}],
                                      "volumeMounts": [{"name": "secret", "mountPath": "/secret"}]})
    out, dummy = inject_pod(pod, [sidecarset("mosn")], now=NOW)
    assert by_name(out, "mosn-1")["volumeMounts"] == [{"name": "mosn-log", "mountPath": "/home/admin/mosn/logs"}]


def test_mosn_namespace_selector():
    pod = template("test-app")
    out, injected = inject_pod(pod, [sidecarset("mosn")], namespace="shop", now=NOW)
    assert injected == [] and out == pod
    out, injected = inject_pod(pod, [sidecarset("mosn")], namespace="shop",
                               namespace_labels={"kubernetes.io/metadata.name": "default"}, now=NOW)
    assert injected == ["mosn"]
    pod["metadata"]["namespace"] = "default"
    assert inject_pod(pod, [sidecarset("mosn")], now=NOW)[1] == ["mosn"]


# ---------------------------------------------------------------- golden: example A (hot-upgrade sample)


def test_golden_hotupgrade_sample():
    out, injected = inject_pod(template("hotupgrade-app"), [sidecarset("hotupgrade-sample")], now=NOW)
    assert injected == ["hotupgrade-sidecarset"]
    assert names(out) == ["sidecar-1", "sidecar-2", "busybox"]
    assert [c["image"] for c in out["spec"]["containers"]] == [
        "openkruise/hotupgrade-sample:sidecarv1", "openkruise/hotupgrade-sample:empty",
        "openkruise/hotupgrade-sample:busybox"]
    assert by_name(out, "sidecar-2")["lifecycle"] == {"postStart": {"exec": {"command": ["/bin/sh", "/migrate.sh"]}}}
    assert "volumes" not in out["spec"]
    annotations = out["metadata"]["annotations"]
    assert annotations["kruise.io/sidecarset-hash"] == (
        '{"hotupgrade-sidecarset":{"updateTimestamp":"%s","hash":"%s","sidecarSetName":"hotupgrade-sidecarset",'
        '"sidecarList":["sidecar"]}}' % (NOW, HOT_HASH))
    assert json.loads(annotations["kruise.io/sidecarset-hash-without-image"])["hotupgrade-sidecarset"]["hash"] == HOT_HASH_WO
    assert annotations["kruise.io/sidecarset-working-hotupgrade-container"] == '{"sidecar":"sidecar-1"}'
    assert [annotations["%s.sidecarset.kruise.io/sidecar-%s" % (k, n)] for n in "12" for k in ("version", "versionalt")] \
        == ["1", "0", "0", "1"]


def test_controller_revision_only_in_hash_annotation():
    hot = sidecarset("hotupgrade-sample")
    hot["status"] = {"latestRevision": "hotupgrade-sidecarset-5f4b8c"}
    out, dummy = inject_pod(template("hotupgrade-app"), [hot], now=NOW)
    entry = json.loads(out["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["hotupgrade-sidecarset"]
    assert list(entry) == ["updateTimestamp", "hash", "sidecarSetName", "sidecarList", "controllerRevision"]
    assert entry["controllerRevision"] == "hotupgrade-sidecarset-5f4b8c"
    assert "controllerRevision" not in out["metadata"]["annotations"]["kruise.io/sidecarset-hash-without-image"]


def test_compiled_entry_keeps_an_old_entry_of_the_same_hash():
    """The one pod hash entry builder behind injection: a fresh entry, and an old one of the same hash kept (its
    timestamp and revision, none added) while a changed hash gets the new timestamp and the current revision."""
    hot = sidecarset("hotupgrade-sample")
    hot["status"] = {"latestRevision": "rev-2"}
    compiled = compile_sidecarset(hot)
    fresh = compiled.entry(NOW, False)
    assert fresh == ann.hash_entry("hotupgrade-sidecarset", compiled.hash, ["sidecar"], NOW, "rev-2")
    kept = compiled.entry(LATER, False, {"hash": compiled.hash, "updateTimestamp": NOW})
    assert kept["updateTimestamp"] == NOW and "controllerRevision" not in kept
    assert compiled.entry(LATER, False, {"hash": "old", "updateTimestamp": NOW}) == dict(fresh, updateTimestamp=LATER)
    without = compiled.entry(LATER, True, {"hash": compiled.hash_without_image, "updateTimestamp": NOW})
    assert without["hash"] == compiled.hash_without_image and without["updateTimestamp"] == NOW
    assert "controllerRevision" not in without and json.loads("{%s}" % compiled.entry_json(NOW, True)) == {
        "hotupgrade-sidecarset": compiled.entry(NOW, True)}

# ---------------------------------------------------------------- re-injection


def test_reinjection_is_idempotent_and_keeps_timestamps():
    sets = [sidecarset("mosn"), sidecarset("hotupgrade-sample")]
    pod = template("test-app")
    pod["metadata"]["labels"]["app"] = "hotupgrade"
    once, first = inject_pod(pod, sets, now=NOW)
    twice, second = inject_pod(once, sets, now=LATER)
    assert first == second == ["hotupgrade-sidecarset", "mosn"]
    assert twice == once
    # mosn's v1alpha1 namespace is a kubernetes.io/metadata.name selector: Kruise's namespace index comes first
    assert names(once) == ["mosn-1", "mosn-2", "sidecar-1", "sidecar-2", "test-app"]


def test_changed_image_replaces_in_place_and_resets_versions():
    mosn = sidecarset("mosn")
    pod = template("test-app")
    pod["spec"]["containers"].append({"name": "tail", "image": "busybox:1.36"})
    once, dummy = inject_pod(pod, [mosn], now=NOW)
    # simulate an upgraded pod template state: versions moved on
    once["metadata"]["annotations"]["version.sidecarset.kruise.io/mosn-2"] = "12345"
    once["metadata"]["annotations"]["kruise.io/sidecarset-working-hotupgrade-container"] = '{"mosn":"mosn-2"}'
    raw = copy.deepcopy(mosn)
    raw["spec"]["containers"][0]["image"] = "tinyqian/mosn:v2"
    updated = normalize_sidecarset(raw)
    again, dummy = inject_pod(once, [updated], now=LATER)
    assert names(again) == ["mosn-1", "mosn-2", "test-app", "tail"]
    assert by_name(again, "mosn-1")["image"] == "tinyqian/mosn:v2"
    assert by_name(again, "mosn-2")["image"] == "openkruise/hotupgrade-sample:empty"
    annotations = again["metadata"]["annotations"]
    assert annotations["version.sidecarset.kruise.io/mosn-2"] == "0"
    assert annotations["kruise.io/sidecarset-working-hotupgrade-container"] == '{"mosn":"mosn-1"}'
    hash_entry = json.loads(annotations["kruise.io/sidecarset-hash"])["mosn"]
    wo_entry = json.loads(annotations["kruise.io/sidecarset-hash-without-image"])["mosn"]
    assert hash_entry["hash"] == updated["metadata"]["annotations"]["kruise.io/sidecarset-hash"]
    assert hash_entry["updateTimestamp"] == LATER
    assert wo_entry["hash"] == MOSN_HASH_WO and wo_entry["updateTimestamp"] == NOW
    assert by_name(again, "test-app") == by_name(once, "test-app")


def test_changed_env_and_volume_are_replaced_in_place():
    side = {"name": "agent", "image": "agent:1", "env": [{"name": "LEVEL", "value": "info"}],
            "volumeMounts": [{"name": "buf", "mountPath": "/buf"}]}
    first = simple("agent", [side], volumes=[{"name": "buf", "emptyDir": {}}])
    pod = web_pod(volumes=[{"name": "app-data", "emptyDir": {}}])
    once, dummy = inject_pod(pod, [first], now=NOW)
    assert [v["name"] for v in once["spec"]["volumes"]] == ["app-data", "buf"]
    side2 = copy.deepcopy(side)
    side2["env"][0]["value"] = "debug"
    second = simple("agent", [side2], volumes=[{"name": "buf", "emptyDir": {"medium": "Memory"}}])
    again, dummy = inject_pod(once, [second], now=LATER)
    assert names(again) == ["agent", "app"]
    assert by_name(again, "agent")["env"] == [{"name": "LEVEL", "value": "debug"}, {"name": "IS_INJECTED", "value": "true"}]
    assert again["spec"]["volumes"] == [{"name": "app-data", "emptyDir": {}}, {"name": "buf", "emptyDir": {"medium": "Memory"}}]


def test_removed_container_and_its_volume_leave_the_template():
    two = simple("pair", [{"name": "a", "image": "a:1", "volumeMounts": [{"name": "va", "mountPath": "/a"}]},
                          {"name": "b", "image": "b:1"}], volumes=[{"name": "va", "emptyDir": {}}])
    once, dummy = inject_pod(web_pod(), [two], now=NOW)
    assert names(once) == ["a", "b", "app"]
    one = simple("pair", [{"name": "b", "image": "b:2"}])
    again, dummy = inject_pod(once, [one], now=NOW)
    assert names(again) == ["b", "app"]
    assert by_name(again, "b")["image"] == "b:2"
    assert not again["spec"].get("volumes")
    assert json.loads(again["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["pair"]["sidecarList"] == ["b"]


def test_reinjection_leaves_other_sidecarsets_alone():
    foreign = {"name": "foreign", "image": "f:1", "env": [{"name": "IS_INJECTED", "value": "true"}]}
    pod = web_pod()
    pod["spec"]["containers"].insert(0, foreign)
    pod["metadata"]["annotations"] = {
        "kruise.io/sidecarset-hash": '{"other":{"updateTimestamp":"2020-01-01T00:00:00Z","hash":"h",'
                                     '"sidecarSetName":"other","sidecarList":["foreign"]}}',
        "kruise.io/sidecarset-injected-list": "other"}
    mine = simple("mine", [{"name": "mine", "image": "m:1"}])
    out, dummy = inject_pod(pod, [mine], now=NOW)
    assert names(out) == ["foreign", "mine", "app"]
    assert out["spec"]["containers"][0] == foreign
    entries = json.loads(out["metadata"]["annotations"]["kruise.io/sidecarset-hash"])
    assert sorted(entries) == ["mine", "other"] and entries["other"]["hash"] == "h"
    assert out["metadata"]["annotations"]["kruise.io/sidecarset-injected-list"] == "mine,other"


def test_sidecarset_no_longer_matching_is_removed():
    mosn = sidecarset("mosn")
    once, dummy = inject_pod(template("test-app"), [mosn], now=NOW)
    once["metadata"]["labels"]["mesh.apsara-edge.com/mosn-injected"] = "false"
    out, injected = inject_pod(once, [mosn], now=NOW)
    assert injected == []
    assert names(out) == ["test-app"]
    assert not out["spec"].get("volumes")
    assert "annotations" not in out["metadata"]


def test_paused_sidecarset_is_not_injected_and_not_removed():
    mosn = sidecarset("mosn")
    once, dummy = inject_pod(template("test-app"), [mosn], now=NOW)
    paused = copy.deepcopy(mosn)
    paused["spec"]["injectionStrategy"] = {"paused": True}
    paused = normalize_sidecarset(paused)
    assert inject_pod(template("test-app"), [paused], now=NOW)[1] == []
    out, injected = inject_pod(once, [paused], now=LATER)
    assert injected == [] and out == once


# ---------------------------------------------------------------- placement, several SidecarSets


def test_several_sidecarsets_order_before_after_and_init():
    after = "AfterAppContainer"
    zeta = simple("zeta", [{"name": "z-before", "image": "z:1"},
                           {"name": "z-after", "image": "z:1", "podInjectPolicy": after}],
                  initContainers=[{"name": "z-init", "image": "z:1"}])
    alpha = simple("alpha", [{"name": "a-before", "image": "a:1"},
                             {"name": "a-after", "image": "a:1", "podInjectPolicy": after}],
                   initContainers=[{"name": "b-init", "image": "a:1"}, {"name": "a-init", "image": "a:1"}])
    pod = web_pod(initContainers=[{"name": "app-init", "image": "i:1"}])
    out, injected = inject_pod(pod, [zeta, alpha], now=NOW)
    assert injected == ["alpha", "zeta"]
    assert names(out) == ["a-before", "z-before", "app", "a-after", "z-after"]
    assert names(out, "initContainers") == ["app-init", "a-init", "b-init", "z-init"]
    assert out["metadata"]["annotations"]["kruise.io/sidecarset-injected-list"] == "alpha,zeta"
    assert list(json.loads(out["metadata"]["annotations"]["kruise.io/sidecarset-hash"])) == ["alpha", "zeta"]
    again, dummy = inject_pod(out, [alpha, zeta], now=LATER)
    assert again == out


def test_namespace_indexed_sidecarsets_are_built_before_cluster_wide_ones():
    # Kruise's webhook lists the SidecarSets indexed under the pod's namespace (a kubernetes.io/metadata.name
    # namespaceSelector) first, then the cluster-wide ones: found by tests/conformance against kruise-manager v1.9.0
    wide = simple("a-wide", [{"name": "wide", "image": "w:1", "volumeMounts": [{"name": "v-wide", "mountPath": "/w"}]}],
                  imagePullSecrets=[{"name": "s-wide"}], volumes=[{"name": "v-wide", "emptyDir": {}}])
    by_label = simple("z-local", [{"name": "local", "image": "l:1", "volumeMounts": [{"name": "v-local", "mountPath": "/l"}]}],
                      namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                      imagePullSecrets=[{"name": "s-local"}], volumes=[{"name": "v-local", "emptyDir": {}}])
    by_expression = simple("m-listed", [{"name": "listed", "image": "m:1"}], namespaceSelector={
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop", "x"]}]})
    other_label = simple("b-team", [{"name": "team", "image": "t:1"}],
                         namespaceSelector={"matchLabels": {"team": "shop"}})
    sets = [wide, by_label, by_expression, other_label]
    labels = {"team": "shop", "kubernetes.io/metadata.name": "shop"}
    out, injected = inject_pod(web_pod(), sets, namespace="shop", namespace_labels=labels, now=NOW)
    assert injected == ["a-wide", "b-team", "m-listed", "z-local"]
    assert names(out) == ["listed", "local", "wide", "team", "app"]
    assert [s["name"] for s in out["spec"]["imagePullSecrets"]] == ["s-local", "s-wide"]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["v-local", "v-wide"]
    annotations = out["metadata"]["annotations"]
    assert annotations["kruise.io/sidecarset-injected-list"] == "a-wide,b-team,m-listed,z-local"
    assert list(json.loads(annotations["kruise.io/sidecarset-hash"])) == ["a-wide", "b-team", "m-listed", "z-local"]
    again, dummy = inject_pod(out, list(reversed(sets)), namespace="shop", namespace_labels=labels, now=LATER)
    assert again == out


def test_new_sidecarset_added_later_goes_before_the_app_containers():
    alpha = simple("alpha", [{"name": "a", "image": "a:1"}])
    beta = simple("beta", [{"name": "b", "image": "b:1"}])
    once, dummy = inject_pod(web_pod(), [alpha], now=NOW)
    out, dummy = inject_pod(once, [alpha, beta], now=NOW)
    fresh, dummy = inject_pod(web_pod(), [alpha, beta], now=NOW)
    assert names(out) == names(fresh) == ["a", "b", "app"]


def test_same_name_app_container_is_replaced_at_its_index():
    side = simple("s", [{"name": "proxy", "image": "proxy:2", "podInjectPolicy": "AfterAppContainer"}])
    pod = web_pod()
    pod["spec"]["containers"] = [{"name": "proxy", "image": "proxy:1"}, {"name": "app", "image": "web:1"}]
    out, dummy = inject_pod(pod, [side], now=NOW)
    assert names(out) == ["proxy", "app"] and out["spec"]["containers"][0]["image"] == "proxy:2"


def test_native_sidecar_init_container_is_in_sidecar_list():
    native = simple("n", [{"name": "main", "image": "m:1"}],
                    initContainers=[{"name": "native", "image": "n:1", "restartPolicy": "Always"}],
                    updateStrategy={"type": "NotUpdate"})
    out, dummy = inject_pod(web_pod(), [native], now=NOW)
    assert names(out, "initContainers") == ["native"]
    entry = json.loads(out["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["n"]
    assert entry["sidecarList"] == ["main", "native"]


def test_non_matching_and_empty_sidecarset_list():
    pod = web_pod()
    out, injected = inject_pod(pod, [], now=NOW)
    assert injected == [] and out == pod
    other = simple("o", [{"name": "o", "image": "o:1"}], selector={"matchLabels": {"app": "db"}})
    assert inject_pod(pod, [other], now=NOW) == (pod, [])


# ---------------------------------------------------------------- features


def test_transfer_env_and_image_pull_secrets_and_existing_volume_wins():
    side = {"name": "envoy", "image": "envoy:1",
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            "transferEnv": [{"sourceContainerName": "app", "envNames": ["TZ", "MISSING", "POD_IP"]},
                            {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.labels['main']"}},
                             "envName": "REGION"}]}
    sset = simple("envoy", [side], volumes=[{"name": "shared", "emptyDir": {}}],
                  imagePullSecrets=[{"name": "regcred"}, {"name": "mesh-pull"}])
    pod = web_pod(imagePullSecrets=[{"name": "regcred"}], volumes=[{"name": "shared", "hostPath": {"path": "/x"}}])
    pod["metadata"]["labels"]["main"] = "app"
    pod["spec"]["containers"][0]["env"] = [{"name": "TZ", "value": "UTC"}, {"name": "REGION", "value": "eu"},
                                           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    out, dummy = inject_pod(pod, [sset], now=NOW)
    assert by_name(out, "envoy")["env"] == [
        {"name": "IS_INJECTED", "value": "true"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TZ", "value": "UTC"},
        {"name": "REGION", "value": "eu"},
    ]
    assert out["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mesh-pull"}]
    assert out["spec"]["volumes"] == [{"name": "shared", "hostPath": {"path": "/x"}}]


def test_patch_pod_metadata_policies():
    sset = simple("p", [{"name": "p", "image": "p:1"}], patchPodMetadata=[
        {"annotations": {"example.com/retain": "new"}},
        {"annotations": {"example.com/overwrite": "new"}, "patchPolicy": "Overwrite"},
        {"annotations": {"example.com/json": '{"b":2,"c":null}', "example.com/json-new": '{"x":1}'},
         "patchPolicy": "MergePatchJson"},
    ])
    pod = web_pod()
    pod["metadata"]["annotations"] = {"example.com/retain": "old", "example.com/overwrite": "old",
                                      "example.com/json": '{"a":1,"c":3}'}
    out, dummy = inject_pod(pod, [sset], now=NOW)
    annotations = out["metadata"]["annotations"]
    assert annotations["example.com/retain"] == "old"
    assert annotations["example.com/overwrite"] == "new"
    assert json.loads(annotations["example.com/json"]) == {"a": 1, "b": 2}
    assert annotations["example.com/json-new"] == '{"x":1}'
    assert pod["metadata"]["annotations"]["example.com/overwrite"] == "old"


def test_unnormalised_sidecarset_dicts_are_accepted():
    raw = {"metadata": {"name": "raw"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                 "containers": [{"name": "r", "image": "r:1"}]}}
    out, injected = inject_pod(web_pod(), [raw], now=NOW)
    assert injected == ["raw"] and by_name(out, "r")["imagePullPolicy"] == "IfNotPresent"


# ---------------------------------------------------------------- clashes


def test_app_container_named_like_a_twin_is_a_clash():
    pod = template("test-app")
    pod["spec"]["containers"].append({"name": "mosn-1", "image": "mine:1"})
    with pytest.raises(SidecarSetError) as info:
        inject_pod(pod, [sidecarset("mosn")], now=NOW)
    assert "SidecarSet 'mosn'" in str(info.value) and "'mosn-1' was not injected by a SidecarSet" in str(info.value)


def test_two_sidecarsets_injecting_the_same_name_is_a_clash():
    one = simple("one", [{"name": "proxy", "image": "p:1"}])
    two = simple("two", [{"name": "proxy", "image": "p:2"}])
    with pytest.raises(SidecarSetError) as info:
        inject_pod(web_pod(), [two, one], now=NOW)
    assert "SidecarSet 'one'" in str(info.value) and "SidecarSet 'two'" in str(info.value)


def test_container_injected_by_another_sidecarset_is_a_clash():
    one = simple("one", [{"name": "proxy", "image": "p:1"}])
    two = simple("two", [{"name": "proxy", "image": "p:2"}])
    once, dummy = inject_pod(web_pod(), [one], now=NOW)
    with pytest.raises(SidecarSetError) as info:
        inject_pod(once, [two], now=NOW)
    assert "injected by SidecarSet 'one'" in str(info.value) and "SidecarSet 'two'" in str(info.value)


def test_duplicate_sidecarset_passed_twice():
    one = simple("one", [{"name": "proxy", "image": "p:1"}])
    with pytest.raises(SidecarSetError):
        inject_pod(web_pod(), [one, copy.deepcopy(one)], now=NOW)


def test_format_timestamp():
    moment = datetime.datetime(2026, 3, 1, 13, 0, 0, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert format_timestamp(moment) == "2026-03-01T12:00:00Z"
    assert format_timestamp(datetime.datetime(2026, 3, 1, 12, 0, 0)) == "2026-03-01T12:00:00Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"
    assert len(format_timestamp()) == 20


def test_fresh_annotation_fast_path_matches_the_generic_writer():
    hot = sidecarset("hotupgrade-sample")
    hot["status"] = {"latestRevision": "rev-1"}
    cold = simple("cold", [{"name": "c", "image": "c:1"}], selector={"matchLabels": {"app": "hotupgrade"}})
    out, dummy = inject_pod(template("hotupgrade-app"), [hot, cold], now=NOW)
    got = out["metadata"]["annotations"]
    for key in (ann.POD_HASH, ann.POD_HASH_WITHOUT_IMAGE):
        assert got[key] == ann.write_hash_entries(ann.read_hash_entries(got, key))
    assert got[ann.INJECTED_LIST] == ann.write_injected_list(["hotupgrade-sidecarset", "cold"])
    assert got[ann.WORKING_HOTUPGRADE_CONTAINER] == ann.write_working({"sidecar": "sidecar-1"})
    # the generic path (an unrelated injected-list entry forces it) writes the same strings
    seeded = template("hotupgrade-app")
    seeded["metadata"]["annotations"] = {ann.INJECTED_LIST: "zzz"}
    slow, dummy = inject_pod(seeded, [hot, cold], now=NOW)
    for key in (ann.POD_HASH, ann.POD_HASH_WITHOUT_IMAGE, ann.WORKING_HOTUPGRADE_CONTAINER):
        assert slow["metadata"]["annotations"][key] == got[key]
    assert slow["metadata"]["annotations"][ann.INJECTED_LIST] == "cold,hotupgrade-sidecarset,zzz"
