# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# Apache License 2.0 (see LICENSE)
"""Controller-side path resolution for this module (see the sidecar_inject action plugin)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.action.sidecar_inject import ActionModule  # noqa: F401 pylint: disable=unused-import
