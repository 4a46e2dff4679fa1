# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client factory: kubernetes.core's authentication, our raw-JSON ``KubeClient`` on top.

``client_from_module(module)`` takes the standard kubernetes.core connection options (``kubeconfig``,
``context``, ``host``, ``api_key``, ``validate_certs``, ... with the ``K8S_AUTH_*`` environment
fallback that AWX's Kubernetes credential sets) through kubernetes.core's ``get_api_client``, then
builds an ``ApiClient`` with a connection pool large enough for concurrent writes. In check mode the
client sends every write with ``dryRun=All``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeClient

try:
    import kubernetes.client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client

    HAS_KUBERNETES = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False


def kube_client(configuration, headers=None, dry_run=False, pool_size=32):
    """Build a ``KubeClient`` from a kubernetes ``Configuration`` (copied, never modified)."""
    config = copy.copy(configuration)
    config.connection_pool_maxsize = max(int(getattr(config, "connection_pool_maxsize", 0) or 0), pool_size)
    api = kubernetes.client.ApiClient(config)
    for key, value in (headers or {}).items():
        api.set_default_header(key, value)
    return KubeClient(api, dry_run=dry_run)


def client_from_module(module, pool_size=32):
    """Return a ``KubeClient`` for an ``AnsibleK8SModule`` (dry-run in check mode)."""
    k8s = get_api_client(module=module)
    headers = dict(getattr(getattr(k8s.client, "client", None), "default_headers", {}) or {})
    headers.pop("User-Agent", None)
    return kube_client(k8s.configuration, headers=headers, dry_run=bool(module.check_mode), pool_size=pool_size)


def client_from_options(pool_size=32, **auth):
    """Return a ``KubeClient`` from kubernetes.core auth options given as keywords (inventory plugin)."""
    k8s = get_api_client(**auth)
    return kube_client(k8s.configuration, pool_size=pool_size)
