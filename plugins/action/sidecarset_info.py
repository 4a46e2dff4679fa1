# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side path resolution for this module (see the sidecar_inject action plugin)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.action.sidecar_inject import ActionModule  # noqa: F401 pylint: disable=unused-import
