# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout timeline picture (``timeline.timeline_svg``) and where it is written (``rollout_journal.timeline_path``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import xml.etree.ElementTree as ET

from ansible_collections.meshops.sidecarset.plugins.module_utils.rollout_journal import timeline_path
from ansible_collections.meshops.sidecarset.plugins.module_utils.timeline import FAILED, timeline_svg

NS = "{http://www.w3.org/2000/svg}"


def pod(name, start, failed=False, **timings):
    return {"name": name, "namespace": "shop", "started_at": start, "failed": failed, "timings": timings}


def test_one_row_per_pod_phases_coloured_failed_red():
    pods = [pod("b", 100.5, upgrade=0.1, migration=3.0, reset=0.4, total=3.5),
            pod("a", 100.0, upgrade=0.1, migration=20.0, reset=0.5, total=20.6),
            pod("c", 101.0, failed=True, upgrade=0.1, total=5.0),
            {"name": "never-started", "timings": {}}]
    root = ET.fromstring(timeline_svg(pods, "rollout of mosn"))
    bars = [r for r in root.iter(NS + "rect") if r.find(NS + "title") is not None]
    titles = [r.find(NS + "title").text for r in bars]
    assert len(bars) == 3 + 3 + 2  # a and b: three phases each; c: the write, then its failure
    assert titles[0].startswith("shop/a 0.00-0.10")  # rows in start order
    rows = sorted(set(float(r.get("y")) for r in bars))
    assert len(rows) == 3
    assert [r.get("fill") for r in bars if "shop/c" in r.find(NS + "title").text][-1] == FAILED
    assert "3 pods, 20.6 s" in "".join(root.itertext())
    # the longest bar ends at the right edge of the plot (1000 px wide, 10 px margins)
    ends = [float(r.get("x")) + float(r.get("width")) for r in bars]
    assert abs(max(ends) - 990) < 1


def test_empty_report_and_path():
    ET.fromstring(timeline_svg([]))
    assert timeline_path("out/rollout.json") == "out/rollout.svg"
    assert timeline_path("out/report") == "out/report.svg"
