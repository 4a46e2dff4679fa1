# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client factory: kubernetes.core's authentication, our raw-JSON ``KubeClient`` on top.

``client_from_module(module)`` takes the standard kubernetes.core connection options (``kubeconfig``,
``context``, ``host``, ``api_key``, ``validate_certs``, ... with the ``K8S_AUTH_*`` environment
fallback that AWX's Kubernetes credential sets) through kubernetes.core's ``get_api_client``, then
builds an ``ApiClient`` with a connection pool large enough for concurrent writes. In check mode the
client sends every write with ``dryRun=All``. An API server that cannot be reached (``get_api_client`` already
asks it for ``/version``) is a ``KubeError`` with status 0 and one line naming the URL and the cause
(``transport.unreachable_message``), not urllib3's traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import ssl
import time

from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeClient, KubeError, backoff_delays, is_transient
from ansible_collections.meshops.sidecarset.plugins.module_utils.transport import TRANSPORT_ERRORS, unreachable_message

try:
    import kubernetes.client
    from kubernetes.client.exceptions import ApiException
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
except ImportError:  # pragma: no cover - reported by the module
    pass

try:
    from urllib3.util.ssl_ import create_urllib3_context, resolve_cert_reqs
except ImportError:  # pragma: no cover - urllib3 comes with kubernetes
    create_urllib3_context = resolve_cert_reqs = None


def share_ssl_context(api):
    """Give every connection of ``api``'s pool one SSL context, built once.

    Without it urllib3 builds a context per new connection and loads the system CA store into it
    (``load_default_certs``: 28 ms of CPU each, measured here), so a batch that opens 32 connections spent
    0.9 s of CPU on certificates. The CA file, client certificate and hostname checks of the
    configuration still apply: urllib3 loads them into the shared context per connection (cheap).
    """
    pool = getattr(getattr(api, "rest_client", None), "pool_manager", None)
    kwargs = getattr(pool, "connection_pool_kw", None)
    if kwargs is None or kwargs.get("ssl_context") is not None or create_urllib3_context is None:
        return
    cert_reqs = resolve_cert_reqs(kwargs.get("cert_reqs"))
    context = create_urllib3_context(cert_reqs=cert_reqs)
    if cert_reqs != ssl.CERT_NONE and not kwargs.get("ca_certs") and not kwargs.get("ca_cert_data"):
        context.load_default_certs()
    kwargs["ssl_context"] = context


def kube_client(configuration, headers=None, dry_run=False, pool_size=32):
    """Build a ``KubeClient`` from a kubernetes ``Configuration`` (copied, never modified)."""
    config = copy.copy(configuration)
    config.connection_pool_maxsize = max(int(getattr(config, "connection_pool_maxsize", 0) or 0), pool_size)
    api = kubernetes.client.ApiClient(config)
    share_ssl_context(api)
    for key, value in (headers or {}).items():
        api.set_default_header(key, value)
    return KubeClient(api, dry_run=dry_run)


def _server_url(exc):
    """``scheme://host:port`` of the urllib3 pool a transport error came from, or ``None``."""
    pool = getattr(exc, "pool", None)
    if pool is None or not getattr(pool, "host", None):
        return None
    return "%s://%s:%s" % (pool.scheme, pool.host, pool.port) if pool.port else "%s://%s" % (pool.scheme, pool.host)


def api_client(transient=None, sleep=time.sleep, **kwargs):
    """kubernetes.core's ``get_api_client``; its discovery request to an unreachable server becomes a ``KubeError``.

    A server that answers its discovery with 429 or a 5xx (throttled, overloaded; after urllib3's own Retry-After
    retries) is asked again after the delays of ``transient`` (default ``kube.backoff_delays()``), then reported
    as a ``KubeError`` with that status; discovery is a read, safe to repeat. An unreachable server is reported at
    once (nothing has been written yet)."""
    waits = list(backoff_delays() if transient is None else transient)
    while True:
        try:
            return get_api_client(**kwargs)
        except TRANSPORT_ERRORS as exc:  # pylint: disable=catching-non-exception
            raise KubeError(0, unreachable_message(_server_url(exc) or kwargs.get("host"), exc))
        except ApiException as exc:
            summary = getattr(exc, "summary", None)
            error = KubeError(exc.status or 0, "API discovery failed: %s" % (summary() if summary else exc.reason))
            if not (error.status and is_transient(error) and waits):
                raise error
            sleep(waits.pop(0))


def client_from_module(module, pool_size=None):
    """Return a ``KubeClient`` for an ``AnsibleK8SModule`` (dry-run in check mode).

    The connection pool holds the module's ``concurrency`` writers plus the watches (default 32 + 4).
    """
    if pool_size is None:
        pool_size = int(module.params.get("concurrency") or 32) + 4
    k8s = api_client(module=module)
    headers = dict(getattr(getattr(k8s.client, "client", None), "default_headers", {}) or {})
    headers.pop("User-Agent", None)
    return kube_client(k8s.configuration, headers=headers, dry_run=bool(module.check_mode), pool_size=pool_size)


def client_from_options(pool_size=32, **auth):
    """Return a ``KubeClient`` from kubernetes.core auth options given as keywords (inventory plugin)."""
    k8s = api_client(**auth)
    return kube_client(k8s.configuration, pool_size=pool_size)
