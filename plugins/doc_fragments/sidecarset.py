# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The SidecarSet option shared by the in-cluster modules."""

    DOCUMENTATION = r"""
options:
  sidecarset:
    description:
      - The SidecarSet, as Kruise YAML (C(apps.kruise.io/v1alpha1) or C(v1beta1)), given as a path to a
        YAML file holding exactly one SidecarSet, or as a dictionary (a full object, or C(metadata.name)
        plus C(spec)).
      - Kruise's defaults are applied and the object is validated; errors name the file and the field.
    type: raw
    required: true
"""
