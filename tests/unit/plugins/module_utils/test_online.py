# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Online injection with a fake API client, and the one decision ``only_on_delete`` rests on: does a change of a
workload's pod template make its controller recreate its pods (``kinds.pods_kept_on_template_change``)?"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import pod_hash
from ansible_collections.meshops.sidecarset.plugins.module_utils.kinds import (
    pods_kept_on_template_change,
    update_strategy,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.online import inject_workloads
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import get_hash, load_sidecarsets
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import template_drift
from ansible_collections.meshops.sidecarset.plugins.modules import sidecar_inject

NS = "shop"


def sidecarset(image):
    return load_sidecarsets([{
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "mesh"},
        "spec": {"selector": {"matchLabels": {"mesh": "on"}},
                 "containers": [{"name": "proxy", "image": image,
                                 "upgradeStrategy": {"upgradeType": "HotUpgrade",
                                                     "hotUpgradeEmptyImage": "mesh/empty:1"}}]}}])


def workload(kind, name, strategy=None):
    """A live workload of ``kind`` whose pods the ``mesh`` SidecarSet selects; ``strategy`` its update strategy
    type (``None``: the field is absent)."""
    template = {"metadata": {"labels": {"mesh": "on", "app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    spec = {"selector": {"matchLabels": {"app": name}}}
    if kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        spec["template"] = template
    if strategy is not None:
        spec["strategy" if kind == "Deployment" else "updateStrategy"] = {"type": strategy}
    return {"kind": kind, "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"}, "spec": spec}


class FakeClient:
    """Workloads in a dict by ``(kind, name)``; PUTs check the resourceVersion (409 otherwise) and bump it.
    ``on_replace`` runs before each PUT is decided (a concurrent writer)."""

    def __init__(self, objects, on_replace=None):
        self.objects = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects}
        self.writes = []
        self.on_replace = on_replace

    def get_namespace(self, name):
        return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}

    def list_workloads(self, kind, namespace):
        return [copy.deepcopy(o) for (k, dummy), o in sorted(self.objects.items()) if k == kind]

    def get_workload(self, kind, namespace, name):
        return copy.deepcopy(self.objects[(kind, name)])

    def replace_workload(self, kind, namespace, name, obj):
        if self.on_replace:
            self.on_replace(self)
        stored = self.objects[(kind, name)]
        if obj["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise KubeError(409, "conflict")
        new = copy.deepcopy(obj)
        new["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        self.objects[(kind, name)] = new
        self.writes.append((kind, name))
        return new


def template_hash(obj):
    template = obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else obj["spec"]["template"]
    return pod_hash(template["metadata"].get("annotations") or {}, "mesh")


# ------------------------------------------------------------------------------ the decision


@pytest.mark.parametrize("kind, strategy, expected", [
    ("Deployment", None, "RollingUpdate"),
    ("Deployment", "Recreate", "Recreate"),
    ("StatefulSet", None, "RollingUpdate"),      # the API server's default
    ("StatefulSet", "OnDelete", "OnDelete"),
    ("DaemonSet", None, "RollingUpdate"),        # the API server's default
    ("DaemonSet", "OnDelete", "OnDelete"),
    ("ReplicaSet", None, None),
    ("Job", None, None),
    ("CronJob", None, None),
])
def test_update_strategy_applies_the_api_default(kind, strategy, expected):
    assert update_strategy(workload(kind, "w", strategy)) == expected


def test_update_strategy_without_a_type_is_rolling_update():
    obj = workload("StatefulSet", "db")
    obj["spec"]["updateStrategy"] = {"rollingUpdate": {"partition": 0}}
    assert update_strategy(obj) == "RollingUpdate"
    obj["spec"]["updateStrategy"] = None
    assert update_strategy(obj) == "RollingUpdate"


@pytest.mark.parametrize("kind, strategy, kept, reason", [
    ("StatefulSet", "OnDelete", True,
     "StatefulSet: updateStrategy OnDelete: a template change recreates no pod, the pods it creates next use it"),
    ("DaemonSet", "OnDelete", True,
     "DaemonSet: updateStrategy OnDelete: a template change recreates no pod, the pods it creates next use it"),
    ("StatefulSet", None, False, "StatefulSet: updateStrategy RollingUpdate: a template change recreates its pods"),
    ("StatefulSet", "RollingUpdate", False,
     "StatefulSet: updateStrategy RollingUpdate: a template change recreates its pods"),
    ("DaemonSet", None, False, "DaemonSet: updateStrategy RollingUpdate: a template change recreates its pods"),
    ("Deployment", None, False, "Deployment: strategy RollingUpdate: a template change recreates its pods"),
    ("Deployment", "Recreate", False, "Deployment: strategy Recreate: a template change recreates its pods"),
    ("ReplicaSet", None, False, "ReplicaSet: has no updateStrategy OnDelete (only StatefulSets and DaemonSets have one)"),
    ("CronJob", None, False, "CronJob: has no updateStrategy OnDelete (only StatefulSets and DaemonSets have one)"),
])
def test_pods_kept_only_by_on_delete(kind, strategy, kept, reason):
    assert pods_kept_on_template_change(workload(kind, "w", strategy)) == (kept, reason)


def test_on_delete_is_read_from_the_kinds_own_field():
    # a Deployment has no updateStrategy (the API server would drop it); a StatefulSet's spec.strategy is not its own
    deployment = workload("Deployment", "web")
    deployment["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert pods_kept_on_template_change(deployment)[0] is False
    sts = workload("StatefulSet", "db")
    sts["spec"]["strategy"] = {"type": "OnDelete"}
    assert pods_kept_on_template_change(sts)[0] is False


# ------------------------------------------------------------------------------ inject_workloads


def fleet():
    return [
        workload("StatefulSet", "db", "OnDelete"),
        workload("StatefulSet", "cache"),                   # no updateStrategy: RollingUpdate
        workload("DaemonSet", "agent", "OnDelete"),
        workload("DaemonSet", "logs", "RollingUpdate"),
        workload("Deployment", "web"),
        workload("ReplicaSet", "bare"),
    ]


def by_name(results):
    return {r["name"]: r for r in results}


def test_only_on_delete_writes_only_the_on_delete_workloads():
    client = FakeClient(fleet())
    v1 = sidecarset("mesh/proxy:v1")
    results = by_name(inject_workloads(client, v1, [NS], only_on_delete=True))
    assert sorted(client.writes) == [("DaemonSet", "agent"), ("StatefulSet", "db")]
    assert {n: r["status"] for n, r in results.items()} == {
        "db": "injected", "agent": "injected", "cache": "skipped", "logs": "skipped", "web": "skipped", "bare": "skipped"}
    note = "; only_on_delete writes only StatefulSets and DaemonSets with updateStrategy OnDelete"
    assert results["web"]["reason"] == "Deployment: strategy RollingUpdate: a template change recreates its pods" + note
    assert results["cache"]["reason"] == "StatefulSet: updateStrategy RollingUpdate: a template change recreates its pods" + note
    assert results["logs"]["reason"] == "DaemonSet: updateStrategy RollingUpdate: a template change recreates its pods" + note
    assert results["bare"]["reason"].startswith("ReplicaSet: has no updateStrategy OnDelete")
    assert "updateStrategy OnDelete: a template change recreates no pod" in results["db"]["reason"]
    # the skipped workloads' templates are not touched, and their results show no change
    for name in ("cache", "logs", "web", "bare"):
        assert results[name]["before"] == results[name]["after"]
    for (kind, name), obj in client.objects.items():
        assert (template_hash(obj) == get_hash(v1[0])) == (name in ("db", "agent")), name
    assert results["db"]["pods_kept"] is True and results["agent"]["pods_kept"] is True


def test_without_the_option_every_drifted_workload_is_written():
    client = FakeClient(fleet())
    results = inject_workloads(client, sidecarset("mesh/proxy:v1"), [NS])
    assert {r["status"] for r in results} == {"injected"}
    assert len(client.writes) == 6
    assert {r["name"]: r["pods_kept"] for r in results} == {
        "db": True, "agent": True, "cache": False, "logs": False, "web": False, "bare": False}


def test_refresh_after_a_hot_upgrade_then_nothing_to_write():
    """v1 injected everywhere, then v2 (the hot upgrade's SidecarSet): only the OnDelete templates move to v2; a
    second run writes nothing and reports the same."""
    v1, v2 = sidecarset("mesh/proxy:v1"), sidecarset("mesh/proxy:v2")
    client = FakeClient(fleet())
    inject_workloads(client, v1, [NS])
    client.writes = []
    first = by_name(inject_workloads(client, v2, [NS], only_on_delete=True))
    assert sorted(client.writes) == [("DaemonSet", "agent"), ("StatefulSet", "db")]
    assert template_hash(client.objects[("StatefulSet", "db")]) == get_hash(v2[0])
    assert template_hash(client.objects[("Deployment", "web")]) == get_hash(v1[0])
    assert "proxy:v2" in str(first["db"]["after"]) and "proxy:v1" in str(first["db"]["before"])
    drift = template_drift(list(client.objects.values()), [], v2[0])["workloads"]
    assert sorted(w["name"] for w in drift) == ["bare", "cache", "logs", "web"]  # no drift left for db and agent
    versions = {key: obj["metadata"]["resourceVersion"] for key, obj in client.objects.items()}
    client.writes = []
    second = by_name(inject_workloads(client, v2, [NS], only_on_delete=True))
    assert client.writes == []
    assert {key: obj["metadata"]["resourceVersion"] for key, obj in client.objects.items()} == versions
    assert second["db"]["status"] == "unchanged" and second["agent"]["status"] == "unchanged"
    assert second["web"]["status"] == "skipped"


def test_named_workloads_limit_the_refresh():
    client = FakeClient(fleet())
    results = inject_workloads(client, sidecarset("mesh/proxy:v1"), [NS],
                               names=[("StatefulSet", "db"), ("Deployment", "web")], only_on_delete=True)
    assert client.writes == [("StatefulSet", "db")]
    assert {(r["kind"], r["name"], r["status"]) for r in results} == {
        ("StatefulSet", "db", "injected"), ("Deployment", "web", "skipped")}


def test_a_strategy_switched_to_rolling_update_before_the_write_is_re_read_and_skipped():
    def switch(client):
        stored = client.objects[("StatefulSet", "db")]
        if stored["spec"]["updateStrategy"]["type"] == "OnDelete":
            stored["spec"]["updateStrategy"] = {"type": "RollingUpdate"}
            stored["metadata"]["resourceVersion"] = "7"

    client = FakeClient([workload("StatefulSet", "db", "OnDelete")], on_replace=switch)
    results = inject_workloads(client, sidecarset("mesh/proxy:v1"), [NS], only_on_delete=True)
    assert client.writes == []
    assert results[0]["status"] == "skipped"
    assert results[0]["reason"].startswith("StatefulSet: updateStrategy RollingUpdate")
    assert template_hash(client.objects[("StatefulSet", "db")]) is None


# ------------------------------------------------------------------------------ the module's online mode


class FakeModule:
    def __init__(self, **params):
        self.params = dict(workloads=None, namespace=NS, kinds=list(sidecar_inject.WORKLOAD_KINDS), only_on_delete=False)
        self.params.update(params)
        self._diff = True
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def test_module_only_on_delete_changes_diffs_and_warns_only_about_what_it_writes():
    client = FakeClient(fleet())
    module = FakeModule(only_on_delete=True)
    result = sidecar_inject.run_online(module, sidecarset("mesh/proxy:v1"), client)
    assert result["changed"] is True
    assert [d["before_header"] for d in result["diff"]] == ["%s/StatefulSet/db" % NS, "%s/DaemonSet/agent" % NS]
    assert module.warnings == []  # no controller recreates a pod
    assert all(set(r) == {"kind", "name", "namespace", "status", "reason"} for r in result["results"])

    plain = FakeModule()
    sidecar_inject.run_online(plain, sidecarset("mesh/proxy:v1"), FakeClient(fleet()))
    assert len(plain.warnings) == 1 and "4 workload(s)" in plain.warnings[0]  # db and agent keep their pods
    assert "StatefulSet/db" not in plain.warnings[0] and "Deployment/web" in plain.warnings[0]


def test_module_only_on_delete_with_nothing_on_delete_changes_nothing():
    client = FakeClient([workload("Deployment", "web"), workload("StatefulSet", "cache")])
    result = sidecar_inject.run_online(FakeModule(only_on_delete=True), sidecarset("mesh/proxy:v1"), client)
    assert result["changed"] is False and client.writes == []
    assert {r["status"] for r in result["results"]} == {"skipped"}
    assert result["diff"] == []


def test_only_on_delete_is_refused_offline():
    from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError  # pylint: disable=import-outside-toplevel

    class Offline(FakeModule):
        check_mode = False

    module = Offline(sidecarsets=[], src="x.yaml", manifests=None, dest=None, revision_namespace=None,
                     record_revision=False, revisions=[], namespace_labels={}, only_on_delete=True)
    with pytest.raises(ParameterError, match="only_on_delete is an online option"):
        sidecar_inject.run(module)


class RevisionClient:
    """The ControllerRevision calls of ``prepare_revisions``, recorded."""

    def __init__(self, stored=()):
        self.stored = list(stored)
        self.calls = []

    def list_controller_revisions(self, namespace, label_selector=None):
        self.calls.append(("list", namespace, label_selector))
        return copy.deepcopy(self.stored)

    def create_controller_revision(self, namespace, body):
        self.calls.append(("create", namespace, body["metadata"]["name"]))
        return body

    def replace_controller_revision(self, namespace, name, body):
        self.calls.append(("replace", namespace, name))
        return body


@pytest.mark.parametrize("revision_namespace,record,stored,calls,action", [
    (None, True, None, [], "computed"),  # no namespace: nothing is read or written, the revision is computed
    ("kruise", False, None, ["list"], "computed"),
    ("kruise", True, None, ["list", "create"], "create"),
    ("kruise", True, "v1", ["list"], "none"),  # the newest stored revision holds the spec
    ("kruise", True, "v1-then-v2", ["list", "replace"], "bump"),  # an older one does: a rollback
])
def test_prepare_revisions_reads_and_records_only_online_with_a_namespace(revision_namespace, record, stored, calls, action):
    from ansible_collections.meshops.sidecarset.plugins.module_utils import revisions  # pylint: disable=import-outside-toplevel
    current = sidecarset("mesh/proxy:v1")
    history = {None: [], "v1": [revisions.new_revision(current[0], "kruise", 1)],
               "v1-then-v2": [revisions.new_revision(current[0], "kruise", 1),
                              revisions.new_revision(sidecarset("mesh/proxy:v2")[0], "kruise", 2)]}[stored]
    client = RevisionClient(history)
    module = FakeModule(revisions=[], revision_namespace=revision_namespace, record_revision=record)
    prepared, report = sidecar_inject.prepare_revisions(module, current, client)
    assert [call[0] for call in client.calls] == calls
    assert all(call[2] == "kruise.io/sidecarset-name=mesh" for call in client.calls if call[0] == "list")
    assert report["mesh"]["action"] == action
    recorded = record and revision_namespace
    assert (prepared[0].get("status") or {}).get("latestRevision") == (report["mesh"]["name"] if recorded else None)
    offline, dummy = sidecar_inject.prepare_revisions(module, current)
    assert offline[0].get("status", {}).get("latestRevision") is None and dummy["mesh"]["action"] == "computed"
