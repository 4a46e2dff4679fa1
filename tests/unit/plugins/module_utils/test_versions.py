# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one home of the version facts and timestamps."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import versions
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf


def test_existing_and_highest_versions_from_pods_or_annotations():
    pod = pf.pod()
    pod["metadata"]["annotations"]["version.sidecarset.kruise.io/mesh-2"] = "41"
    pod["metadata"]["annotations"]["versionalt.sidecarset.kruise.io/other-1"] = "not-a-number"
    assert sorted(versions.existing_versions(pod)) == [0, 1, 1, 41]
    assert versions.existing_versions(pod["metadata"]["annotations"]) == versions.existing_versions(pod)
    assert versions.highest_version([pod, pf.pod()]) == 41
    assert versions.next_version([pod]) == 42
    assert versions.next_version([pod], floor=100) == 101
    assert versions.next_version([]) == 2          # above "1", the first injection


def test_check_version():
    pod = pf.pod()
    versions.check_version(pod, 2)
    for bad in (1, True, "7", 2.0):
        with pytest.raises(versions.InvalidVersion):
            versions.check_version(pod, bad)


def test_format_timestamp_accepts_every_form_once():
    moment = datetime.datetime(2026, 3, 1, 12, 0, 0, 999, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert versions.format_timestamp(moment) == "2026-03-01T10:00:00Z"
    assert versions.format_timestamp(datetime.datetime(2026, 3, 1, 12, 0, 0)) == "2026-03-01T12:00:00Z"
    assert versions.format_timestamp(0) == "1970-01-01T00:00:00Z"
    assert versions.format_timestamp("2021-06-04T05:44:26Z") == "2021-06-04T05:44:26Z"
    assert len(versions.format_timestamp()) == 20
    for bad in ([], True, ""):
        with pytest.raises(ParameterError, match="now must be a datetime"):
            versions.format_timestamp(bad)
