# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SidecarSet ControllerRevisions and ``injectionStrategy.revision`` (issue 16) against Kruise v1.9.0's
history_control.go / getSuitableRevisionSidecarSet; expected values from Kruise's own runs and tests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import revisions as r
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import inject_pod
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets, normalize_sidecarset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
NOW = "2021-06-04T05:44:26Z"


def ss(image="mesh:v1", revision=None, strategy=None, custom=None, labels=None):
    spec = {"selector": {"matchLabels": {"app": "a"}}, "containers": [{"name": "mesh", "image": image}]}
    if revision is not None:
        spec["injectionStrategy"] = {"revision": revision}
    if strategy is not None:
        spec["updateStrategy"] = strategy
    if custom is not None:
        spec["customVersion"] = custom
    metadata = {"name": "mesh-set"}
    if labels:
        metadata["labels"] = labels
    return normalize_sidecarset({"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": metadata,
                                 "spec": spec})


def pod(labels=None):
    return {"metadata": {"labels": labels or {"app": "a"}, "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}


def test_revision_name_is_kruises_for_its_hot_upgrade_sample():
    """Kruise v1.9.0's controller named the revision of examples/sidecarsets/hotupgrade-sample.yaml
    hotupgrade-sidecarset-676f787d9f (its status.latestRevision in the conformance run, docs/kruise-conformance.md)."""
    sample = load_sidecarsets([os.path.join(ROOT, "examples", "sidecarsets", "hotupgrade-sample.yaml")])[0]
    revision = r.new_revision(sample, "kruise-system", 1)
    assert revision["metadata"]["name"] == "hotupgrade-sidecarset-676f787d9f"
    assert revision["metadata"]["labels"]["controller.kubernetes.io/hash"] == "676f787d9f"
    data = r.revision_data(sample)
    assert data.startswith(b'{"spec":{"$patch":"replace","containers":[{"image":"openkruise/hotupgrade-sample:sidecarv1"')
    assert data.endswith(b'"imagePullSecrets":null,"initContainers":null,"patchPodMetadata":null,"volumes":null}}')
    # a collision count changes the hash (history.HashControllerRevision hashes it as decimal text)
    assert r.revision_hash(data, 1) != r.revision_hash(data, 0)


def test_revision_layout_labels_and_annotations():
    current = ss(custom="v1", labels={"team": "mesh"})
    revision = r.new_revision(current, "mesh-history", 3)
    meta = revision["metadata"]
    assert meta["namespace"] == "mesh-history" and revision["revision"] == 3
    assert meta["labels"]["team"] == "mesh"
    assert meta["labels"]["kruise.io/sidecarset-name"] == "mesh-set"
    assert meta["labels"]["apps.kruise.io/sidecarset-custom-version"] == "v1"
    assert meta["annotations"]["kruise.io/sidecarset-hash"] == current["metadata"]["annotations"][
        "kruise.io/sidecarset-hash"]
    assert sorted(revision["data"]["spec"]) == ["$patch", "containers", "imagePullSecrets", "initContainers",
                                                "patchPodMetadata", "volumes"]


def test_plan_record_reuses_bumps_or_creates():
    v1, v2 = ss("mesh:v1"), ss("mesh:v2")
    action, first = r.plan_record(v1, [], "h")
    assert action == "create" and first["revision"] == 1
    assert r.plan_record(v1, [first], "h") == ("none", first)
    action, second = r.plan_record(v2, [first], "h")
    assert action == "create" and second["revision"] == 2
    # back to v1: Kruise bumps the equal older revision rather than creating one
    action, bumped = r.plan_record(v1, [first, second], "h")
    assert action == "bump" and bumped["metadata"]["name"] == first["metadata"]["name"] and bumped["revision"] == 3


def _custom_version_revision(name="mesh-set-12345", custom="mesh-set-12345", revision=0, image="dns-f-image:1.0"):
    """TestInjectionStrategyRevision's ControllerRevision: labels only, data with initContainers and containers,
    no hash annotations (they are recomputed)."""
    data = {"spec": {"$patch": "replace",
                     "initContainers": [{"name": "init-2", "image": "busybox:1.0.0"}],
                     "containers": [{"name": "dns-f", "image": image, "podInjectPolicy": "BeforeAppContainer",
                                     "shareVolumePolicy": {"type": "disabled"}}]}}
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": "kruise-system",
                         "labels": {"kruise.io/sidecarset-name": "mesh-set",
                                    "apps.kruise.io/sidecarset-custom-version": custom}},
            "data": json.dumps(data), "revision": revision}


def test_custom_version_revision_is_injected_kruise_case():
    """TestInjectionStrategyRevision: customVersion, policy Always: the pod gets the revision's init container and
    container (two more), not the current spec's."""
    current = ss(revision={"customVersion": "mesh-set-12345", "policy": "Always"})
    resolved = r.resolve(current, [_custom_version_revision()])
    new_pod, dummy = inject_pod(pod(), [resolved], now=NOW)
    assert [c["name"] for c in new_pod["spec"]["containers"]] == ["dns-f", "app"]
    assert [c["name"] for c in new_pod["spec"]["initContainers"]] == ["init-2"]
    entry = json.loads(new_pod["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["mesh-set"]
    assert entry["controllerRevision"] == "mesh-set-12345"
    assert entry["hash"] != current["metadata"]["annotations"]["kruise.io/sidecarset-hash"]


def test_custom_version_takes_the_newest_revision_and_revision_name_the_named_one():
    older = _custom_version_revision("mesh-set-old", "v1", 1, "dns:old")
    newer = _custom_version_revision("mesh-set-new", "v1", 2, "dns:new")
    current = ss(revision={"customVersion": "v1"})
    assert r.find_revision(current, [newer, older]) is newer
    named = ss(revision={"revisionName": "mesh-set-old"})
    assert r.find_revision(named, [newer, older]) is older


def test_revision_not_found_refuses_as_kruises_webhook_does():
    with pytest.raises(SidecarSetError, match='revisionName: controllerrevisions.apps "gone" not found'):
        r.resolve(ss(revision={"revisionName": "gone"}), [])
    with pytest.raises(SidecarSetError, match="customVersion: .*no revision labelled"):
        r.resolve(ss(revision={"customVersion": "v9"}), [_custom_version_revision(custom="v1")])


def test_restore_keeps_the_revisions_hashes_and_names_it_latest():
    old = ss("mesh:v1")
    revision = r.new_revision(old, "h", 1)
    current = ss("mesh:v2", revision={"revisionName": revision["metadata"]["name"]})
    resolved = r.resolve(current, [revision])
    history = resolved[r.HISTORY_KEY]
    assert history["spec"]["containers"][0]["image"] == "mesh:v1"
    assert history["metadata"]["annotations"]["kruise.io/sidecarset-hash"] == old["metadata"]["annotations"][
        "kruise.io/sidecarset-hash"]
    assert history["status"]["latestRevision"] == revision["metadata"]["name"]


@pytest.mark.parametrize("strategy,policy,labels,draw,expected", [
    (None, "Always", None, None, "mesh:v1"),
    ({"paused": True}, "Partial", None, None, "mesh:v1"),
    ({"selector": {"matchLabels": {"canary": "true"}}}, "Partial", None, None, "mesh:v1"),
    ({"selector": {"matchLabels": {"canary": "true"}}}, "Partial", {"app": "a", "canary": "true"}, None, "mesh:v2"),
    ({"partition": "30%"}, "Partial", None, 0.3, "mesh:v1"),
    ({"partition": "30%"}, "Partial", None, 0.31, "mesh:v2"),
    ({"partition": 3}, "Partial", None, 0.0, "mesh:v2"),
], ids=["always", "update paused", "partial: not selected", "partial: selected", "partial: draw within partition",
        "partial: draw above partition", "partial: int partition"])
def test_choose_follows_get_suitable_revision_sidecar_set(strategy, policy, labels, draw, expected):
    old = ss("mesh:v1")
    revision = r.new_revision(old, "h", 1)
    current = ss("mesh:v2", revision={"revisionName": revision["metadata"]["name"], "policy": policy},
                 strategy=dict({"type": "RollingUpdate"}, **(strategy or {})))
    resolved = r.resolve(current, [revision])
    new_pod, dummy = inject_pod(pod(labels), [resolved], now=NOW, rand=lambda: draw)
    assert new_pod["spec"]["containers"][0]["image"] == expected


def test_no_revision_strategy_injects_the_latest_and_leaves_the_sidecarset_alone():
    current = ss("mesh:v2")
    assert r.resolve(current, []) is current


def test_recording_revisions_later_does_not_rewrite_a_current_injection():
    """A template injected before revisions were recorded keeps its hash entry (no controllerRevision): enabling
    record_revision must not rewrite every workload and roll its pods."""
    current = ss("mesh:v1")
    first, dummy = inject_pod(pod(), [current], now=NOW)
    recorded = dict(current, status={"latestRevision": r.new_revision(current, "h", 1)["metadata"]["name"]})
    again, dummy = inject_pod(first, [recorded], now="2030-01-01T00:00:00Z")
    assert again == first
    fresh, dummy = inject_pod(pod(), [recorded], now=NOW)
    entry = json.loads(fresh["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["mesh-set"]
    assert entry["controllerRevision"] == recorded["status"]["latestRevision"]


def test_sidecar_inject_loads_revisions_from_files_lists_and_dicts(tmp_path):
    """The ``revisions`` option: ``kubectl get controllerrevisions -o yaml`` output (a List), plain documents, dicts;
    anything else names the file."""
    import yaml
    from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError
    from ansible_collections.meshops.sidecarset.plugins.modules.sidecar_inject import load_revisions
    one = r.new_revision(ss("mesh:v1"), "h", 1)
    two = r.new_revision(ss("mesh:v2"), "h", 2)
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [one]}))
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(two))
    loaded = load_revisions([str(tmp_path), {"kind": "ControllerRevision", "metadata": {"name": "x"}}])
    assert sorted(x["metadata"]["name"] for x in loaded) == sorted([one["metadata"]["name"], two["metadata"]["name"], "x"])
    bad = tmp_path / "bad" / "pod.yaml"
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump({"kind": "Pod", "metadata": {"name": "p"}}))
    with pytest.raises(ManifestError, match="expected ControllerRevision objects"):
        load_revisions([str(bad)])
    (tmp_path / "bad" / "pod.yaml").write_text(yaml.safe_dump({k: v for k, v in two.items() if k != "kind"}))
    assert load_revisions([str(bad)])[0]["metadata"] == two["metadata"]  # kind defaults to ControllerRevision
    (tmp_path / "bad" / "pod.yaml").write_text(yaml.safe_dump(two) + "---\nkind: [\n")
    with pytest.raises(ManifestError) as err:
        load_revisions([str(bad)])
    assert err.value.source == str(bad) and err.value.document == 1 and "YAML syntax error" in str(err.value)


def test_partial_draw_is_sticky_for_a_template_injected_earlier():
    """Partial with a percent partition draws per injection; a template that carries the history (or the latest)
    keeps it when injected again, whatever the draw, so that a second run changes nothing."""
    old = ss("mesh:v1")
    revision = r.new_revision(old, "h", 1)
    current = ss("mesh:v2", revision={"revisionName": revision["metadata"]["name"], "policy": "Partial"},
                 strategy={"type": "RollingUpdate", "partition": "50%"})
    resolved = r.resolve(current, [revision])
    on_history, dummy = inject_pod(pod(), [resolved], now=NOW, rand=lambda: 0.1)
    on_latest, dummy = inject_pod(pod(), [resolved], now=NOW, rand=lambda: 0.9)
    assert on_history["spec"]["containers"][0]["image"] == "mesh:v1"
    assert on_latest["spec"]["containers"][0]["image"] == "mesh:v2"
    assert inject_pod(on_history, [resolved], now=NOW, rand=lambda: 0.9)[0] == on_history
    assert inject_pod(on_latest, [resolved], now=NOW, rand=lambda: 0.1)[0] == on_latest


def test_the_history_is_named_after_its_revision_even_when_the_current_status_is_stale():
    """A SidecarSet exported from Kruise mid-reconcile (observedGeneration behind): normalisation drops its stale
    latestRevision, but the restored history is still named after the revision it comes from."""
    old = ss("mesh:v1")
    revision = r.new_revision(old, "h", 1)
    current = ss("mesh:v2", revision={"revisionName": revision["metadata"]["name"]})
    current["metadata"]["generation"] = 5
    current["status"] = {"observedGeneration": 4, "latestRevision": "mesh-set-stale"}
    new_pod, dummy = inject_pod(pod(), [r.resolve(current, [revision])], now=NOW)
    entry = json.loads(new_pod["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["mesh-set"]
    assert entry["controllerRevision"] == revision["metadata"]["name"]
