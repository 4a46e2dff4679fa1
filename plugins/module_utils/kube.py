# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where meshops.sidecarset talks to Kubernetes.

Contract:
- ``KubeClient(api_client)`` wraps a ``kubernetes.client.ApiClient`` (from kubernetes.core's
  ``get_api_client`` in modules, or built from a kubeconfig in tests) and speaks raw JSON: objects are
  plain dicts, never client models (faster, and the engine works on dicts).
- Every request is counted in ``KubeClient.requests`` (per verb), so callers can report API cost.
- Errors are ``KubeError`` with ``status`` (HTTP code) and the API server's message.
- The API server's ``Warning`` headers (deprecated fields, unknown fields under ``fieldValidation=Warn``, ...)
  are collected once each in ``KubeClient.warnings``; the module shell hands them to ``module.warn``. Workload
  writes ask for ``fieldValidation=Strict``: a field the server does not know fails the write instead of being
  dropped silently.
- ``read_modify_write`` does optimistic concurrency: the write carries the ``resourceVersion`` it was
  computed from, a 409 makes it re-read and recompute; nothing written by others is lost.
- ``PodWatch`` keeps a live cache of the pods of one namespace (one LIST from the API server's watch cache, then
  one WATCH stream from that version, in a background thread) and lets callers wait for predicates without
  polling each pod.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import threading
import time
from urllib.parse import quote

try:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.watch.watch import iter_resp_lines
except ImportError:  # pragma: no cover - reported by the modules
    pass

from ansible_collections.meshops.sidecarset.plugins.module_utils.kinds import WORKLOAD_KINDS, api_prefix, kind_info
from ansible_collections.meshops.sidecarset.plugins.module_utils.transport import TRANSPORT_ERRORS, unreachable_message

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class KubeError(Exception):
    """An API error: ``status`` is the HTTP code (0 for transport errors), ``reason`` the API reason."""

    def __init__(self, status, message, reason=None):
        super(KubeError, self).__init__("HTTP %s: %s" % (status, message) if status else message)
        self.status = status
        self.reason = reason
        self.message = message


def parse_warning(value):
    """The text of one ``Warning`` header value (RFC 7234: ``299 - "text"``); other forms are returned as they are."""
    if not value:
        return None
    value = value.strip()
    if value[:4] in ("299 ", "199 ") and '"' in value:
        text = value.split('"', 1)[1]
        return text[:-1] if text.endswith('"') else text.rsplit('"', 1)[0]
    return value


def _api_error(status, raw):
    try:
        body = json.loads(raw)
        return KubeError(status, body.get("message") or raw, body.get("reason"))
    except (ValueError, AttributeError, TypeError):
        return KubeError(status, raw if isinstance(raw, str) else (raw or b"").decode("utf-8", "replace"))


def _named(path, name):
    """The path of the object ``name`` in the collection ``path`` (the collection itself without a name)."""
    return path + "/" + quote(name, safe="") if name else path


class KubeClient:
    """Raw-JSON access to the API server through a ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client, dry_run=False):
        self.api = api_client
        self.dry_run = dry_run
        self.requests = {}
        self.warnings = []
        self._lock = threading.Lock()

    def _count(self, verb):
        with self._lock:
            self.requests[verb] = self.requests.get(verb, 0) + 1

    @property
    def request_count(self):
        """Total number of API requests made so far."""
        return sum(self.requests.values())

    def request(self, method, path, query=None, body=None, content_type=None, timeout=None, verb=None):
        """Send one request; return the decoded JSON body. Raises ``KubeError``."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        query = list(query or [])
        if self.dry_run and method in ("POST", "PUT", "PATCH", "DELETE"):
            query.append(("dryRun", "All"))
        self._count(verb or method.lower())
        try:
            req = self.api.param_serialize(method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"])
            resp = self.api.call_api(*req, _request_timeout=timeout)
            raw = resp.read()
        except ApiException as exc:
            raise _api_error(exc.status or 0, exc.body or str(exc))
        # no HTTP answer (urllib3, OS); anything else is a bug and propagates
        except TRANSPORT_ERRORS as exc:  # pylint: disable=catching-non-exception
            raise KubeError(0, unreachable_message(getattr(getattr(self.api, "configuration", None), "host", None), exc))
        self._collect_warnings(resp)
        if not 200 <= resp.status <= 299:
            raise _api_error(resp.status, raw)
        return json.loads(raw) if raw else {}

    def _collect_warnings(self, resp):
        headers = getattr(resp, "headers", None) or getattr(getattr(resp, "response", None), "headers", None)
        if not headers:
            return
        getall = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
        values = getall("Warning") if getall else [headers.get("Warning")]
        for value in values or ():
            text = parse_warning(value)
            if text:
                with self._lock:
                    if text not in self.warnings:
                        self.warnings.append(text)

    # pods ------------------------------------------------------------------------------------
    @staticmethod
    def pod_path(namespace, name=None):
        return _named("/api/v1/namespaces/%s/pods" % quote(namespace, safe=""), name)

    def list_pods(self, namespace=None, label_selector=None, field_selector=None, from_cache=False):
        """Return ``(pods, resourceVersion)``; ``namespace=None`` lists every namespace.

        ``from_cache=True`` asks for ``resourceVersion=0``: the API server answers from its watch cache instead of a
        quorum read of etcd (much cheaper for big namespaces), possibly a little behind; right for the start of a
        watch, which then delivers every change after that version.
        """
        path = self.pod_path(namespace) if namespace else "/api/v1/pods"
        query = [("resourceVersion", "0")] if from_cache else []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        body = self.request("GET", path, query=query, verb="list")
        return body.get("items") or [], (body.get("metadata") or {}).get("resourceVersion")

    def get_pod(self, namespace, name):
        return self.request("GET", self.pod_path(namespace, name), verb="get")

    def patch_pod(self, namespace, name, body, content_type=STRATEGIC_MERGE):
        return self.request("PATCH", self.pod_path(namespace, name), body=body, content_type=content_type, verb="patch")

    # namespaces ------------------------------------------------------------------------------
    def _items(self, path, label_selector=None):
        """The ``items`` of a LIST of ``path``."""
        query = [("labelSelector", label_selector)] if label_selector else []
        return self.request("GET", path, query=query, verb="list").get("items") or []

    def list_namespaces(self, label_selector=None):
        return self._items("/api/v1/namespaces", label_selector)

    def get_namespace(self, name):
        return self.request("GET", "/api/v1/namespaces/" + quote(name, safe=""), verb="get")

    # workloads -------------------------------------------------------------------------------
    @staticmethod
    def workload_path(kind, namespace, name=None):
        if kind not in WORKLOAD_KINDS:
            raise KubeError(0, "unsupported workload kind %r (supported: %s)" % (kind, ", ".join(WORKLOAD_KINDS)))
        prefix, plural = api_prefix(kind), kind_info(kind).plural
        return _named("%s/namespaces/%s/%s" % (prefix, quote(namespace, safe=""), plural), name)

    def list_workloads(self, kind, namespace, label_selector=None):
        return self._items(self.workload_path(kind, namespace), label_selector)

    def get_workload(self, kind, namespace, name):
        return self.request("GET", self.workload_path(kind, namespace, name), verb="get")

    def replace_workload(self, kind, namespace, name, obj):
        return self.request("PUT", self.workload_path(kind, namespace, name), query=[("fieldValidation", "Strict")],
                            body=obj, verb="update")

    # controllerrevisions (SidecarSet history, revisions.py) ---------------------------------
    @staticmethod
    def revision_path(namespace, name=None):
        return _named("/apis/apps/v1/namespaces/%s/controllerrevisions" % quote(namespace, safe=""), name)

    def list_controller_revisions(self, namespace, label_selector=None):
        return self._items(self.revision_path(namespace), label_selector)

    def create_controller_revision(self, namespace, body):
        return self.request("POST", self.revision_path(namespace), body=body, verb="create")

    def replace_controller_revision(self, namespace, name, body):
        return self.request("PUT", self.revision_path(namespace, name), body=body, verb="update")

    # watch -----------------------------------------------------------------------------------
    def watch_pods(self, namespace, resource_version, label_selector=None, timeout_seconds=60):
        """Yield ``(type, object)`` watch events until the server closes the stream."""
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(int(timeout_seconds)))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        path = self.pod_path(namespace) if namespace else "/api/v1/pods"
        self._count("watch")
        try:
            req = self.api.param_serialize("GET", path, query_params=query, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
            resp = self.api.call_api(*req, _request_timeout=(10, timeout_seconds + 10))
        except ApiException as exc:
            raise _api_error(exc.status or 0, exc.body or str(exc))
        except Exception as exc:
            raise KubeError(0, "watch %s failed: %s" % (path, exc))
        if not 200 <= resp.status <= 299:
            raise _api_error(resp.status, resp.read())
        raw_resp = resp.response
        try:
            for line in iter_resp_lines(raw_resp):
                if not line:
                    continue
                event = json.loads(line)
                yield event.get("type"), event.get("object") or {}
        # a stream cut in the middle (connection reset, proxy or API server gone, read timeout): a KubeError, so that
        # PodWatch re-watches from its last resourceVersion instead of its thread dying with urllib3's ProtocolError
        except TRANSPORT_ERRORS as exc:  # pylint: disable=catching-non-exception
            raise KubeError(0, "watch %s interrupted: %s" % (path, unreachable_message(
                getattr(getattr(self.api, "configuration", None), "host", None), exc)))
        finally:
            raw_resp.release_conn()


TRANSIENT_STATUSES = (0, 429, 500, 502, 503, 504)


def is_transient(exc):
    """A failure worth retrying: no HTTP answer (connection refused or cut, API server restarting), throttling
    (429) or a 5xx of an overloaded or restarting server."""
    return isinstance(exc, KubeError) and exc.status in TRANSIENT_STATUSES


def backoff_delays(total=30.0, first=0.25, cap=4.0):
    """Delays for retrying transient failures: doubling from ``first``, at most ``cap`` each, ``total`` s in all."""
    delays, delay, spent = [], first, 0.0
    while spent + delay <= total:
        delays.append(delay)
        spent += delay
        delay = min(cap, delay * 2)
    return delays


def read_modify_write(client, namespace, name, compute_patch, pod=None, retries=8, transient=None, sleep=time.sleep):
    """Optimistic read-modify-write of one pod.

    ``compute_patch(pod)`` returns a patch body (dict, without resourceVersion) or ``None`` for "no
    write needed". The patch is sent as a strategic merge patch carrying the pod's
    ``metadata.resourceVersion``; on 409 the pod is read again and ``compute_patch`` called again.
    ``pod`` may be a recent copy to save the first GET. Returns ``(pod_after, wrote, attempts)``.

    Transient failures (``is_transient``) of the GET or the PATCH are retried after the delays of ``transient``
    (default ``backoff_delays()``: about 30 s in all), then re-raised. Retrying is safe because every write
    carries the resourceVersion it was computed from: if a lost answer hid a write that did land, the retry gets
    409, re-reads the pod and re-plans from what is stored, so nothing is applied twice (versions are bumped
    once).
    """
    attempts = 0
    waits = list(backoff_delays() if transient is None else transient)
    while True:
        try:
            if pod is None:
                pod = client.get_pod(namespace, name)
            body = compute_patch(pod)
            if body is None:
                return pod, False, attempts
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["resourceVersion"] = pod["metadata"]["resourceVersion"]
            attempts += 1
            return client.patch_pod(namespace, name, body), True, attempts
        except KubeError as exc:
            if exc.status == 409 and attempts <= retries:
                pod = None
                continue
            if is_transient(exc) and waits:
                sleep(waits.pop(0))
                pod = None
                continue
            raise


class PodWatch:
    """A live cache of the pods in one namespace (optionally one label selector).

    ``start()`` LISTs once, then a background thread WATCHes from that resourceVersion and keeps
    ``pods`` (name -> pod) current; it re-lists when the watch expires (410). Every change bumps ``changes``,
    notifies the condition and marks the pod dirty (``take_dirty``). ``update(pod)`` lets writers feed the
    responses of their own writes in, so waiting never needs an extra GET.
    """

    def __init__(self, client, namespace, label_selector=None, condition=None):
        self.client = client
        self.namespace = namespace
        self.label_selector = label_selector
        self.pods = {}
        self.resource_version = None
        self.error = None        # the last failure of the watch, ``None`` once it works again
        self.failing_since = None
        self.changes = 0
        self.dirty = set()
        self._cond = condition or threading.Condition()  # watches of one run may share one (upgrade.py)
        self._stop = threading.Event()
        self._thread = None

    def start(self, transient=None, sleep=time.sleep):
        """LIST the pods, then watch from that version in a background thread. A transient failure of the LIST
        (``is_transient``: e.g. a 429 burst longer than urllib3's three Retry-After retries) is retried after the
        delays of ``transient`` (default ``backoff_delays()``), then re-raised: a read is always safe to retry."""
        waits = list(backoff_delays() if transient is None else transient)
        while True:
            try:
                self._relist()
                break
            except KubeError as exc:
                if not (is_transient(exc) and waits):
                    raise
                sleep(waits.pop(0))
        self._thread = threading.Thread(target=self._run, name="podwatch-%s" % self.namespace, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    @staticmethod
    def _rv(pod):
        try:
            return int((pod.get("metadata") or {}).get("resourceVersion") or 0)
        except ValueError:
            return 0

    def update(self, pod, deleted=False):
        """Store ``pod`` (drop it: ``deleted``) unless the cache already holds a newer version of it."""
        name = pod["metadata"]["name"]
        with self._cond:
            current = self.pods.get(name)
            if deleted:
                self.pods.pop(name, None)
            elif current is None or self._rv(pod) >= self._rv(current):
                self.pods[name] = pod
            else:
                return
            self._changed([name])

    def _changed(self, names):  # under the lock
        self.dirty.update(names)
        self.changes += 1
        self._cond.notify_all()

    def _relist(self):
        """LIST the pods and replace the cache: every pod counts as changed (a watch may have missed events)."""
        items, self.resource_version = self.client.list_pods(self.namespace, self.label_selector, from_cache=True)
        with self._cond:
            self.pods = dict((p["metadata"]["name"], p) for p in items)
            self.error = self.failing_since = None
            self._changed(self.pods)

    def _run(self):
        while not self._stop.is_set():
            try:
                for event_type, obj in self.client.watch_pods(self.namespace, self.resource_version, self.label_selector, timeout_seconds=30):
                    if self._stop.is_set():
                        return
                    if event_type == "ERROR":
                        if obj.get("code") == 410:
                            raise KubeError(410, obj.get("message", "watch expired"))
                        continue
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self.resource_version = rv
                    self.error = self.failing_since = None
                    if event_type == "BOOKMARK":
                        continue
                    self.update(obj, deleted=event_type == "DELETED")
            except KubeError as exc:
                if self._stop.is_set():
                    return
                if exc.status == 410:
                    try:
                        self._relist()
                        continue
                    except KubeError as exc2:
                        exc = exc2
                with self._cond:
                    self.error = exc
                    if self.failing_since is None:
                        self.failing_since = time.monotonic()
                    self._changed(())  # wake the driver: it decides whether the failure is fatal
                time.sleep(0.5)

    def fatal_error(self):
        """The watch's failure when retrying cannot help (401, 403, 404: credentials, RBAC, namespace), else ``None``."""
        exc = self.error
        return exc if isinstance(exc, KubeError) and exc.status in (401, 403, 404) else None

    def take_dirty(self):
        """Return the names of the pods that changed since the last call, and forget them."""
        with self._cond:
            names, self.dirty = self.dirty, set()
            return names

    def snapshot(self, name):
        with self._cond:
            return self.pods.get(name)

    def notify(self):
        """Wake up waiters (used when something other than a pod changed, e.g. a write failed)."""
        with self._cond:
            self._changed(())
