"""Install into the Kruise reference control plane what kruise-manager expects, taken from the downloaded module's
config/ directory (never copied into this repository), and wait for it (tools/kruise/kruise.sh).

    python tools/kruise/install.py apply  --config <module>/config --kubeconfig K
    python tools/kruise/install.py wait   --kubeconfig K --health http://127.0.0.1:18000/readyz --timeout 120
    python tools/kruise/install.py render --config <module>/config      (print what apply would create, as YAML)
    python tools/kruise/install.py remove --kubeconfig K                 (delete both webhook configurations)

apply creates (or replaces):
  * Namespace kruise-system (the "Kruise namespace": ControllerRevisions of SidecarSets live there);
  * the 18 CRDs of config/crd/kustomization.yaml (see crds() for why all of them), with the conversion stanza of the
    config/crd/patches/webhook_in_<plural>.yaml patches it lists (sidecarsets: v1alpha1 served, v1beta1 stored);
    kruise-manager rewrites their clientConfig to https://$WEBHOOK_HOST:$WEBHOOK_PORT/convert;
  * kruise-mutating-webhook-configuration and kruise-validating-webhook-configuration: the webhooks of
    config/webhook/manifests.yaml named in WEBHOOKS only, patched with config/webhook/patch_manifests.yaml (the
    ``control-plane DoesNotExist`` namespaceSelector of mpod.kb.io), named with the ``kruise-`` prefix of
    config/default/kustomization.yaml. kruise-manager fills in the caBundle and the URL form (WEBHOOK_HOST).

remove deletes kruise-mutating-webhook-configuration and kruise-validating-webhook-configuration (as an uninstall of
Kruise does; without them no pod creation needs kruise-manager), and leaves the CRDs and their objects alone
(docs/kruise-migration.md).

wait polls until kruise-manager is ready: /readyz answers 200 (its webhook-ready check), both webhook configurations
carry a URL and a caBundle, the sidecarsets CRD converts through the webhook, and a dry-run pod CREATE in
namespace default goes through /mutate-pod.
"""

import argparse
import copy
import os
import sys
import time
import urllib.request

import yaml

# Every CRD of config/crd/kustomization.yaml, as Kruise's own install has them. Not only sidecarsets: kruise-manager
# has no flag to turn controllers off; it looks up each controller's kind by discovery and, for a kind that is
# missing, retries for ~16 s (pkg/util/discovery, backoff 0.5 s x5^n, 4 steps) before it skips that controller, so
# 17 missing CRDs delay the SidecarSet controller by minutes. Installed, they cost nothing: no objects, idle controllers.
WEBHOOKS = (
    "mpod.kb.io",            # /mutate-pod: pods CREATE, the SidecarSet injection
    "msidecarset.kb.io",     # /mutate-apps-kruise-io-sidecarset: defaults and both hash annotations
    "vsidecarset.kb.io",     # /validate-apps-kruise-io-sidecarset: Kruise's validation
)
NAMESPACE = "kruise-system"


def _docs(path):
    with open(path, encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def _kustomize(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def crds(config):
    kustomization = _kustomize(os.path.join(config, "crd", "kustomization.yaml"))
    patches = {}
    for patch in kustomization.get("patchesStrategicMerge") or ():
        (doc,) = _docs(os.path.join(config, "crd", patch))
        patches[doc["metadata"]["name"]] = doc
    out = []
    for resource in kustomization.get("resources") or ():
        (crd,) = _docs(os.path.join(config, "crd", resource))
        patch = patches.get(crd["metadata"]["name"])
        if patch and "conversion" in (patch.get("spec") or {}):
            # the webhook_in_<plural>.yaml patches: conversion through kruise-manager (clientConfig rewritten by it)
            crd["spec"]["conversion"] = copy.deepcopy(patch["spec"]["conversion"])
        out.append(crd)
    if not any(c["metadata"]["name"] == "sidecarsets.apps.kruise.io" for c in out):
        raise SystemExit("install.py: no sidecarsets CRD in config/crd/kustomization.yaml")
    return out


def webhook_configurations(config):
    prefix = _kustomize(os.path.join(config, "default", "kustomization.yaml")).get("namePrefix") or ""
    namespace = _kustomize(os.path.join(config, "webhook", "kustomization.yaml")).get("namespace") or NAMESPACE
    patches = {(d["kind"], d["metadata"]["name"]): d for d in _docs(os.path.join(config, "webhook", "patch_manifests.yaml"))}
    out = []
    for doc in _docs(os.path.join(config, "webhook", "manifests.yaml")):
        patch = patches.get((doc["kind"], doc["metadata"]["name"])) or {}
        patch_by_name = {w["name"]: w for w in patch.get("webhooks") or ()}
        webhooks = []
        for webhook in doc.get("webhooks") or ():
            if webhook["name"] not in WEBHOOKS:
                continue
            webhook = copy.deepcopy(webhook)
            for key, value in patch_by_name.get(webhook["name"], {}).items():
                if key != "name":
                    webhook[key] = copy.deepcopy(value)
            service = (webhook.get("clientConfig") or {}).get("service")
            if service:
                service["namespace"] = namespace
                service["name"] = prefix + service["name"]
            webhooks.append(webhook)
        out.append({"apiVersion": doc["apiVersion"], "kind": doc["kind"],
                    "metadata": {"name": prefix + doc["metadata"]["name"]}, "webhooks": webhooks})
    found = {w["name"] for d in out for w in d["webhooks"]}
    missing = set(WEBHOOKS) - found
    if missing:
        raise SystemExit("install.py: %s not in config/webhook/manifests.yaml" % ", ".join(sorted(missing)))
    return out


def _client(kubeconfig):
    """The repository's one raw client (tools/kubeclient.py); imported here: ``render`` needs no kubernetes client."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from kubeclient import KubeClient  # pylint: disable=import-outside-toplevel

    return KubeClient(kubeconfig, quiet_tls=True)  # kruise.sh's kubeconfig: 127.0.0.1, self-signed


def _create_or_replace(create, replace, read, name, body):
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    try:
        create(body)
        return "created"
    except ApiException as exc:
        if exc.status != 409:
            raise
    body = dict(body, metadata=dict(body["metadata"], resourceVersion=read(name).metadata.resource_version))
    replace(name, body)
    return "replaced"


def apply(config, kubeconfig):
    kube = _client(kubeconfig)
    kube.create_namespace(NAMESPACE, exist_ok=True)
    ext = kube.apiextensions
    for crd in crds(config):
        name = crd["metadata"]["name"]
        how = _create_or_replace(ext.create_custom_resource_definition, ext.replace_custom_resource_definition,
                                 ext.read_custom_resource_definition, name, crd)
        print("kruise: CRD %s %s" % (name, how))
    adm = kube.admissionregistration
    calls = {
        "MutatingWebhookConfiguration": (adm.create_mutating_webhook_configuration, adm.replace_mutating_webhook_configuration,
                                         adm.read_mutating_webhook_configuration),
        "ValidatingWebhookConfiguration": (adm.create_validating_webhook_configuration,
                                           adm.replace_validating_webhook_configuration, adm.read_validating_webhook_configuration),
    }
    for doc in webhook_configurations(config):
        create, replace, read = calls[doc["kind"]]
        how = _create_or_replace(create, replace, read, doc["metadata"]["name"], doc)
        print("kruise: %s %s (%s) %s" % (doc["kind"], doc["metadata"]["name"],
                                         ", ".join(w["name"] for w in doc["webhooks"]), how))
    for crd in crds(config):
        ext_wait(ext, crd["metadata"]["name"])


def ext_wait(ext, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or ())):
            return
        time.sleep(0.2)
    raise SystemExit("install.py: CRD %s not Established after %ss" % (name, timeout))


WEBHOOK_CONFIGURATIONS = ("kruise-mutating-webhook-configuration", "kruise-validating-webhook-configuration")


def remove(kubeconfig):
    """Delete both webhook configurations; print what was deleted; return how many were there."""
    adm = _client(kubeconfig).admissionregistration
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    found = 0
    for delete, name in ((adm.delete_mutating_webhook_configuration, WEBHOOK_CONFIGURATIONS[0]),
                         (adm.delete_validating_webhook_configuration, WEBHOOK_CONFIGURATIONS[1])):
        try:
            delete(name)
            found += 1
            print("kruise: deleted %s" % name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    return found


def _readyz(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (http://127.0.0.1 only)
            return resp.status == 200
    except Exception:  # pylint: disable=broad-except
        return False


def wait(kubeconfig, health, timeout):
    kube = _client(kubeconfig)
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    adm, ext, core = kube.admissionregistration, kube.apiextensions, kube.core
    deadline = time.monotonic() + timeout
    steps = []

    def configured():
        for read, name in ((adm.read_mutating_webhook_configuration, "kruise-mutating-webhook-configuration"),
                           (adm.read_validating_webhook_configuration, "kruise-validating-webhook-configuration")):
            obj = read(name)
            if not obj.webhooks or not all(w.client_config.url and w.client_config.ca_bundle for w in obj.webhooks):
                return False
        conv = ext.read_custom_resource_definition("sidecarsets.apps.kruise.io").spec.conversion
        return bool(conv and conv.webhook and conv.webhook.client_config.url and conv.webhook.client_config.ca_bundle)

    def pod_webhook():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "kruise-probe-", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "kruise-probe:none"}]}}
        try:
            core.create_namespaced_pod("default", pod, dry_run="All")
            return True
        except ApiException as exc:
            steps.append("dry-run pod: %s %s" % (exc.status, (exc.body or "")[:200]))
            return False

    for label, check in (("readyz", lambda: _readyz(health)), ("webhook configurations", configured),
                         ("pod webhook", pod_webhook)):
        while True:
            try:
                if check():
                    break
            except Exception as exc:  # pylint: disable=broad-except
                steps.append("%s: %s" % (label, exc))
            if time.monotonic() > deadline:
                raise SystemExit("install.py: kruise-manager not ready after %ss (%s); last: %s"
                                 % (timeout, label, steps[-1:] or "-"))
            time.sleep(0.25)
        print("kruise: %s ok" % label)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("apply", "wait", "render", "remove"))
    parser.add_argument("--config")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--health", default="http://127.0.0.1:18000/readyz")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    if args.action == "render":
        yaml.safe_dump_all(crds(args.config) + webhook_configurations(args.config), sys.stdout, sort_keys=False)
    elif args.action == "apply":
        apply(args.config, args.kubeconfig)
    elif args.action == "remove":
        remove(args.kubeconfig)
    else:
        wait(args.kubeconfig, args.health, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
