# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shell shared by the in-cluster modules: options, client, error mapping, exit.

``k8s_argument_spec(**options)`` is kubernetes.core's connection options plus ``options``.
``run_k8s_module(argument_spec, run)`` builds an ``AnsibleK8SModule``, a ``KubeClient`` (dry-run in check
mode) and calls ``run(module, client)``; the collection's own errors (``errors.MeshopsError``), API errors
(``KubeError``) and kubernetes.core's ``CoreException`` become ``fail_json`` with one message naming what failed;
any other exception is a bug and fails with its traceback (``exception=``, as kubernetes.core's
``fail_from_exception`` does; ansible-core 2.19 shows it with ``ANSIBLE_DISPLAY_TRACEBACK=error``). A result
carrying ``failed: True`` is returned through ``fail_json`` (its other keys kept).
``load_one_sidecarset(value)`` loads exactly one SidecarSet from a path or a dict.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import traceback

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import MeshopsError, SidecarSetError
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


def report_warnings(module, client):
    """Hand the API server's warnings (``KubeClient.warnings``) to ``module.warn``, once each."""
    for text in getattr(client, "warnings", None) or ():
        module.warn("Kubernetes API server: %s" % text)
    if client is not None:
        client.warnings = []


def finish(module, result, client=None):
    """Exit with ``result``, through ``fail_json`` when it says ``failed``; the API server's warnings become
    the module's warnings (shown by ansible-playbook and AWX)."""
    report_warnings(module, client)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


def run_guarded(module, run, *args):
    """Call ``run(module, *args)``; expected errors become one message, anything else keeps its traceback."""
    try:
        return run(module, *args)
    except MeshopsError as exc:
        module.fail_json(msg=str(exc))
    except KubeError as exc:
        # status 0: the API server was not reached; the message already says so
        module.fail_json(msg=str(exc) if not exc.status else "Kubernetes API error: %s" % exc, status=exc.status)
    except CoreException as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="unexpected %s, a bug of meshops.sidecarset (ANSIBLE_DISPLAY_TRACEBACK=error shows the traceback): %s"
                         % (type(exc).__name__, exc), exception=traceback.format_exc())
    return None


def run_k8s_module(argument_spec, run, **module_kwargs):
    """Build the module and its client, run, exit (see module docstring)."""
    module = AnsibleK8SModule(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    client = run_guarded(module, client_from_module)
    finish(module, run_guarded(module, run, client), client)
