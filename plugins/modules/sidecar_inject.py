#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sidecar_inject
short_description: Inject OpenKruise SidecarSet sidecars into workload manifests
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Renders the sidecar containers of one or more OpenKruise SidecarSets into the pod templates of
    workload manifests, exactly as Kruise's pod webhook would inject them into pods, without Kruise.
  - SidecarSets are taken verbatim from Kruise YAML (C(apps.kruise.io/v1alpha1) or C(v1beta1)) or
    given as dictionaries; Kruise's defaults and validation are applied, plus checks Kruise lacks
    (HotUpgrade needs C(spec.containers[].upgradeStrategy.hotUpgradeEmptyImage), no HotUpgrade
    on plain init containers, no C(N-1)/C(N-2) name clash, unknown container keys).
  - A HotUpgrade sidecar C(N) becomes C(N-1) (working, real image) and C(N-2) (standby, empty image),
    both with C(SIDECARSET_VERSION) and C(SIDECARSET_VERSION_ALT) read through the downward API.
  - Offline mode works on files. Manifests come from O(src) (a file or a folder) or O(manifests)
    (inline); Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod, C(List) and
    multi-document YAML are understood, other kinds are passed through unchanged.
  - Online mode (when neither O(src) nor O(manifests) is given) injects into the pod templates of live
    workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) chosen by the SidecarSets'
    selectors, optionally limited to O(namespace) and to named O(workloads). A workload is written only when
    its template does not already carry the current injection; the write carries its resourceVersion. The
    workload's controller then recreates its pods (the module warns), except a StatefulSet or DaemonSet with
    C(updateStrategy.type=OnDelete), which uses the new template only for the pods it creates next; running pods
    are never modified, as Kubernetes forbids adding containers to them.
  - With O(only_on_delete), online mode writes only those OnDelete workloads and reports every other workload that
    needs a write C(skipped), with its kind and update strategy. This is the template refresh after a hot upgrade
    (docs/rollout.md, "Template drift and convergence").
  - Injecting twice gives the same result; injecting a changed SidecarSet updates what it injected
    earlier and nothing else.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  sidecarsets:
    description:
      - SidecarSets to inject. Each item is a path to a YAML file (one or more documents), a folder of
        such files, or a SidecarSet as a dictionary.
      - When several SidecarSets match one pod they are applied as Kruise applies them, those whose
        C(namespaceSelector) names one namespace (C(kubernetes.io/metadata.name), as v1alpha1 C(namespace) does)
        first, then the others, by name within each group.
    type: list
    elements: raw
    required: true
    aliases: [sidecarset]
  src:
    description:
      - A manifest file or a folder of manifests (C(*.yaml), C(*.yml), C(*.json), searched recursively).
      - Mutually exclusive with O(manifests).
    type: path
  manifests:
    description:
      - Inline manifests, as a list of dictionaries or as one YAML string (multi-document allowed).
      - Mutually exclusive with O(src).
    type: raw
  dest:
    description:
      - Where to write the injected manifests. With a folder O(src), a folder that receives the same
        relative file names; with a single file, a file path (or an existing folder, or a path ending in C(/)).
      - Writing is atomic and all-or-nothing; on any error no destination file is created or changed.
      - When omitted, nothing is written and the documents are returned in RV(documents).
    type: path
  namespace:
    description:
      - Online mode, the namespace of the workloads. By default every namespace the SidecarSets'
        C(namespaceSelector) selects (all namespaces when one has none).
    type: str
  workloads:
    description:
      - Online mode, limit the injection to these workloads, each C(KIND/NAME) (C(Deployment/test-app)) or a
        dictionary with C(kind) and C(name).
    type: list
    elements: raw
  kinds:
    description: Online mode, the workload kinds to look at.
    type: list
    elements: str
    choices: [Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob]
    default: [Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob]
  namespace_labels:
    description:
      - "Labels of the namespaces, used for SidecarSet C(namespaceSelector) offline, as
        C({namespace: {label: value}}). Every namespace also has the label
        C(kubernetes.io/metadata.name) set to its name (as the API server sets it; a value given here for that
        label is replaced by the name)."
    type: dict
    default: {}
  revisions:
    description:
      - ControllerRevisions of the SidecarSets, for C(spec.injectionStrategy.revision) (see docs/kruise-parity.md),
        as paths to YAML files or folders (for example the output of
        C(kubectl get controllerrevisions -n kruise-system -o yaml), a C(List) is understood) or dictionaries.
      - A SidecarSet that names a revision (C(revisionName), or C(customVersion), the newest revision labelled with
        it) injects that revision's containers, init containers, volumes, imagePullSecrets and patchPodMetadata,
        by its C(policy) (C(Always), or C(Partial) with C(updateStrategy.selector) and a percent C(partition)), as
        Kruise's pod webhook does. A named revision that is neither here nor in O(revision_namespace) fails the
        task, as it fails the pod's creation with Kruise.
    type: list
    elements: raw
    default: []
  revision_namespace:
    description:
      - Online mode, the namespace that keeps the SidecarSets' ControllerRevisions (Kruise keeps them in its own
        namespace, normally C(kruise-system)). The revisions labelled C(kruise.io/sidecarset-name=<name>) are read
        there, in addition to O(revisions).
    type: str
  record_revision:
    description:
      - Online mode, with O(revision_namespace), register the ControllerRevision of each SidecarSet's current spec
        there before injecting, as Kruise's controller does (same name, labels, annotations and data, so that Kruise
        reads them too). An equal newest revision is reused, an equal older one gets the next C(revision) number, else
        one is created. Its name goes into the pods' C(kruise.io/sidecarset-hash) as C(controllerRevision).
      - Revisions are never deleted (Kruise trims its history to C(revisionHistoryLimit)).
    type: bool
    default: false
  only_on_delete:
    description:
      - Online mode, write only the workloads whose controller recreates no pod when their pod template changes,
        the StatefulSets and DaemonSets with C(spec.updateStrategy.type=OnDelete). Their running pods keep running
        (hot-upgrade them with M(meshops.sidecarset.sidecar_upgrade)); the pods they create next (a deleted pod,
        a scale-up, a new node) start with the current sidecars.
      - "Every other workload whose template needs a write is not written and is reported C(skipped) with the
        reason, for example C(Deployment: strategy RollingUpdate: a template change recreates its pods). A missing
        update strategy is C(RollingUpdate), as the API server defaults it. Workloads already current stay
        C(unchanged)."
      - The strategy is the one of the object the write replaces (its resourceVersion), so a workload switched to
        C(RollingUpdate) meanwhile is re-read and skipped.
      - Set by C(playbooks/converge.yml) with C(converge_refresh_on_delete=true), for the drifted workloads only.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Offline, renders everything and writes nothing. Online, each write is sent with C(dryRun=All).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Offline, the text of each changed file before and after; online, each changed pod template.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
notes:
  - Kubernetes forbids adding containers to a running pod, so injection always works on pod templates
    (or pod manifests before they are created); the workload's controller then recreates its pods.
requirements:
  - python >= 3.11
  - PyYAML
  - kubernetes >= 24.2.0 (online mode)
seealso:
  - module: meshops.sidecarset.sidecar_upgrade
  - plugin: meshops.sidecarset.version_pair_env
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Inject the MOSN SidecarSet into every manifest of a folder
  meshops.sidecarset.sidecar_inject:
    sidecarsets:
      - examples/sidecarsets/mosn.yaml
    src: examples/manifests
    dest: out/

- name: Preview the injection of an inline SidecarSet into an inline Deployment
  meshops.sidecarset.sidecar_inject:
    sidecarsets:
      - metadata:
          name: log-agent
        spec:
          selector:
            matchLabels:
              app: web
          containers:
            - name: log-agent
              image: fluent/fluent-bit:3.0
    manifests:
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          selector:
            matchLabels:
              app: web
          template:
            metadata:
              labels:
                app: web
            spec:
              containers:
                - name: web
                  image: nginx:1.25
  register: preview

- name: A SidecarSet with a namespaceSelector, injected offline
  meshops.sidecarset.sidecar_inject:
    sidecarsets: [sidecarsets/envoy.yaml]
    src: manifests/
    dest: rendered/
    namespace_labels:
      shop:
        mesh: enabled

- name: Inject into the live test-app Deployment (its pods are recreated by the Deployment)
  meshops.sidecarset.sidecar_inject:
    sidecarsets: [examples/sidecarsets/mosn.yaml]
    namespace: default
    workloads: [Deployment/test-app]

- name: >-
    After a hot upgrade, refresh the templates of the OnDelete StatefulSets and DaemonSets of shop (no pod is
    recreated); Deployments and RollingUpdate workloads are reported skipped
  meshops.sidecarset.sidecar_inject:
    sidecarsets: [sidecarsets/mesh-v2.yaml]
    namespace: shop
    only_on_delete: true

- name: Keep our revisions of the mesh SidecarSet in the namespace mesh-history while injecting online
  meshops.sidecarset.sidecar_inject:
    sidecarsets: [sidecarsets/mesh.yaml]
    namespace: shop
    revision_namespace: mesh-history
    record_revision: true

- name: >-
    Inject a past revision offline (the SidecarSet has injectionStrategy.revision.revisionName: mesh-7c9d8f6b5),
    the ControllerRevisions exported with kubectl get controllerrevisions -n mesh-history -o yaml
  meshops.sidecarset.sidecar_inject:
    sidecarsets: [sidecarsets/mesh.yaml]
    revisions: [history/mesh-revisions.yaml]
    src: manifests/
    dest: rendered/
"""

RETURN = r"""
changed:
  description: Whether a document was (or, in check mode, would be) injected into and a file written.
  returned: always
  type: bool
results:
  description: One entry per manifest document.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: The file the document came from, or C(inline) (offline mode).
      type: str
    document:
      description: Index of the document in its file (C(List) items count as documents; offline mode).
      type: int
    kind:
      description: The document's kind.
      type: str
    name:
      description: The document's C(metadata.name).
      type: str
    namespace:
      description: The document's namespace (C(default) when unset).
      type: str
    status:
      description:
        - C(injected), C(unchanged) (already carries the current injection), C(skipped), or C(missing) (a named
          workload that does not exist).
        - With O(only_on_delete), also C(skipped) for a workload whose template needs a write that would recreate
          its pods.
      type: str
    reason:
      description:
        - Why a document was skipped or what was injected.
        - "With O(only_on_delete), names the kind and the update strategy, for example
          C(StatefulSet: updateStrategy RollingUpdate: a template change recreates its pods; only_on_delete writes
          only StatefulSets and DaemonSets with updateStrategy OnDelete)."
      type: str
  sample:
    - source: examples/manifests/test-app.yaml
      document: 0
      kind: Deployment
      name: test-app
      namespace: default
      status: injected
      reason: "injected SidecarSets: mosn"
documents:
  description: The documents after injection, when O(dest) is not set.
  returned: when dest is not set
  type: list
  elements: dict
files:
  description: Files written (or, in check mode, that would be written).
  returned: when dest is set
  type: list
  elements: str
  sample: [out/test-app.yaml]
sidecarsets:
  description: Names of the SidecarSets loaded, with their C(kruise.io/sidecarset-hash).
  returned: always
  type: dict
  sample: {"mosn": "2v7vv4w4..."}
revisions:
  description:
    - The ControllerRevision of each SidecarSet's current spec, by SidecarSet name, as Kruise's controller names and
      lays it out (save it to name this spec later in C(injectionStrategy.revision)); C(action) says what
      O(record_revision) wrote (C(create), C(bump) or C(none); C(computed) when nothing was recorded).
  returned: always
  type: dict
  sample: {"mosn": {"name": "mosn-5b7d9c8f6d", "action": "computed", "revision": {"kind": "ControllerRevision"}}}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError, ParameterError
from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import iter_documents
from ansible_collections.meshops.sidecarset.plugins.module_utils.modrunner import finish, k8s_argument_spec, report_warnings, run_guarded
from ansible_collections.meshops.sidecarset.plugins.module_utils.online import WORKLOAD_KINDS, inject_workloads, parse_workload_ref
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import select_namespaces
from ansible_collections.meshops.sidecarset.plugins.module_utils.offline import (
    collect_sources,
    files_needing_write,
    plan_destinations,
    read_text,
    render,
    write_atomically,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.revisions import (
    DEFAULT_NAMESPACE,
    SIDECARSET_NAME_LABEL,
    new_revision,
    plan_record,
    resolve,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import get_hash, load_sidecarsets, sidecarset_name

try:
    import yaml
except ImportError:  # pragma: no cover - AnsibleK8SModule reports it (check_pyyaml)
    pass

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.meshops.sidecarset.plugins.module_utils.client import client_from_module
except ImportError:  # pragma: no cover - online mode reports the missing library
    pass


def argument_spec():
    """The module's options."""
    return k8s_argument_spec(
        sidecarsets=dict(type="list", elements="raw", required=True, aliases=["sidecarset"]),
        src=dict(type="path"),
        manifests=dict(type="raw"),
        dest=dict(type="path"),
        namespace=dict(type="str"),
        workloads=dict(type="list", elements="raw"),
        kinds=dict(type="list", elements="str", choices=list(WORKLOAD_KINDS), default=list(WORKLOAD_KINDS)),
        namespace_labels=dict(type="dict", default={}),
        revisions=dict(type="list", elements="raw", default=[]),
        revision_namespace=dict(type="str"),
        record_revision=dict(type="bool", default=False),
        only_on_delete=dict(type="bool", default=False),
    )


def inline_sources(manifests):
    """Turn the ``manifests`` option into one ``(label, name, text)`` source."""
    if isinstance(manifests, str):
        text = manifests
    elif isinstance(manifests, dict):
        text = yaml.safe_dump(manifests, sort_keys=False)
    elif isinstance(manifests, list):
        text = yaml.safe_dump_all(manifests, sort_keys=False)
    else:
        raise ManifestError("manifests must be a list of documents or a YAML string", source="inline")
    return [("inline", "inline.yaml", text)]


def load_revisions(items):
    """The ControllerRevisions of the ``revisions`` option: dicts, or YAML files and folders read by
    ``manifests.iter_documents`` (``List`` expanded)."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            docs, source = (item.get("items") if item.get("kind") == "List" else [item]), "revisions"
        else:
            source = str(item)
            docs = [doc for path, dummy in collect_sources(source)
                    for doc in iter_documents(read_text(path), path, default_kind="ControllerRevision")]
        for revision in docs or []:
            if not isinstance(revision, dict) or revision.get("kind", "ControllerRevision") != "ControllerRevision" \
                    or not (revision.get("metadata") or {}).get("name"):
                raise ManifestError("revisions: expected ControllerRevision objects with a metadata.name", source=source)
            out.append(revision)
    return out


def prepare_revisions(module, sidecarsets, client=None):
    """Read (and with ``record_revision`` register) the ControllerRevisions, resolve ``injectionStrategy.revision``;
    return ``(sidecarsets to inject, revisions result)``."""
    params = module.params
    revisions = load_revisions(params["revisions"])
    namespace = params["revision_namespace"]
    report = {}
    prepared = []
    for sidecarset in sidecarsets:
        name = sidecarset_name(sidecarset)
        online = client is not None and bool(namespace)
        existing = client.list_controller_revisions(namespace, label_selector="%s=%s" % (SIDECARSET_NAME_LABEL, name)) if online else []
        if online and params["record_revision"]:
            action, revision = plan_record(sidecarset, existing, namespace)
            if action == "create":
                written = client.create_controller_revision(namespace, revision)
            elif action == "bump":
                written = client.replace_controller_revision(namespace, revision["metadata"]["name"], revision)
            else:
                written = revision
            existing = [r for r in existing if r["metadata"]["name"] != revision["metadata"]["name"]] + [written or revision]
            sidecarset = dict(sidecarset, status=dict(sidecarset.get("status") or {},
                                                      latestRevision=revision["metadata"]["name"]))
        else:
            action, revision = "computed", new_revision(sidecarset, namespace or DEFAULT_NAMESPACE, 1)
        report[name] = {"name": revision["metadata"]["name"], "action": action, "revision": revision}
        prepared.append(resolve(sidecarset, revisions + existing))
    return prepared, report


def run_online(module, sidecarsets, client):
    """Inject into live workloads; see DOCUMENTATION."""
    params = module.params
    try:
        refs = [parse_workload_ref(ref) for ref in params["workloads"] or []]
    except ValueError as exc:  # a bad workloads option: one message, not a traceback
        raise ParameterError(str(exc))
    if params["namespace"]:
        namespaces = [params["namespace"]]
    else:  # every namespace one of the SidecarSets' namespaceSelector selects (all for one without)
        every = client.list_namespaces()
        namespaces = sorted({name for ss in sidecarsets for name in select_namespaces(every, (ss.get("spec") or {}).get("namespaceSelector"))})
    try:
        results = inject_workloads(client, sidecarsets, namespaces, kinds=params["kinds"], names=refs,
                                   only_on_delete=params["only_on_delete"])
    finally:
        report_warnings(module, client)
    injected = [r for r in results if r["status"] == "injected"]
    recreated = [r for r in injected if not r.get("pods_kept")]
    if recreated:
        module.warn("Injection changes the pod template of %d workload(s) (%s); their controllers recreate their pods."
                    % (len(recreated), ", ".join("%s/%s/%s" % (r["namespace"], r["kind"], r["name"]) for r in recreated[:10])))
    result = dict(
        changed=bool(injected),
        results=[{k: v for k, v in r.items() if k not in ("before", "after", "pods_kept")} for r in results],
        sidecarsets={sidecarset_name(ss): get_hash(ss) for ss in sidecarsets},
    )
    if module._diff:
        result["diff"] = []
        for item in injected:
            header = "%s/%s/%s" % (item["namespace"], item["kind"], item["name"])
            result["diff"].append(dict(before_header=header, after_header=header, before=item["before"], after=item["after"]))
    missing = [r for r in results if r["status"] == "missing"]
    if missing:
        result["failed"] = True
        result["msg"] = "; ".join(r["reason"] for r in missing)
    return result


def run(module):
    """Load, render, then write (or return) the manifests; online mode when there is no src/manifests."""
    params = module.params
    sidecarsets = load_sidecarsets(params["sidecarsets"])
    if not params["src"] and params["manifests"] is None:
        if params["dest"]:
            raise ManifestError("dest needs src or manifests (offline mode)", source=params["dest"])
        module.requires("kubernetes")
        client = client_from_module(module)
        sidecarsets, revisions = prepare_revisions(module, sidecarsets, client)
        result = run_online(module, sidecarsets, client)
        result["revisions"] = revisions
        return result
    if params["revision_namespace"] or params["record_revision"]:
        raise ParameterError("revision_namespace and record_revision are online options (give revisions offline)")
    if params["only_on_delete"]:
        raise ParameterError("only_on_delete is an online option (it decides which live workloads are written)")
    sidecarsets, revisions = prepare_revisions(module, sidecarsets)
    if params["src"]:
        files = collect_sources(params["src"])
        sources = [(path, rel, read_text(path)) for path, rel in files]
    else:
        sources = inline_sources(params["manifests"])
    outputs, results = render(sources, sidecarsets, namespace_labels=params["namespace_labels"])
    result = dict(
        changed=False,
        results=results,
        sidecarsets={sidecarset_name(ss): get_hash(ss) for ss in sidecarsets},
        revisions=revisions,
    )
    if params["dest"]:
        src_is_dir = bool(params["src"]) and os.path.isdir(params["src"])
        files = plan_destinations(outputs, src_is_dir, params["dest"])
        pending = files_needing_write(files)
        result["files"] = [path for path, dummy in pending]
        result["changed"] = bool(pending)
        if module._diff:
            result["diff"] = [
                dict(before_header=path, after_header=path, before=read_text(path) if os.path.isfile(path) else "", after=text)
                for path, text in pending
            ]
        if pending and not module.check_mode:
            write_atomically(pending)
    else:
        documents = []
        for out in outputs:
            documents.extend(yaml.safe_load_all(out["after"]))
        result["documents"] = [doc for doc in documents if doc is not None]
        result["changed"] = any(out["changed"] for out in outputs)
        if module._diff:
            result["diff"] = [
                dict(before_header=out["source"], after_header=out["source"], before=out["before"], after=out["after"])
                for out in outputs if out["changed"]
            ]
    return result


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule,
        check_k8s=False,
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("src", "manifests"), ("dest", "namespace"), ("dest", "workloads")],
    )
    finish(module, run_guarded(module, run))


if __name__ == "__main__":
    main()
