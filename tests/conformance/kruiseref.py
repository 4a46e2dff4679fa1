"""Helpers of the Kruise conformance suite (docs/kruise-conformance.md): the reference cluster, cases, our modules.

The reference is the real kruise-manager (tools/kruise/kruise.sh) on a control plane of its own
(/tmp/kruise-cluster, https://127.0.0.1:18443), never the shared test cluster. The session fixture ``kruise``
reuses a running one (``kruise.sh status``), else starts it and stops it at the end of the session
(``KRUISE_KEEP=1`` keeps it). Without Go or the module proxy every case fails with kruise.sh's message (never a
silent skip: the suite is part of ``make test``).

Each case gets three namespaces of the same labels (``case`` fixture):
  * ``kruise``: Kruise's pod webhook injects there;
  * ``online``: labelled ``control-plane=meshops-conformance``, which the ``mpod.kb.io`` namespaceSelector of
    Kruise's own config/webhook/patch_manifests.yaml excludes: our online injection (sidecar_inject on a
    Deployment) creates the pods there;
  * ``offline``: the same exclusion; the Deployment our offline injection rendered is created there.
SidecarSets the case created are deleted after it.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import kubeclient  # noqa: E402  tools/kubeclient.py (tools/ on sys.path: the root conftest.py)
from modrun import ANSIBLE_PLAYBOOK, ansible_env  # noqa: E402  pylint: disable=wrong-import-position

KRUISE_SH = ROOT / "tools" / "kruise" / "kruise.sh"
CLUSTER_DIR = Path(os.environ.get("KRUISE_CLUSTER_DIR", "/tmp/kruise-cluster"))
OUT = ROOT / "out" / "conformance"
KRUISE_VERSION = os.environ.get("KRUISE_VERSION") or next(
    (line.split("=", 1)[1].strip() for line in (ROOT / "tools" / "kruise" / "versions.env").read_text().splitlines()
     if line.startswith("KRUISE_VERSION_DEFAULT=")), "?")
EXCLUDED = {"control-plane": "meshops-conformance"}

kubeclient.quiet_insecure_warnings()


RESULTS = []


def record(entry):
    """Keep one case's figures for out/conformance/results.json."""
    RESULTS.append(entry)


def wait_for(predicate, timeout=30.0, interval=0.2, message="condition"):
    """``kubeclient.wait_for`` failing the test on a timeout."""
    try:
        return kubeclient.wait_for(predicate, timeout, interval, message)
    except kubeclient.WaitTimeout as exc:
        pytest.fail(str(exc))


class Kruise(kubeclient.KubeClient):
    """The reference control plane with kruise-manager: a ``kubeclient.KubeClient`` and helpers."""

    GROUP = "apps.kruise.io"

    def __init__(self, kubeconfig, version):
        super().__init__(kubeconfig)
        self.version = version
        self.server_version = self.version_info.git_version

    # SidecarSets -----------------------------------------------------------------------------------
    def create_sidecarset(self, raw):
        version = raw["apiVersion"].split("/")[1]
        return self.custom.create_cluster_custom_object(self.GROUP, version, "sidecarsets", raw)

    def get_sidecarset(self, name, version="v1beta1"):
        return self.custom.get_cluster_custom_object(self.GROUP, version, "sidecarsets", name)

    def patch_sidecarset(self, name, patch, version="v1beta1"):
        return self.custom.patch_cluster_custom_object(self.GROUP, version, "sidecarsets", name, patch)

    def delete_sidecarset(self, name):
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

        try:
            self.custom.delete_cluster_custom_object(self.GROUP, "v1beta1", "sidecarsets", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def wait_sidecarset_observed(self, name, timeout=30):
        """Until the controller has reconciled the current generation (so the shared cache, which the pod webhook
        reads, has it too)."""
        def observed():
            obj = self.get_sidecarset(name)
            status = obj.get("status") or {}
            return obj if status.get("observedGeneration") == obj["metadata"]["generation"] else None
        return wait_for(observed, timeout=timeout, message="SidecarSet %s observed by Kruise's controller" % name)

    # pods ------------------------------------------------------------------------------------------
    def pods(self, namespace, selector=None):
        """The live pods as the client's models made plain (not ``KubeClient.pods``' raw JSON: fields the
        ``kubernetes`` client does not model stay out of the comparison, as they always have)."""
        items = self.plain(self.core.list_namespaced_pod(namespace, label_selector=selector).items)
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def kruise_sh(*args, timeout=3600):
    return subprocess.run([str(KRUISE_SH), *args], cwd=str(ROOT), capture_output=True, text=True, timeout=timeout, check=False)


class Case:
    """Three namespaces of one case (see the module docstring), and cleanup."""

    def __init__(self, kruise, slug, labels):
        self.kruise = kruise
        suffix = uuid.uuid4().hex[:5]
        self.labels = dict(labels)
        self.namespaces = {}
        for side in ("kruise", "online", "offline"):
            name = ("%s-%s-%s" % (slug[:40], side[:3], suffix)).strip("-")
            ns_labels = self.namespace_labels(side, with_name=False)
            self.namespaces[side] = kruise.create_namespace(name, labels=ns_labels)
        for name in self.namespaces.values():
            try:
                kruise.wait_default_service_account(name, timeout=30)
            except kubeclient.WaitTimeout as exc:
                pytest.fail(str(exc))
        self.sidecarsets = []

    def namespace_labels(self, side, with_name=True):
        """The labels of a side's namespace (also what our offline injection is told, ``namespace_labels``)."""
        labels = dict(self.labels)
        labels["meshops.io/conformance-side"] = "kruise" if side == "kruise" else "ours"
        if side != "kruise":
            labels.update(EXCLUDED)
        if with_name:
            labels["kubernetes.io/metadata.name"] = self.namespaces[side]
        return labels

    def cleanup(self):
        for name in self.sidecarsets:
            self.kruise.delete_sidecarset(name)
        for name in self.namespaces.values():
            try:
                self.kruise.core.delete_namespace(name)
            except Exception:  # pylint: disable=broad-except
                pass


def run_tasks(tasks, env, timeout=600):
    """Run our modules as tasks of one ansible-playbook run; return their registered results in order."""
    import tempfile  # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        play_tasks = []
        for index, (module, args) in enumerate(tasks):
            play_tasks.append({"name": "task %d %s" % (index, module), "meshops.sidecarset.%s" % module: args,
                               "register": "r%d" % index, "ignore_errors": True})
        play_tasks.append({"name": "dump", "ansible.builtin.copy": {
            "content": "{{ [%s] | to_json }}" % ", ".join("r%d" % i for i in range(len(tasks))), "dest": out}})
        path = os.path.join(tmp, "play.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": play_tasks}], handle)
        proc = subprocess.run([ANSIBLE_PLAYBOOK, path], cwd=str(ROOT), env=ansible_env(env), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if not os.path.exists(out):
            raise AssertionError("ansible-playbook did not run:\n" + proc.stdout + proc.stderr)
        with open(out, encoding="utf-8") as handle:
            return json.load(handle), proc


# ------------------------------------------------------------------------------------------------ injection cases
SIDE_LABEL = "meshops.io/conformance-side"


def scope_to(raw, side):
    """The Kruise copy of a SidecarSet, limited to the Kruise namespace of the case: a requirement
    ``meshops.io/conformance-side=<side>`` is added to its namespaceSelector (or becomes it). It keeps Kruise's
    controller away from our pods (it would count them, and upgrade them on an image change). Neither hash covers
    the namespaceSelector, and the webhook's namespace index (kubernetes.io/metadata.name) does not change. A v1alpha1
    ``spec.namespace`` already names one namespace and is left alone."""
    raw = json.loads(json.dumps(raw))
    spec = raw["spec"]
    if raw["apiVersion"].endswith("/v1alpha1") and spec.get("namespace"):
        return raw
    selector = spec.setdefault("namespaceSelector", {})
    selector.setdefault("matchExpressions", []).append({"key": SIDE_LABEL, "operator": "In", "values": [side]})
    return raw


def app_deployment(name, namespace, template, replicas=1):
    template = json.loads(json.dumps(template))
    template.setdefault("metadata", {}).setdefault("labels", {})["conformance-app"] = name
    template["spec"].setdefault("terminationGracePeriodSeconds", 1)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"conformance-app": name}}, "template": template}}


def newest_pods(kruise, namespace, name, replicas=1):
    """The pods of the newest ReplicaSet of Deployment ``name`` (once the Deployment has rolled out), by name."""
    dep = kruise.plain(kruise.apps.read_namespaced_deployment(name, namespace))
    status = dep.get("status") or {}
    if status.get("observedGeneration") != dep["metadata"]["generation"] or status.get("updatedReplicas") != replicas:
        return None
    sets = kruise.plain(kruise.apps.list_namespaced_replica_set(namespace, label_selector="conformance-app=" + name).items)
    if not sets:
        return None
    newest = max(sets, key=lambda rs: int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0")))
    pods = [p for p in kruise.pods(namespace, "conformance-app=" + name)
            if p["metadata"]["labels"].get("pod-template-hash") == newest["metadata"]["labels"].get("pod-template-hash")]
    return sorted(pods, key=lambda p: p["metadata"]["name"]) if len(pods) == replicas else None


def ready(pod):
    conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or ()}
    return (pod.get("status") or {}).get("phase") == "Running" and conditions.get("Ready") == "True"


def write_yaml(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump_all(data if isinstance(data, list) else [data], handle, sort_keys=False)
    return str(path)


def run_injection(kruise, case, sidecarsets, template, tmp_path, app="app", offline=True, replicas=1):
    """Apply the same SidecarSets and workload to Kruise and to us; return the three pods and our module results.

    ``sidecarsets``: a function of the namespace name -> [SidecarSet dicts] (so that a v1alpha1 ``namespace`` or a
    ``kubernetes.io/metadata.name`` selector can name each side's namespace). ``template``: the pod template.
    """
    kns, ons, ofs = case.namespaces["kruise"], case.namespaces["online"], case.namespaces["offline"]
    # Kruise: its SidecarSet webhooks default and hash, its controller observes, its pod webhook injects
    for raw in sidecarsets(kns):
        kruise.create_sidecarset(scope_to(raw, "kruise"))
        case.sidecarsets.append(raw["metadata"]["name"])
    stored = {name: kruise.wait_sidecarset_observed(name) for name in case.sidecarsets}
    kruise.apps.create_namespaced_deployment(kns, app_deployment(app, kns, template, replicas))
    # us: online (a plain Deployment, then sidecar_inject on it) and offline (the same manifest rendered)
    kruise.apps.create_namespaced_deployment(ons, app_deployment(app, ons, template, replicas))
    online_files = [write_yaml(tmp_path / ("online-%d.yaml" % i), raw) for i, raw in enumerate(sidecarsets(ons))]
    offline_files = [write_yaml(tmp_path / ("offline-%d.yaml" % i), raw) for i, raw in enumerate(sidecarsets(ofs))]
    tasks = [("sidecar_inject", {"sidecarsets": online_files, "namespace": ons, "workloads": ["Deployment/" + app]})]
    if offline:
        tasks.append(("sidecar_inject", {"sidecarsets": offline_files, "manifests": [app_deployment(app, ofs, template, replicas)],
                                         "namespace_labels": {ofs: case.namespace_labels("offline")}}))
    results, proc = run_tasks(tasks, kruise.env)
    for result in results:
        assert not result.get("failed"), (result, proc.stdout[-3000:])
    online = results[0]
    offline = results[1] if offline else None
    sides = [("kruise", kns), ("online", ons)]
    if offline:
        kruise.apps.create_namespaced_deployment(ofs, offline["documents"][0])
        sides.append(("offline", ofs))
    pods = {}
    for side, namespace in sides:
        pods[side] = wait_for(lambda n=namespace: newest_pods(kruise, n, app, replicas), timeout=60,
                              message="the %s pods of Deployment %s/%s" % (side, namespace, app))
    return {"pods": {side: found[0] for side, found in pods.items()}, "all_pods": pods, "online": online,
            "offline": offline, "stored": stored, "online_files": online_files}
