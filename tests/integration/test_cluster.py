"""The local control plane behaves like a real cluster: real kube-apiserver (K8S_VERSION) semantics
(strategic merge, 409, 422, RBAC) and kubelet-like pod status from the node simulator."""

import hashlib
import os
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubeclient import SMP

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------ helpers


def expected_image_id(image):
    slash, colon = image.rfind("/"), image.rfind(":")
    repo = image[:colon] if colon > slash else image
    return "docker-pullable://%s@sha256:%s" % (repo, hashlib.sha256(image.encode()).hexdigest())


def container(name, image, **extra):
    body = {"name": name, "image": image}
    body.update(extra)
    return body


def make_pod(name, containers, annotations=None, **spec):
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
        "spec": dict({"containers": containers, "terminationGracePeriodSeconds": 5}, **spec),
    }
    return body


def raw_pod(kube, ns, name):
    return kube.plain(kube.core.read_namespaced_pod(name, ns))


def statuses(pod):
    return {cs["name"]: cs for cs in pod.get("status", {}).get("containerStatuses") or []}


def condition(pod, ctype):
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond["type"] == ctype:
            return cond["status"]
    return None


def is_ready(pod):
    return pod.get("status", {}).get("phase") == "Running" and condition(pod, "Ready") == "True"


def wait_pod(kube, ns, name, predicate, timeout=15, message=None):
    def check():
        pod = raw_pod(kube, ns, name)
        return pod if predicate(pod) else None

    return kube.wait_for(check, timeout=timeout, message=message or "pod %s/%s" % (ns, name))


class PodRecorder:
    """Records every version of one pod seen by a watch (to assert on transient states)."""

    def __init__(self, kube, ns, name):
        self.kube, self.ns, self.name = kube, ns, name
        self.seen = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(5)

    def _run(self):
        self._started.set()
        try:
            for event in self._watch.stream(
                self.kube.core.list_namespaced_pod, self.ns, field_selector="metadata.name=" + self.name,
                timeout_seconds=60, deserialize=False,
            ):
                self.seen.append(event["object"])
        except Exception:  # pylint: disable=broad-except
            pass

    def stop(self):
        self._watch.stop()

    def reasons(self, cname):
        out = []
        for pod in self.seen:
            cs = statuses(pod).get(cname) or {}
            waiting = (cs.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") and (not out or out[-1] != waiting["reason"]):
                out.append(waiting["reason"])
        return out


def create_pod(kube, ns, body):
    kube.core.create_namespaced_pod(ns, body)
    return body["metadata"]["name"]


# ------------------------------------------------------------------------------ control plane


def _pinned_version():
    """K8S_VERSION of the environment, else the default pinned in tools/cluster/versions.env."""
    if os.environ.get("K8S_VERSION"):
        return os.environ["K8S_VERSION"]
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "cluster", "versions.env")
    with open(path, encoding="utf-8") as handle:
        return next(line.split("=", 1)[1].strip() for line in handle if line.startswith("K8S_VERSION_DEFAULT="))


def test_server_is_a_real_apiserver(kube):
    info = client.VersionApi(kube.api_client).get_code()
    assert info.major == "1"
    if kube.local:
        assert info.git_version == _pinned_version()
        assert kube.host.startswith("https://127.0.0.1:")
    resources = {r.name for r in kube.core.get_api_resources().resources}
    assert {"pods", "pods/status", "pods/binding"} <= resources


def test_simulated_nodes_are_registered(nodesim):
    nodes = nodesim.core.list_node(label_selector="nodesim.meshops.io/managed=true").items
    assert len(nodes) >= 3
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes}
    assert len(zones) == 3
    for node in nodes:
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"


def test_deployment_three_replicas_ready_fast(kube, namespace):
    labels = {"app": "web"}
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [
                    container("app", "nginx:1.20"),
                    container("mesh-proxy", "registry.local/mesh/proxy:1.0.0"),
                ]},
            },
        },
    }
    start = time.monotonic()
    kube.apps.create_namespaced_deployment(namespace, dep)

    def three_ready():
        pods = kube.plain(
            kube.core.list_namespaced_pod(namespace, label_selector="app=web"))["items"]
        ready = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
        return ready if len(ready) == 3 else None

    pods = kube.wait_for(three_ready, timeout=15, interval=0.1, message="3 Running, Ready pods")
    elapsed = time.monotonic() - start
    assert elapsed < 15
    print("3-replica deployment ready in %.2fs" % elapsed)
    if not kube.nodesim:
        return
    assert len({p["spec"]["nodeName"] for p in pods}) == 3  # spread over the three zones
    for pod in pods:
        st = pod["status"]
        assert st["hostIP"] and st["podIP"]
        # kubelet's order (pkg/kubelet/kubelet_pods.go generateAPIPodStatus), each with observedGeneration
        assert [c["type"] for c in st["conditions"] if c["status"] == "True"] == [
            "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        assert {c.get("observedGeneration") for c in st["conditions"]} == {pod["metadata"]["generation"]}
        assert st["observedGeneration"] == pod["metadata"]["generation"]
        for name, image in (("app", "nginx:1.20"), ("mesh-proxy", "registry.local/mesh/proxy:1.0.0")):
            cs = statuses(pod)[name]
            assert cs["image"] == image
            assert cs["imageID"] == expected_image_id(image)
            assert cs["containerID"].startswith("containerd://") and len(cs["containerID"]) == 13 + 64
            assert cs["restartCount"] == 0
            assert cs["ready"] is True and cs["started"] is True
            assert cs["state"]["running"]["startedAt"]


def test_in_place_image_change_restarts_only_that_container(nodesim, namespace):
    kube = nodesim
    post_start = {"postStart": {"exec": {"command": ["/bin/sh", "-c", "wait-for-proxy"]}}}
    body = make_pod("hot", [
        container("app", "nginx:1.20"),
        container("mesh-proxy", "registry.local/mesh/proxy:1.0.0", lifecycle=post_start),
    ], annotations={"nodesim.meshops.io/mesh-proxy.pull-delay": "400ms",
                    "nodesim.meshops.io/mesh-proxy.post-start-duration": "400ms"})
    create_pod(kube, namespace, body)
    before = wait_pod(kube, namespace, "hot", is_ready)
    old = statuses(before)

    recorder = PodRecorder(kube, namespace, "hot")
    new_image = "registry.local/mesh/proxy:1.1.0"
    kube.core.patch_namespaced_pod(
        "hot", namespace, {"spec": {"containers": [{"name": "mesh-proxy", "image": new_image}]}}, _content_type=SMP)

    def upgraded(pod):
        cs = statuses(pod)["mesh-proxy"]
        return cs["image"] == new_image and cs["ready"] and is_ready(pod)

    after = wait_pod(kube, namespace, "hot", upgraded, timeout=10)
    time.sleep(0.3)
    recorder.stop()
    new = statuses(after)

    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["name"] == "hot"
    assert new["mesh-proxy"]["restartCount"] == 1
    assert new["mesh-proxy"]["imageID"] == expected_image_id(new_image) != old["mesh-proxy"]["imageID"]
    assert new["mesh-proxy"]["containerID"] != old["mesh-proxy"]["containerID"]
    assert new["mesh-proxy"]["lastState"]["terminated"]["containerID"] == old["mesh-proxy"]["containerID"]
    assert new["app"]["restartCount"] == 0
    assert new["app"]["containerID"] == old["app"]["containerID"]
    assert new["app"]["state"]["running"]["startedAt"] == old["app"]["state"]["running"]["startedAt"]

    # transient states, as kubelet reports them: the proxy waits (pull, then postStart) and is not
    # running/started before its postStart hook completed; meanwhile the pod is not Ready.
    during = [p for p in recorder.seen if statuses(p).get("mesh-proxy", {}).get("image") == new_image
              and not statuses(p)["mesh-proxy"]["ready"]]
    assert during, "no intermediate status was observed"
    assert all(condition(p, "Ready") == "False" for p in during)
    waiting = [p for p in during if statuses(p)["mesh-proxy"]["state"].get("waiting")]
    assert waiting and all(not statuses(p)["mesh-proxy"]["started"] for p in waiting)
    assert any("postStart" in (statuses(p)["mesh-proxy"]["state"]["waiting"].get("message") or "") for p in waiting)
    assert all(statuses(p)["app"]["ready"] for p in during)


def test_apiserver_rejects_env_change_on_running_pod(kube, namespace):
    create_pod(kube, namespace, make_pod("env", [container("app", "nginx:1.20", env=[{"name": "A", "value": "1"}])]))
    if kube.nodesim:
        wait_pod(kube, namespace, "env", is_ready)
    with pytest.raises(ApiException) as err:
        kube.core.patch_namespaced_pod(
            "env", namespace,
            {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "2"}]}]}}, _content_type=SMP)
    assert err.value.status == 422
    assert "Forbidden: pod updates may not change fields other than" in err.value.body


def test_apiserver_rejects_stale_resource_version(kube, namespace):
    create_pod(kube, namespace, make_pod("rv", [container("app", "nginx:1.20")]))
    stale = kube.core.read_namespaced_pod("rv", namespace).metadata.resource_version
    kube.core.patch_namespaced_pod("rv", namespace, {"metadata": {"labels": {"bump": "1"}}}, _content_type=SMP)
    with pytest.raises(ApiException) as err:
        kube.core.patch_namespaced_pod(
            "rv", namespace,
            {"metadata": {"resourceVersion": stale, "labels": {"bump": "2"}}}, _content_type=SMP)
    assert err.value.status == 409
    assert kube.core.read_namespaced_pod("rv", namespace).metadata.labels["bump"] == "1"


# ------------------------------------------------------------------------------ failure modes


def test_failure_image_pull(nodesim, namespace):
    kube = nodesim
    create_pod(kube, namespace, make_pod("pull", [container("app", "nginx:1.20"),
                                                  container("proxy", "registry.local/mesh/proxy:broken")]))
    recorder = PodRecorder(kube, namespace, "pull")

    def backoff(pod):
        waiting = statuses(pod).get("proxy", {}).get("state", {}).get("waiting") or {}
        return waiting.get("reason") == "ImagePullBackOff"

    pod = wait_pod(kube, namespace, "pull", backoff, timeout=10)
    time.sleep(0.5)
    recorder.stop()
    cs = statuses(pod)["proxy"]
    assert cs["ready"] is False and cs["started"] is False and cs["restartCount"] == 0
    assert cs["imageID"] == ""
    assert pod["status"]["phase"] == "Pending"
    assert condition(pod, "Ready") == "False"
    assert statuses(pod)["app"]["ready"] is True
    reasons = recorder.reasons("proxy")
    assert "ErrImagePull" in reasons and "ImagePullBackOff" in reasons
    assert reasons.index("ErrImagePull") < reasons.index("ImagePullBackOff")
    assert not any((statuses(p).get("proxy") or {}).get("state", {}).get("running") for p in recorder.seen)


def test_failure_post_start_hook(nodesim, namespace):
    kube = nodesim
    hook = {"postStart": {"exec": {"command": ["/bin/sh", "-c", "exit 1"]}}}
    create_pod(kube, namespace, make_pod(
        "hook", [container("app", "nginx:1.20"), container("proxy", "registry.local/mesh/proxy:1.0.0", lifecycle=hook)],
        annotations={"nodesim.meshops.io/proxy.post-start-failure": "true"}))
    recorder = PodRecorder(kube, namespace, "hook")
    pod = wait_pod(kube, namespace, "hook", lambda p: statuses(p).get("proxy", {}).get("restartCount", 0) >= 2,
                   timeout=15, message="two postStart failures")
    recorder.stop()
    cs = statuses(pod)["proxy"]
    assert cs["ready"] is False
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    reasons = recorder.reasons("proxy")
    assert "PostStartHookError" in reasons and "CrashLoopBackOff" in reasons
    assert not any((statuses(p).get("proxy") or {}).get("state", {}).get("running") for p in recorder.seen)
    events = kube.core.list_namespaced_event(namespace, field_selector="involvedObject.name=hook").items
    assert "FailedPostStartHook" in {e.reason for e in events}


def test_failure_never_ready(nodesim, namespace):
    kube = nodesim
    create_pod(kube, namespace, make_pod(
        "nr", [container("app", "nginx:1.20"), container("proxy", "registry.local/mesh/proxy:1.0.0")],
        annotations={"nodesim.meshops.io/proxy.never-ready": "true"}))
    pod = wait_pod(kube, namespace, "nr", lambda p: statuses(p).get("proxy", {}).get("state", {}).get("running"))
    time.sleep(1.0)
    pod = raw_pod(kube, namespace, "nr")
    cs = statuses(pod)["proxy"]
    assert pod["status"]["phase"] == "Running"
    assert cs["started"] is True and cs["ready"] is False and cs["restartCount"] == 0
    assert statuses(pod)["app"]["ready"] is True
    assert condition(pod, "ContainersReady") == "False" and condition(pod, "Ready") == "False"


def test_failure_crash_after_start(nodesim, namespace):
    kube = nodesim
    create_pod(kube, namespace, make_pod(
        "crash", [container("app", "nginx:1.20"), container("proxy", "registry.local/mesh/proxy:1.0.0")],
        annotations={"nodesim.meshops.io/proxy.crash-after": "300ms", "nodesim.meshops.io/proxy.exit-code": "2"}))
    recorder = PodRecorder(kube, namespace, "crash")
    pod = wait_pod(kube, namespace, "crash", lambda p: statuses(p).get("proxy", {}).get("restartCount", 0) >= 2,
                   timeout=15, message="two crashes")
    recorder.stop()
    cs = statuses(pod)["proxy"]
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert "CrashLoopBackOff" in recorder.reasons("proxy")
    assert any((statuses(p).get("proxy") or {}).get("state", {}).get("running") for p in recorder.seen)
    assert pod["status"]["phase"] == "Running"
    assert statuses(pod)["app"]["restartCount"] == 0


def test_image_pattern_rules_apply_to_in_place_change(nodesim, namespace):
    """A running sidecar changed in place to an image that cannot be pulled never runs again."""
    kube = nodesim
    create_pod(kube, namespace, make_pod("bad", [container("app", "nginx:1.20"),
                                                 container("proxy", "registry.local/mesh/proxy:1.0.0")]))
    wait_pod(kube, namespace, "bad", is_ready)
    kube.core.patch_namespaced_pod(
        "bad", namespace, {"spec": {"containers": [{"name": "proxy", "image": "registry.local/mesh/proxy:broken"}]}},
        _content_type=SMP)

    def backoff(pod):
        waiting = statuses(pod).get("proxy", {}).get("state", {}).get("waiting") or {}
        return waiting.get("reason") == "ImagePullBackOff"

    pod = wait_pod(kube, namespace, "bad", backoff, timeout=10)
    cs = statuses(pod)["proxy"]
    # as kubelet v1.36 reports it (docs/real-nodes.md): the old instance's image, imageID and restartCount until
    # a new instance is created, the failing pull in state.waiting, the old instance in lastState
    assert cs["restartCount"] == 0 and cs["ready"] is False
    assert cs["image"] == "registry.local/mesh/proxy:1.0.0" and cs["imageID"].endswith(
        hashlib.sha256(b"registry.local/mesh/proxy:1.0.0").hexdigest())
    assert "registry.local/mesh/proxy:broken" in cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["reason"] == "Completed"
    assert pod["status"]["phase"] == "Running"  # the old instance ran: kubelet keeps the pod Running
    assert condition(pod, "Ready") == "False"


# ------------------------------------------------------------------------------ controllers


def test_statefulset_and_daemonset_get_running_pods(nodesim, namespace):
    kube = nodesim

    def tmpl(labels):
        return {"metadata": {"labels": labels}, "spec": {"containers": [container("app", "nginx:1.20")]}}

    kube.apps.create_namespaced_stateful_set(namespace, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": tmpl({"app": "db"})}})
    kube.apps.create_namespaced_daemon_set(namespace, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": tmpl({"app": "agent"})}})
    nodes = len(kube.core.list_node(label_selector="nodesim.meshops.io/managed=true").items)

    def ready(selector, count):
        def check():
            pods = kube.plain(
                kube.core.list_namespaced_pod(namespace, label_selector=selector))["items"]
            return len([p for p in pods if is_ready(p)]) == count
        return check

    kube.wait_for(ready("app=db", 2), timeout=20, message="2 StatefulSet pods ready")
    kube.wait_for(ready("app=agent", nodes), timeout=20, message="one DaemonSet pod per node")
    pods = kube.core.list_namespaced_pod(namespace, label_selector="app=agent").items
    assert len({p.spec.node_name for p in pods}) == nodes


def test_pod_deletion_is_finalised(nodesim, namespace):
    kube = nodesim
    create_pod(kube, namespace, make_pod("gone", [container("app", "nginx:1.20")]))
    wait_pod(kube, namespace, "gone", is_ready)
    kube.core.delete_namespaced_pod("gone", namespace)  # graceful (terminationGracePeriodSeconds 5)

    def gone():
        try:
            kube.core.read_namespaced_pod("gone", namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    start = time.monotonic()
    kube.wait_for(gone, timeout=10, message="pod deletion")
    assert time.monotonic() - start < 5


# ------------------------------------------------------------------------------ least privilege


def test_least_privilege_token(kube, least_privilege, namespace):
    lp = least_privilege
    create_pod(kube, namespace, make_pod("lp", [container("app", "nginx:1.20")]))
    kube.apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "lpdep"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "lpdep"}},
                 "template": {"metadata": {"labels": {"app": "lpdep"}},
                              "spec": {"containers": [container("app", "nginx:1.20")]}}}})
    # allowed: read, list, patch pods and workloads, read namespaces, create events
    assert lp.core.read_namespaced_pod("lp", namespace).metadata.name == "lp"
    assert [p.metadata.name for p in lp.core.list_namespaced_pod(namespace).items] == ["lp"]
    patched = lp.core.patch_namespaced_pod(
        "lp", namespace, {"spec": {"containers": [{"name": "app", "image": "nginx:1.21"}]}}, _content_type=SMP)
    assert patched.spec.containers[0].image == "nginx:1.21"
    lp.apps.patch_namespaced_deployment(
        "lpdep", namespace, {"metadata": {"annotations": {"meshops.io/touched": "yes"}}}, _content_type=SMP)
    lp.core.read_namespace(namespace)
    lp.core.create_namespaced_event(namespace, {
        "metadata": {"name": "lp.test"}, "involvedObject": {"kind": "Pod", "name": "lp", "namespace": namespace},
        "reason": "Test", "message": "least privilege", "type": "Normal"})

    # forbidden: everything else
    forbidden = [
        lambda: lp.core.delete_namespace(namespace),
        lambda: lp.core.list_namespaced_secret(namespace),
        lambda: lp.core.read_namespaced_secret(lp.service_account + "-token", lp.namespace),
        lambda: lp.core.delete_namespaced_pod("lp", namespace),
        lambda: lp.core.create_namespaced_pod(namespace, make_pod("x", [container("app", "nginx:1.20")])),
        lambda: lp.apps.delete_namespaced_deployment("lpdep", namespace),
        lp.core.list_node,
        lambda: lp.core.list_namespaced_config_map(namespace),
    ]
    for call in forbidden:
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403, err.value
    assert kube.core.read_namespace(namespace).status.phase == "Active"


def test_least_privilege_namespaced_role(kube, least_privilege_ns, namespace):
    lp = least_privilege_ns
    create_pod(kube, namespace, make_pod("lpn", [container("app", "nginx:1.20")]))
    lp.core.patch_namespaced_pod("lpn", namespace, {"metadata": {"labels": {"x": "y"}}}, _content_type=SMP)
    with pytest.raises(ApiException) as err:
        lp.core.list_namespaced_pod("default")
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        lp.core.list_namespaced_secret(namespace)
    assert err.value.status == 403
