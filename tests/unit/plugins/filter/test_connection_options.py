"""The connection_options filter: the one list of kubernetes.core connection keys."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.meshops.sidecarset.plugins.filter.connection_options import connection_options
from ansible_collections.meshops.sidecarset.plugins.module_utils.connection import AUTH_KEYS


def test_keys_are_kubernetes_cores():
    assert set(AUTH_KEYS) == set(AUTH_ARG_SPEC)
    assert {"client_cert", "client_key", "proxy", "no_proxy", "impersonate_user"} <= set(AUTH_KEYS)


def test_keeps_set_options_only():
    cluster = {"name": "east", "namespace": "shop", "kubeconfig": "/k", "context": "", "host": None,
               "validate_certs": False, "client_cert": "/c.pem", "client_key": "/k.pem", "proxy": "http://127.0.0.1:3128"}
    assert connection_options(cluster) == {"kubeconfig": "/k", "validate_certs": False, "client_cert": "/c.pem",
                                           "client_key": "/k.pem", "proxy": "http://127.0.0.1:3128"}
    assert connection_options({}) == {} and connection_options(None) == {}


def test_refuses_a_non_dict():
    with pytest.raises(AnsibleFilterError, match="expected a dictionary"):
        connection_options(["kubeconfig"])
