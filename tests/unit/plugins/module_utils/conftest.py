# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the module_utils planning tests; builders live in ``podfactory``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory


@pytest.fixture
def factory():
    """The ``podfactory`` module (SidecarSet and pod builders, kubelet simulator)."""
    return podfactory


@pytest.fixture
def now():
    """A fixed UTC instant used as the planners' ``now``."""
    return datetime.datetime(2024, 5, 6, 7, 8, 9)
