# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side part of the meshops.sidecarset modules: resolve relative paths, then run the module.

A module runs in a temporary directory, so relative paths given by users (``-e src=examples/manifests``)
would not resolve. This action plugin makes them absolute on the controller before the module runs: a
path is taken relative to the current directory of ``ansible-playbook`` when it exists there, otherwise
relative to the playbook/role (``files/`` lookup), as ``ansible.builtin.copy`` does. ``dest`` is always
relative to the current directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Resolve path options, then execute the module of the same name."""

    TRANSFERS_FILES = False

    def _resolve(self, path):
        if not isinstance(path, str) or not path or os.path.isabs(path):
            return path
        path = os.path.expanduser(path)
        if os.path.isabs(path):
            return path
        if os.path.exists(path):
            return os.path.abspath(path)
        try:
            return self._find_needle("files", path)
        except AnsibleError:
            return os.path.abspath(path)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        for key in ("src", "sidecarset", "kubeconfig"):
            if isinstance(args.get(key), str):
                args[key] = self._resolve(args[key])
        if isinstance(args.get("sidecarsets"), list):
            args["sidecarsets"] = [self._resolve(item) for item in args["sidecarsets"]]
        elif isinstance(args.get("sidecarsets"), str):
            args["sidecarsets"] = [self._resolve(args["sidecarsets"])]
        if isinstance(args.get("dest"), str) and args["dest"]:
            keep_slash = args["dest"].endswith("/")
            args["dest"] = os.path.abspath(os.path.expanduser(args["dest"])) + ("/" if keep_slash else "")
        # async (only where the subclass sets _supports_async, ActionBase refuses it otherwise): as the normal action
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result.update(self._execute_module(module_name=self._task.resolved_action or self._task.action, module_args=args,
                                           task_vars=task_vars, wrap_async=wrap_async))
        return result
