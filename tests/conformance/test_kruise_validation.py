"""Validation conformance: the same SidecarSets, accepted or refused by Kruise (its CRD schema and its SidecarSet
webhooks, through a dry-run create) and by us (sidecar_inject offline on a one-Deployment manifest).

Every case must agree, except the ones in OURS_STRICTER: checks Kruise lacks and we add on purpose (the
sidecar_inject documentation lists them; docs/kruise-conformance.md).
"""

import copy

import pytest

from kruiseref import record, run_tasks

pytestmark = pytest.mark.conformance

BASE = {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "conf-valid"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "containers": [{"name": "proxy", "image": "proxy:v1"}]}}


def variant(edit, api="v1beta1"):
    raw = copy.deepcopy(BASE)
    raw["apiVersion"] = "apps.kruise.io/" + api
    edit(raw["spec"], raw)
    return raw


def _hot(container, empty=True):
    container["upgradeStrategy"] = {"upgradeType": "HotUpgrade"}
    if empty:
        container["upgradeStrategy"]["hotUpgradeEmptyImage"] = "proxy:empty"


CASES = {
    "valid": lambda s, r: None,
    "valid hot upgrade": lambda s, r: _hot(s["containers"][0]),
    "native sidecar with RollingUpdate": lambda s, r: s.update(initContainers=[{"name": "n", "image": "n:1", "restartPolicy": "Always"}]),
    "native sidecar with NotUpdate": lambda s, r: s.update(initContainers=[{"name": "n", "image": "n:1", "restartPolicy": "Always"}],
                                                           updateStrategy={"type": "NotUpdate"}),
    "no selector": lambda s, r: s.pop("selector"),
    "empty selector": lambda s, r: s.update(selector={}),
    "maxUnavailable not int or percent": lambda s, r: s.update(updateStrategy={"maxUnavailable": "abc"}),
    "partition with updateStrategy.selector": lambda s, r: s.update(updateStrategy={"selector": {"matchLabels": {"a": "b"}},
                                                                                     "partition": 1}),  # noqa
    "mount of an undefined volume": lambda s, r: s["containers"][0].update(volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
    "duplicate container names": lambda s, r: s["containers"].append({"name": "proxy", "image": "proxy:v2"}),
    "HotUpgrade without hotUpgradeEmptyImage": lambda s, r: _hot(s["containers"][0], empty=False),
    "HotUpgrade on a plain init container": lambda s, r: s.update(initContainers=[dict(name="i", image="i:1", upgradeStrategy={
        "upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "i:empty"})]),
    "unknown container field": lambda s, r: s["containers"][0].update(imagePullPolice="Always"),
    "bad podInjectPolicy": lambda s, r: s["containers"][0].update(podInjectPolicy="Sometimes"),
    "transferEnv without source": lambda s, r: s["containers"][0].update(transferEnv=[{"envName": "TZ"}]),
    "namespace on v1beta1": lambda s, r: s.update(namespace="default"),
}
ALPHA = {
    "v1alpha1 namespace and namespaceSelector": lambda s, r: s.update(namespace="default",
                                                                     namespaceSelector={"matchLabels": {"a": "b"}}),  # noqa
}
# cases where we refuse what Kruise accepts, on purpose (sidecar_inject documentation: "checks Kruise lacks")
OURS_STRICTER = {
    "HotUpgrade without hotUpgradeEmptyImage": "the N-2 twin would get an empty image",
    "HotUpgrade on a plain init container": "Kruise ignores it; a plain init container cannot be hot-upgraded",
    "unknown container field": "Kruise's CRD keeps containers schemaless and its decoder drops the key silently",
    # found by this suite, not in sidecar_inject's list of extra checks (docs/kruise-conformance.md):
    "transferEnv without source": "Kruise accepts the entry and skips it at injection; sidecarset._validate_transfer_env refuses it",
    "namespace on v1beta1": "Kruise's v1beta1 schema prunes spec.namespace silently (the SidecarSet then selects every "
                            "namespace); sidecarset._convert_to_v1beta1 refuses it",
}


def test_validation_agrees(kruise, request):
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    raws = {name: variant(edit) for name, edit in CASES.items()}
    raws.update({name: variant(edit, "v1alpha1") for name, edit in ALPHA.items()})
    theirs = {}
    for name, raw in raws.items():
        version = raw["apiVersion"].split("/")[1]
        try:
            kruise.custom.create_cluster_custom_object("apps.kruise.io", version, "sidecarsets", raw, dry_run="All")
            theirs[name] = (True, "")
        except ApiException as exc:
            theirs[name] = (False, (exc.body or "")[:300])
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                    "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}
    names = list(raws)
    results, proc = run_tasks([("sidecar_inject", {"sidecarsets": [raws[n]], "manifests": [manifest]}) for n in names], kruise.env)
    ours = {n: (not r.get("failed"), r.get("msg", "")[:300]) for n, r in zip(names, results)}
    table = [{"case": n, "kruise": theirs[n][0], "ours": ours[n][0], "kruise_message": theirs[n][1], "our_message": ours[n][1]}
             for n in names]
    record({"case": request.node.name, "kruise": kruise.version, "kubernetes": kruise.server_version,
            "compared_fields": len(names), "validation": table})
    disagree = [row for row in table if row["kruise"] != row["ours"] and row["case"] not in OURS_STRICTER]
    assert not disagree, "\n".join("%(case)s: kruise %(kruise)s (%(kruise_message)s), ours %(ours)s (%(our_message)s)" % r
                                   for r in disagree)
    for name in OURS_STRICTER:
        assert theirs[name][0] and not ours[name][0], (name, theirs[name], ours[name])
    assert proc.returncode in (0, 2)
