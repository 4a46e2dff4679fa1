# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kruise-format SidecarSet hashes (``hash.go``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import random

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import hashing
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets, normalize_sidecarset

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "sidecarsets")


def _shuffled(value, rng):
    """Same content, every dict rebuilt in a random key order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _minimal(**container):
    base = {"name": "c", "image": "repo/c:1"}
    base.update(container)
    return {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "s"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "containers": [base]}}


def test_safe_encode_hex_mapping_matches_reference():
    assert hashing.safe_encode_string("0123456789abcdef") == "456789bcdfvwxz24"
    assert len(hashing.SAFE_ALPHABET) == 27


def test_go_json_field_order_and_struct_fields_always_emitted():
    spec = normalize_sidecarset(_minimal())["spec"]
    assert hashing.go_json(spec) == (
        b'{"containers":[{"name":"c","image":"repo/c:1","resources":{},'
        b'"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",'
        b'"imagePullPolicy":"IfNotPresent","podInjectPolicy":"BeforeAppContainer",'
        b'"upgradeStrategy":{"upgradeType":"ColdUpgrade"},"shareVolumePolicy":{"type":"disabled"}}]}'
    )


def test_go_json_nested_order_omitempty_and_html_escaping():
    spec = {"containers": [{
        "tty": False, "env": [{"value": "a<b&c>", "name": "X"}], "image": "i", "name": "n",
        "ports": [{"protocol": "TCP", "containerPort": 80}],
        "volumeMounts": [{"mountPath": "/m", "readOnly": True, "name": "v"}],
        "resources": {"requests": {"memory": "1024Mi", "cpu": "0.5"}},
        "readinessProbe": {"periodSeconds": 10, "httpGet": {"scheme": "HTTP", "port": 8080, "path": "/"}},
    }]}
    assert hashing.go_json(spec).decode() == (
        '{"containers":[{"name":"n","image":"i","ports":[{"containerPort":80,"protocol":"TCP"}],'
        '"env":[{"name":"X","value":"a\\u003cb\\u0026c\\u003e"}],"resources":{"requests":{"cpu":"500m","memory":"1Gi"}},'
        '"volumeMounts":[{"name":"v","readOnly":true,"mountPath":"/m"}],'
        '"readinessProbe":{"httpGet":{"path":"/","port":8080,"scheme":"HTTP"},"periodSeconds":10},'
        '"upgradeStrategy":{},"shareVolumePolicy":{}}]}'
    )


def test_init_containers_hashed_only_with_a_native_sidecar():
    spec = {"containers": [{"name": "c", "image": "i"}], "initContainers": [{"name": "init", "image": "j"}]}
    assert b"initContainers" not in hashing.go_json(spec)
    spec["initContainers"].append({"name": "native", "image": "k", "restartPolicy": "Always"})
    data = hashing.go_json(spec)
    assert data.startswith(b'{"containers":[') and b'"initContainers":[{"name":"init"' in data


def test_missing_containers_is_null_like_a_nil_slice():
    assert hashing.go_json({}) == b'{"containers":null}'


@pytest.mark.parametrize("seed", range(5))
def test_hash_is_stable_across_key_orders(seed):
    for obj in load_sidecarsets([EXAMPLES]):
        shuffled = _shuffled(copy.deepcopy(obj), random.Random(seed))
        assert hashing.sidecarset_hashes(shuffled) == hashing.sidecarset_hashes(obj)
        assert normalize_sidecarset(shuffled)["metadata"]["annotations"] == obj["metadata"]["annotations"]


def test_golden_hashes_of_the_seed_examples_do_not_drift():
    by_name = {o["metadata"]["name"]: o["metadata"]["annotations"] for o in load_sidecarsets([EXAMPLES])}
    assert by_name["mosn"] == {
        "kruise.io/sidecarset-hash": "c8dxf586x582zx27728d4526z44z4bwvz482z4v6x9b85c727wc9cx2z54x9cvd5",
        "kruise.io/sidecarset-hash-without-image": "x449c4b47w29445wxd669f4774vcvw4cx8f5zzf5z688f9xcd769w8448bvbfvd2",
    }
    assert by_name["hotupgrade-sidecarset"] == {
        "kruise.io/sidecarset-hash": "8z89b4xb4xxbx2bz4xf99c25v4z4fzv296wd245vwc9z2vf4wz4c747c654z825b",
        "kruise.io/sidecarset-hash-without-image": "xw4c5bc2cvw74vz4wfc8c9dz96c698c824vz4444w4cf277vz5f77dz4b5d52849",
    }


def test_hash_format():
    value = hashing.compute_hash({"containers": [{"name": "c", "image": "i"}]})
    assert len(value) == 64 and set(value) <= set(hashing.SAFE_ALPHABET)


def test_image_change_changes_hash_but_not_hash_without_image():
    one = normalize_sidecarset(_minimal(image="repo/c:1"))
    two = normalize_sidecarset(_minimal(image="repo/c:2"))
    assert hashing.sidecarset_hashes(one)[0] != hashing.sidecarset_hashes(two)[0]
    assert hashing.sidecarset_hashes(one)[1] == hashing.sidecarset_hashes(two)[1]


def test_env_change_changes_both_hashes():
    one = hashing.sidecarset_hashes(normalize_sidecarset(_minimal(env=[{"name": "A", "value": "1"}])))
    two = hashing.sidecarset_hashes(normalize_sidecarset(_minimal(env=[{"name": "A", "value": "2"}])))
    assert one[0] != two[0] and one[1] != two[1]


def test_empty_image_is_part_of_hash_without_image():
    hot = {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "e:1"}
    one = hashing.sidecarset_hashes(normalize_sidecarset(_minimal(upgradeStrategy=dict(hot))))
    two = hashing.sidecarset_hashes(normalize_sidecarset(_minimal(upgradeStrategy=dict(hot, hotUpgradeEmptyImage="e:2"))))
    assert one[1] != two[1]


def test_unknown_keys_do_not_reach_the_hash():
    spec = {"containers": [{"name": "c", "image": "i"}]}
    assert hashing.go_json(spec) == hashing.go_json({"containers": [{"name": "c", "image": "i", "bogus": 1}]})


@pytest.mark.parametrize("raw,expected", [
    ("100m", "100m"), ("0.5", "500m"), ("1000m", "1"), (1, "1"), (0.25, "250m"), ("2000", "2k"),
    ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("512Ki", "512Ki"), ("0.0001", "1m"), ("129e6", "129e6"),
    ("1e3", "1e3"), ("0", "0"), ("500Mi", "500Mi"), ("1536", "1536"), ("0.5Ki", "512"), ("nonsense", "nonsense"),
])
def test_canonical_quantity(raw, expected):
    assert hashing.canonical_quantity(raw) == expected


# Test vectors from OpenKruise's own unit tests (pkg/control/sidecarcontrol/hash_test.go, current master):
# the SidecarSets there are not defaulted, so the spec is hashed exactly as given.
KRUISE_CONTAINER = {"name": "container1", "image": "test-image"}
KRUISE_ALWAYS_INIT = dict(KRUISE_CONTAINER, restartPolicy="Always")


@pytest.mark.parametrize("spec, expected", [
    ({"containers": [KRUISE_CONTAINER]},
     "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78"),
    ({"containers": [KRUISE_CONTAINER], "initContainers": [KRUISE_CONTAINER]},
     "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78"),
    ({"containers": [KRUISE_CONTAINER], "initContainers": [KRUISE_ALWAYS_INIT]},
     "4xwx4d4844vd4v9x79wb4xbxf4xb29475cc4446v8cz2c2f2f5c5bw448vd42z8w"),
], ids=["containers", "plain-init-containers-ignored", "native-sidecar-init-containers"])
def test_hash_equals_kruise_test_vectors(spec, expected):
    assert hashing.compute_hash(spec) == expected
    changed = copy.deepcopy(spec)
    changed["containers"][0]["image"] = "new-image"
    assert hashing.compute_hash(changed) != expected


@pytest.mark.parametrize("spec, expected", [
    ({"containers": [KRUISE_CONTAINER], "initContainers": [KRUISE_CONTAINER]},
     "8wzddb4dvv9c6x8zdc77z4z75987424f457dfv6724ddw6zbdx467wz5x24fc759"),
    ({"containers": [KRUISE_CONTAINER], "initContainers": [KRUISE_ALWAYS_INIT]},
     "5725fw8bwbx249bw57v5892c847dzf48bww9zb7c86xb95264fdz26654847b2c8"),
], ids=["plain-init-containers", "native-sidecar-init-containers"])
def test_hash_without_image_equals_kruise_test_vectors(spec, expected):
    assert hashing.compute_hash_without_image(spec) == expected
    changed = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        changed[key][0]["image"] = "new-image"
    assert hashing.compute_hash_without_image(changed) == expected
