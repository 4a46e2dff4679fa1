# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shell shared by the in-cluster modules: options, client, error mapping, exit.

``k8s_argument_spec(**options)`` is kubernetes.core's connection options plus ``options``.
``run_k8s_module(argument_spec, run)`` builds an ``AnsibleK8SModule``, a ``KubeClient`` (dry-run in check
mode) and calls ``run(module, client)``; engine and API errors become ``fail_json`` with a message naming
what failed, and a result carrying ``failed: True`` is returned through ``fail_json`` (its other keys kept).
``load_one_sidecarset(value)`` loads exactly one SidecarSet from a path or a dict.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from ansible_collections.meshops.sidecarset.plugins.module_utils.client import client_from_module
except ImportError:  # pragma: no cover - ansible-test import sanity without kubernetes
    AUTH_ARG_SPEC = {}

    class CoreException(Exception):
        """Stand-in when kubernetes.core cannot be imported."""


def k8s_argument_spec(**options):
    """kubernetes.core's connection options plus the module's own."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(options)
    return spec


def load_one_sidecarset(value):
    """Load exactly one SidecarSet from a path or a dict."""
    sidecarsets = load_sidecarsets([value])
    if len(sidecarsets) != 1:
        raise SidecarSetError("sidecarset: expected exactly one SidecarSet, found %d" % len(sidecarsets))
    return sidecarsets[0]


def finish(module, result):
    """Exit with ``result``, through ``fail_json`` when it says ``failed``."""
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


def run_guarded(module, run, *args):
    """Call ``run(module, *args)`` and map the collection's errors to ``fail_json``."""
    try:
        return run(module, *args)
    except (SidecarSetError, ManifestError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    except KubeError as exc:
        module.fail_json(msg="Kubernetes API error: %s" % exc, status=exc.status)
    except CoreException as exc:
        module.fail_json(msg=str(exc))
    return None


def run_k8s_module(argument_spec, run, **module_kwargs):
    """Build the module and its client, run, exit (see module docstring)."""
    module = AnsibleK8SModule(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    client = run_guarded(module, client_from_module)
    finish(module, run_guarded(module, run, client))
