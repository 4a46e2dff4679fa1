# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one list of connection options: kubernetes.core's authentication options (``AUTH_ARG_SPEC``).

``AUTH_KEYS`` is read from kubernetes.core, so the modules (through ``modrunner.k8s_argument_spec``), the
roles (through the ``connection_options`` filter and ``module_defaults`` on the ``sidecar`` action group) and
the ``pods`` inventory accept exactly the same keys. ``connection_options(cluster)`` keeps the keys of
``cluster`` that are set (``None`` and ``""`` mean "not given", ``False`` is kept).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

    AUTH_KEYS = tuple(AUTH_ARG_SPEC)
except ImportError:  # pragma: no cover - kubernetes.core is a dependency of the collection
    AUTH_KEYS = ("kubeconfig", "context", "host", "api_key", "username", "password", "validate_certs", "ca_cert",
                 "client_cert", "client_key", "proxy", "no_proxy", "proxy_headers", "persist_config",
                 "impersonate_user", "impersonate_groups")


def connection_options(cluster):
    """The connection options set in ``cluster`` (a dict), keyed as kubernetes.core's modules take them."""
    cluster = cluster or {}
    return dict((key, cluster[key]) for key in AUTH_KEYS if cluster.get(key) not in (None, ""))
