"""Issue 16 against the real kruise-manager v1.9.0: resourcesPolicy, the merge rules (volumes in order of first use,
a Before sidecar at index 0 next to a pod container named like another sidecar) and the ControllerRevision name.
Each case compares Kruise's pod with our online and offline pods (test_kruise_injection.check)."""

import copy
import json

import pytest

from kruiseref import app_deployment, newest_pods, run_injection, run_tasks, scope_to, wait_for, write_yaml
from test_kruise_injection import _sidecarset, _template, check, example, template_of

from ansible_collections.meshops.sidecarset.plugins.module_utils.revisions import new_revision
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import normalize_sidecarset

pytestmark = pytest.mark.conformance

EXPECTED = {
    "proxy": {"limits": {"cpu": "300m", "memory": "200Mi"}, "requests": {"cpu": "150m", "memory": "100Mi"}},
    "log-agent": {"requests": {"cpu": "20m", "memory": "32Mi"}},
}


def test_resources_policy_example(kruise, case, tmp_path, request):
    """examples/sidecarsets/resources-policy.yaml on examples/manifests/sized-app.yaml (docs/kruise-parity.md)."""
    c = case()
    raw = example("sidecarsets/resources-policy.yaml")
    result = run_injection(kruise, c, lambda ns: [copy.deepcopy(raw)],
                           template_of(example("manifests/sized-app.yaml")), tmp_path)
    pod = result["pods"]["kruise"]
    assert {x["name"]: x.get("resources") for x in pod["spec"]["containers"] if x["name"] in EXPECTED} == EXPECTED
    check(kruise, result, case_name=request.node.name)
    # our ControllerRevision name for this spec is the one Kruise's controller gave it
    ours = new_revision(normalize_sidecarset(raw), "kruise-system", 1)["metadata"]["name"]
    assert result["stored"]["sized-sidecars"]["status"]["latestRevision"] == ours


def test_volumes_in_order_of_first_use(kruise, case, tmp_path, request):
    c = case()
    raw = _sidecarset("conf-volorder", {"conf": "volorder"}, [
        {"name": "second", "image": "sidecar:2",
         "volumeMounts": [{"name": "vol-c", "mountPath": "/c"}, {"name": "vol-a", "mountPath": "/a"}]},
        {"name": "first", "image": "sidecar:1", "volumeMounts": [{"name": "vol-b", "mountPath": "/b"}]},
    ], volumes=[{"name": n, "emptyDir": {}} for n in ("vol-a", "vol-b", "vol-c", "vol-unused")])
    template = _template({"conf": "volorder"}, [{"name": "app", "image": "app:1"}],
                         volumes=[{"name": "pod-own", "emptyDir": {}}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    # the ServiceAccount admission adds kube-api-access-* before the webhooks run
    names = [v["name"] for v in result["pods"]["kruise"]["spec"]["volumes"] if not v["name"].startswith("kube-api-access-")]
    assert names == ["pod-own", "vol-c", "vol-a", "vol-b"]
    check(kruise, result, case_name=request.node.name)


def test_before_sidecar_next_to_a_pod_container_named_like_a_sidecar(kruise, case, tmp_path, request):
    c = case()
    raw = _sidecarset("conf-named", {"conf": "named"}, [
        {"name": "new-sidecar-1", "image": "sidecar:new", "podInjectPolicy": "BeforeAppContainer"},
        {"name": "sidecar-1", "image": "sidecar:1", "podInjectPolicy": "AfterAppContainer"},
    ])
    template = _template({"conf": "named"}, [{"name": "sidecar-1", "image": "pods-own:1"}, {"name": "app", "image": "app:1"}])
    result = run_injection(kruise, c, lambda ns: [raw], template, tmp_path)
    assert [x["name"] for x in result["pods"]["kruise"]["spec"]["containers"]] == ["new-sidecar-1", "sidecar-1", "app"]
    check(kruise, result, case_name=request.node.name)


def test_kruises_revisions_are_read_by_us(kruise, case, tmp_path, request):
    """injectionStrategy.revision naming the ControllerRevision Kruise recorded for v1 (in kruise-system), after the
    SidecarSet moved to v2: Kruise's pod and ours (online, revision_namespace: kruise-system) both get v1, with the
    same controllerRevision and hash; our name for v1's revision is Kruise's."""
    c = case()
    kns, ons = c.namespaces["kruise"], c.namespaces["online"]
    # NotUpdate: with RollingUpdate, Kruise's controller upgrades the pod injected with v1 to v2 in place at once (seen
    # in this case's first run: its pod ended on v2 with an in-place update state); we compare what was injected
    v1 = _sidecarset("conf-revision", {"conf": "revision"}, [{"name": "proxy", "image": "sidecar:v1"}],
                     updateStrategy={"type": "NotUpdate"})
    kruise.create_sidecarset(scope_to(v1, "kruise"))
    c.sidecarsets.append("conf-revision")
    rev1 = kruise.wait_sidecarset_observed("conf-revision")["status"]["latestRevision"]
    assert rev1 == new_revision(normalize_sidecarset(v1), "kruise-system", 1)["metadata"]["name"]
    revision = {"revision": {"revisionName": rev1, "policy": "Always"}}
    kruise.patch_sidecarset("conf-revision", {"spec": {"containers": [{"name": "proxy", "image": "sidecar:v2"}],
                                                       "injectionStrategy": revision}})
    kruise.wait_sidecarset_observed("conf-revision")
    v2 = copy.deepcopy(v1)
    v2["spec"]["containers"][0]["image"] = "sidecar:v2"
    v2["spec"]["injectionStrategy"] = revision
    template = _template({"conf": "revision"}, [{"name": "app", "image": "app:1"}])
    kruise.apps.create_namespaced_deployment(kns, app_deployment("app", kns, template))
    kruise.apps.create_namespaced_deployment(ons, app_deployment("app", ons, template))
    results, proc = run_tasks([("sidecar_inject", {"sidecarsets": [write_yaml(tmp_path / "v2.yaml", v2)], "namespace": ons,
                                                   "workloads": ["Deployment/app"], "revision_namespace": "kruise-system"})],
                              kruise.env)
    assert not results[0].get("failed"), (results[0], proc.stdout[-3000:])
    pods = {side: wait_for(lambda n=ns: newest_pods(kruise, n, "app"), timeout=60, message=side)[0]
            for side, ns in (("kruise", kns), ("online", ons))}
    stored = kruise.get_sidecarset("conf-revision")
    history = [(r.metadata.name, r.revision) for r in kruise.apps.list_namespaced_controller_revision(
        "kruise-system", label_selector="kruise.io/sidecarset-name=conf-revision").items]
    for side, pod in pods.items():
        assert [(x["name"], x["image"]) for x in pod["spec"]["containers"]] == [("proxy", "sidecar:v1"), ("app", "app:1")], (
            side, pod["metadata"]["annotations"], stored["spec"].get("injectionStrategy"), stored.get("status"), history)
        entry = json.loads(pod["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["conf-revision"]
        assert entry["controllerRevision"] == rev1, side
    kruise_entry, our_entry = (json.loads(p["metadata"]["annotations"]["kruise.io/sidecarset-hash"])["conf-revision"]
                               for p in (pods["kruise"], pods["online"]))
    assert kruise_entry["hash"] == our_entry["hash"]
