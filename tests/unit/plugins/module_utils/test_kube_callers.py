# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No uncalled methods in the collection's Kubernetes client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import os
import re

from ansible_collections.meshops.sidecarset.plugins.module_utils import client, kube

PLUGINS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins")


def _plugin_sources():
    sources = []
    for folder, dummy, files in os.walk(PLUGINS):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as handle:
                    sources.append(handle.read())
    return "\n".join(sources)


def test_every_public_client_method_has_a_caller():
    """Each public method of KubeClient and PodWatch and each public function of client.py is used in plugins/."""
    text = _plugin_sources()
    unused = []
    for cls in (kube.KubeClient, kube.PodWatch):
        for name, dummy in inspect.getmembers(cls, predicate=lambda m: inspect.isfunction(m) or isinstance(m, property)):
            if not name.startswith("_") and not re.search(r"\.%s\b" % name, text):
                unused.append("%s.%s" % (cls.__name__, name))
    for name, dummy in inspect.getmembers(client, inspect.isfunction):
        if not name.startswith("_") and dummy.__module__ == client.__name__ and len(re.findall(r"\b%s\b" % name, text)) < 2:
            unused.append("client.%s" % name)
    assert unused == []
