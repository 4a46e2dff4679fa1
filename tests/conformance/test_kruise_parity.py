"""Issue 16 against the real kruise-manager v1.9.0: resourcesPolicy, the merge rules (volumes in order of first use,
a Before sidecar at index 0 next to a pod container named like another sidecar) and the ControllerRevision name.
Each case compares Kruise's pod with our online and offline pods (test_kruise_injection.check)."""

import copy

import pytest

from kruiseref import run_injection
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
    assert [v["name"] for v in result["pods"]["kruise"]["spec"]["volumes"]][:4] == ["pod-own", "vol-c", "vol-a", "vol-b"]
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
