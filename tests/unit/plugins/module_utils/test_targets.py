# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pods a play's hosts stand for (inventory-driven rollouts), and each pod host's outcome."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.rollout_journal import host_outcomes
from ansible_collections.meshops.sidecarset.plugins.module_utils.targets import pod_targets
from ansible_collections.meshops.sidecarset.plugins.filter.rollout_targets import rollout_targets


def pod_host(name, namespace="shop", cluster=None, connection=None):
    variables = {"pod_name": name, "pod_namespace": namespace}
    if cluster:
        variables["k8s_cluster"] = cluster
    if connection is not None:
        variables["k8s_connection"] = connection
    return variables


def test_pod_hosts_grouped_by_cluster_other_hosts_ignored():
    hosts = [("localhost", {}), ("eu/shop/a", pod_host("a", cluster="eu", connection={"name": "eu", "context": "eu"})),
             ("us/shop/b", pod_host("b", cluster="us")), ("eu/web/c", pod_host("c", "web", cluster="eu")),
             ("static-pod", pod_host("d"))]
    targets = pod_targets(hosts)
    assert [t["name"] for t in targets] == ["eu", "us", "default"]
    assert targets[0] == {"name": "eu", "context": "eu", "pods": [
        {"name": "a", "namespace": "shop", "host": "eu/shop/a"}, {"name": "c", "namespace": "web", "host": "eu/web/c"}]}
    assert targets[2]["pods"] == [{"name": "d", "namespace": "shop", "host": "static-pod"}]
    assert pod_targets([("localhost", {}), ("web1", {"ansible_host": "10.0.0.1"})]) == []


def test_half_a_pod_host_is_refused_with_its_name():
    with pytest.raises(ParameterError, match="host web1: a pod host needs both pod_name and pod_namespace"):
        pod_targets([("web1", {"pod_name": "a"})])
    with pytest.raises(ParameterError, match="host x: k8s_connection must be a dict"):
        pod_targets([("x", pod_host("a", connection="oops"))])


def test_filter_reads_only_the_pod_variables():
    hostvars = {"h1": dict(pod_host("a"), pod_labels={"app": "x"}), "localhost": {}}
    assert rollout_targets(["h1", "localhost"], hostvars) == [
        {"name": "default", "pods": [{"name": "a", "namespace": "shop", "host": "h1"}]}]


def test_each_pod_host_gets_its_outcome():
    targets = [{"name": "eu", "pods": [{"name": n, "namespace": "shop", "host": "h-" + n} for n in "abcdefg"]}]
    plans = [{"cluster": "eu", "partitioned_pods": [{"namespace": "shop", "name": "c"}],
              "not_upgradable_pods": [{"namespace": "shop", "name": "d", "reason": "pod is not injected"}],
              "missing_pods": [{"namespace": "shop", "name": "e"}]}]
    pods = [{"cluster": "eu", "namespace": "shop", "name": "a", "phase": "done", "changed": True, "failed": False},
            {"cluster": "eu", "namespace": "shop", "name": "b", "phase": "failed", "changed": True, "failed": True,
             "reason": "new twin never ready"}]
    out = host_outcomes(targets, plans, pods)
    assert out["h-a"]["changed"] and not out["h-a"]["failed"] and out["h-a"]["msg"] == "eu/shop/a: done"
    assert out["h-b"]["failed"] and out["h-b"]["msg"] == "eu/shop/b: failed - new twin never ready"
    assert out["h-c"]["phase"] == "partitioned" and out["h-d"]["reason"] == "pod is not injected"
    assert out["h-e"]["phase"] == "missing" and not out["h-e"]["failed"]
    assert out["h-f"] == {"phase": "done", "reason": "already on the current SidecarSet", "changed": False,
                          "failed": False, "msg": "eu/shop/f: done - already on the current SidecarSet"}
    stopped = host_outcomes(targets, plans, pods, stopped="canary")
    assert stopped["h-g"]["phase"] == "not-reached" and "canary" in stopped["h-g"]["reason"]
    assert host_outcomes(targets, [], [], stopped="batch 1")["h-a"]["phase"] == "not-reached"
