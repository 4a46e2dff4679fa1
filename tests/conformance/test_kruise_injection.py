"""Injection conformance: the pod Kruise's webhook creates vs the pods our online and offline injection create.

Each case applies the same SidecarSets and pod template to Kruise (kruise-manager v1.9.0 on its own control plane)
and to us (sidecar_inject online on a Deployment, and offline on the same manifest), then compares what a user
sees of the three pods (compare.user_view: containers, init containers, volumes, imagePullSecrets, annotations,
labels, every field as stored by the API server). A case passes when the differences are exactly the documented
ones it declares (compare.KNOWN, docs/kruise-conformance.md).
"""

import copy
import os

import pytest
import yaml

import compare
from kruiseref import ROOT, record, run_injection

pytestmark = pytest.mark.conformance


def example(name):
    with open(os.path.join(ROOT, "examples", name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def template_of(manifest):
    template = copy.deepcopy(manifest["spec"]["template"])
    return template


def check(kruise, result, expected=("controller-revision",), case_name=None, extra=None):
    """Compare Kruise's pod with our online and offline pods; record the figures; assert the differences."""
    reference = compare.flatten(compare.user_view(result["pods"]["kruise"]))
    entry = {"case": case_name, "kruise": kruise.version, "kubernetes": kruise.server_version,
             "compared_fields": 0, "differences": {}}
    failures = []
    for side in ("online", "offline"):
        ours = compare.flatten(compare.user_view(result["pods"][side]))
        differences = compare.diff(reference, ours)
        known, unexplained = compare.classify(differences)
        entry["compared_fields"] += len(set(reference) | set(ours))
        entry["differences"][side] = {"known": known, "unexplained": [list(d) for d in unexplained]}
        if unexplained:
            failures.append("%s: %d undocumented difference(s):\n%s" % (side, len(unexplained), "\n".join(
                "  %s\n    kruise: %r\n    ours:   %r" % d for d in unexplained)))
        if set(known) != set(expected):
            failures.append("%s: documented differences %s, the case declares %s" % (side, sorted(known), sorted(expected)))
    entry.update(extra or {})
    record(entry)
    assert not failures, "\n".join(failures)
    return entry


# ------------------------------------------------------------------------------------------------------ cases


def test_hotupgrade_sample(kruise, case, tmp_path, request):
    """examples/sidecarsets/hotupgrade-sample.yaml (Kruise's hot-upgrade sample) on examples/manifests/hotupgrade-app.yaml."""
    c = case()
    raw = example("sidecarsets/hotupgrade-sample.yaml")
    result = run_injection(kruise, c, lambda ns: [raw], template_of(example("manifests/hotupgrade-app.yaml")), tmp_path)
    pod = result["pods"]["kruise"]
    assert [x["name"] for x in pod["spec"]["containers"]] == ["sidecar-1", "sidecar-2", "busybox"]
    check(kruise, result, case_name=request.node.name)


def test_mosn_v1alpha1_namespace_post_start(kruise, case, tmp_path, request):
    """examples/sidecarsets/mosn.yaml (v1alpha1, spec.namespace, postStart, shareVolumePolicy, BeforeAppContainer)
    on examples/manifests/test-app.yaml; spec.namespace names each side's namespace."""
    c = case()
    raw = example("sidecarsets/mosn.yaml")

    def sidecarsets(ns):
        copy_ = copy.deepcopy(raw)
        copy_["spec"]["namespace"] = ns
        return [copy_]
    result = run_injection(kruise, c, sidecarsets, template_of(example("manifests/test-app.yaml")), tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == ["mosn-1", "mosn-2", "test-app"]
    check(kruise, result, case_name=request.node.name)


def _sidecarset(name, selector, containers, **spec):
    body = {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": name},
            "spec": dict({"selector": {"matchLabels": selector}, "containers": containers}, **spec)}
    return body


def _template(labels, containers, **spec):
    return {"metadata": {"labels": labels}, "spec": dict({"containers": containers}, **spec)}


def test_pod_inject_policy_before_and_after(kruise, case, tmp_path, request):
    c = case()
    raw = _sidecarset("conf-policy", {"conf": "policy"}, [
        {"name": "before-1", "image": "sidecar:before", "podInjectPolicy": "BeforeAppContainer"},
        {"name": "after-1", "image": "sidecar:after", "podInjectPolicy": "AfterAppContainer"},
        {"name": "before-2", "image": "sidecar:before2"},   # the default: BeforeAppContainer
    ])
    template = _template({"conf": "policy"}, [{"name": "app-a", "image": "app:a"}, {"name": "app-b", "image": "app:b"}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == [
        "before-1", "before-2", "app-a", "app-b", "after-1"]
    check(kruise, result, case_name=request.node.name)


def test_share_volume_policy(kruise, case, tmp_path, request):
    """shareVolumePolicy enabled: the app containers' mounts (subPathExpr with its env, a mountPath the sidecar
    already uses) are shared; disabled: not."""
    c = case()
    raw = _sidecarset("conf-share", {"conf": "share"}, [
        {"name": "sharer", "image": "sidecar:share", "shareVolumePolicy": {"type": "enabled"},
         "volumeMounts": [{"name": "own", "mountPath": "/data"}]},
        {"name": "loner", "image": "sidecar:alone", "shareVolumePolicy": {"type": "disabled"},
         "volumeMounts": [{"name": "own", "mountPath": "/own"}]},
    ], volumes=[{"name": "own", "emptyDir": {}}])
    template = _template({"conf": "share"}, [
        {"name": "app", "image": "app:1", "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                                   {"name": "OTHER", "value": "x"}],  # noqa
         "volumeMounts": [{"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"},
                          {"name": "cfg", "mountPath": "/data"},
                          {"name": "cfg", "mountPath": "/etc/app", "readOnly": True}]},
        {"name": "app2", "image": "app:2", "volumeMounts": [{"name": "logs", "mountPath": "/logs2"}]},
    ], volumes=[{"name": "logs", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    check(kruise, result, case_name=request.node.name)


def test_transfer_env(kruise, case, tmp_path, request):
    """transferEnv: sourceContainerName with envName and envNames (valueFrom kept, missing names skipped), and
    sourceContainerNameFrom a pod annotation."""
    c = case()
    raw = _sidecarset("conf-transfer", {"conf": "transfer"}, [
        {"name": "proxy", "image": "sidecar:proxy", "env": [{"name": "OWN", "value": "1"}],
         "transferEnv": [
             {"sourceContainerName": "app", "envName": "TZ"},
             {"sourceContainerName": "app", "envNames": ["REGION", "MISSING", "NODE"]},
             {"sourceContainerNameFrom": {"fieldRef": {"fieldPath": "metadata.annotations['conf/source']"}},
              "envNames": ["ZONE"]},
         ]},  # noqa
    ])
    template = _template({"conf": "transfer"}, [
        {"name": "app", "image": "app:1", "env": [
            {"name": "TZ", "value": "UTC"}, {"name": "REGION", "value": "eu"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
        {"name": "other", "image": "app:2", "env": [{"name": "ZONE", "value": "z1"}]},
    ])
    template["metadata"]["annotations"] = {"conf/source": "other"}
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    check(kruise, result, case_name=request.node.name)


def test_volume_merges(kruise, case, tmp_path, request):
    """SidecarSet volumes: a used one is added, an unused one is not, one the pod already has keeps the pod's."""
    c = case()
    raw = _sidecarset("conf-volumes", {"conf": "volumes"}, [
        {"name": "agent", "image": "sidecar:agent",
         "volumeMounts": [{"name": "agent-data", "mountPath": "/agent"}, {"name": "shared", "mountPath": "/shared"}]},
    ], volumes=[{"name": "agent-data", "emptyDir": {"medium": "Memory"}}, {"name": "unused", "emptyDir": {}},
                {"name": "shared", "emptyDir": {"sizeLimit": "1Gi"}}])
    template = _template({"conf": "volumes"}, [
        {"name": "app", "image": "app:1", "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
    ], volumes=[{"name": "shared", "emptyDir": {}}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    check(kruise, result, case_name=request.node.name)


def test_namespace_selector(kruise, case, tmp_path, request):
    """namespaceSelector on namespace labels (matchLabels + matchExpressions); a second SidecarSet whose selector
    does not match the namespace injects nothing."""
    c = case({"team": "payments", "tier": "gold"})
    hit = _sidecarset("conf-nssel-hit", {"conf": "nssel"}, [{"name": "hit", "image": "sidecar:hit"}],
                      namespaceSelector={"matchLabels": {"team": "payments"},
                                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]})
    miss = _sidecarset("conf-nssel-miss", {"conf": "nssel"}, [{"name": "miss", "image": "sidecar:miss"}],
                       namespaceSelector={"matchLabels": {"team": "search"}})
    template = _template({"conf": "nssel"}, [{"name": "app", "image": "app:1"}])
    result = run_injection(kruise, c, lambda ns: [hit, miss], template, tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == ["hit", "app"]
    check(kruise, result, case_name=request.node.name)


def test_v1alpha1_namespace_and_name_selector(kruise, case, tmp_path, request):
    """v1alpha1 spec.namespace (converted by Kruise to a kubernetes.io/metadata.name selector) and a v1beta1
    kubernetes.io/metadata.name selector; a v1alpha1 one naming another namespace injects nothing."""
    c = case()

    def sidecarsets(ns):
        alpha = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "conf-alpha"},
                 "spec": {"namespace": ns, "selector": {"matchLabels": {"conf": "alpha"}},
                          "containers": [{"name": "alpha", "image": "sidecar:alpha", "podInjectPolicy": "AfterAppContainer"}]}}
        # both are in Kruise's namespace index, whose order is its cache's: one goes before, one after the app
        other = copy.deepcopy(alpha)
        other["metadata"]["name"] = "conf-alpha-other"
        other["spec"]["namespace"] = "kube-system"
        other["spec"]["containers"][0]["name"] = "other"
        beta = _sidecarset("conf-beta-name", {"conf": "alpha"}, [{"name": "beta", "image": "sidecar:beta"}],
                           namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": ns}})
        return [alpha, other, beta]
    template = _template({"conf": "alpha"}, [{"name": "app", "image": "app:1"}])
    result = run_injection(kruise, c, sidecarsets, template, tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == ["beta", "app", "alpha"]
    check(kruise, result, case_name=request.node.name)


def test_two_sidecarsets_on_one_pod(kruise, case, tmp_path, request):
    """Two cluster-wide SidecarSets on one pod: one BeforeAppContainer with a HotUpgrade sidecar and an init
    container, one AfterAppContainer with a volume (Kruise's order between SidecarSets of one index is its cache's,
    so the containers of each are placed on different sides)."""
    c = case()
    first = _sidecarset("conf-two-a", {"conf": "two"}, [
        {"name": "mesh", "image": "mesh:v1", "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "mesh:empty"}},
    ], initContainers=[{"name": "mesh-init", "image": "mesh:init"}])
    second = _sidecarset("conf-two-b", {"conf": "two"}, [
        {"name": "log", "image": "log:v1", "podInjectPolicy": "AfterAppContainer",
         "volumeMounts": [{"name": "log-buf", "mountPath": "/buf"}]},
    ], initContainers=[{"name": "a-log-init", "image": "log:init"}], volumes=[{"name": "log-buf", "emptyDir": {}}])
    template = _template({"conf": "two"}, [{"name": "app", "image": "app:1"}],
                         initContainers=[{"name": "app-init", "image": "app:init"}])
    result = run_injection(kruise, c, lambda ns: [first, second], template, tmp_path)
    pod = result["pods"]["kruise"]
    assert [x["name"] for x in pod["spec"]["containers"]] == ["mesh-1", "mesh-2", "app", "log"]
    assert [x["name"] for x in pod["spec"]["initContainers"]] == ["app-init", "a-log-init", "mesh-init"]
    check(kruise, result, case_name=request.node.name)


def test_two_sidecarsets_namespace_indexed_first(kruise, case, tmp_path, request):
    """Both BeforeAppContainer: Kruise's webhook lists the SidecarSets indexed under the pod's namespace (a
    kubernetes.io/metadata.name selector) before the cluster-wide ones; its containers come first."""
    c = case()

    def sidecarsets(ns):
        wide = _sidecarset("conf-order-a", {"conf": "order"}, [{"name": "wide", "image": "sidecar:wide"}])
        local = _sidecarset("conf-order-z", {"conf": "order"}, [{"name": "local", "image": "sidecar:local"}],
                            namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": ns}})
        return [wide, local]
    template = _template({"conf": "order"}, [{"name": "app", "image": "app:1"}])
    result = run_injection(kruise, c, sidecarsets, template, tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == ["local", "wide", "app"]
    check(kruise, result, case_name=request.node.name)


def test_native_sidecar_init_containers(kruise, case, tmp_path, request):
    """initContainers with restartPolicy Always (native sidecars, one HotUpgrade), a plain init container; both
    hashes then cover initContainers. Kruise's validation requires updateStrategy NotUpdate with native sidecars
    ("The initContainer in-place upgrade is not currently supported"), and so does ours."""
    c = case()
    raw = _sidecarset("conf-native", {"conf": "native"}, [{"name": "main-sidecar", "image": "sidecar:main"}],
                      initContainers=[
                          {"name": "native-proxy", "image": "proxy:v1", "restartPolicy": "Always",
                           "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "proxy:empty"}},
                          {"name": "native-log", "image": "log:v1", "restartPolicy": "Always"},
                          {"name": "init-once", "image": "init:v1"},
                      ], updateStrategy={"type": "NotUpdate"})  # noqa
    template = _template({"conf": "native"}, [{"name": "app", "image": "app:1"}],
                         initContainers=[{"name": "app-init", "image": "app:init"}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    check(kruise, result, case_name=request.node.name)


def test_injection_strategy_paused(kruise, case, tmp_path, request):
    """injectionStrategy.paused: that SidecarSet injects nothing; another one still does."""
    c = case()
    paused = _sidecarset("conf-paused-a", {"conf": "paused"}, [{"name": "paused", "image": "sidecar:paused"}],
                         injectionStrategy={"paused": True})
    active = _sidecarset("conf-paused-b", {"conf": "paused"}, [{"name": "active", "image": "sidecar:active"}])
    template = _template({"conf": "paused"}, [{"name": "app", "image": "app:1"}])
    result = run_injection(kruise, c, lambda ns: [paused, active], template, tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == ["active", "app"]
    check(kruise, result, case_name=request.node.name)


def test_image_pull_secrets(kruise, case, tmp_path, request):
    """imagePullSecrets: appended after the pod's, de-duplicated by name."""
    c = case()
    raw = _sidecarset("conf-secrets", {"conf": "secrets"}, [{"name": "sc", "image": "private/sidecar:1"}],
                      imagePullSecrets=[{"name": "app-pull"}, {"name": "sidecar-pull"}])
    template = _template({"conf": "secrets"}, [{"name": "app", "image": "app:1"}], imagePullSecrets=[{"name": "app-pull"}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    check(kruise, result, case_name=request.node.name)
