# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline picture of a rollout: one row per pod, its phases coloured (SVG, no dependency). Pure.

``timeline_svg(pods, title="")`` takes the per-pod records of a rollout report (``started_at`` and ``timings``, as
``sidecar_upgrade`` returns them) and returns an SVG document: time on the x axis (seconds from the first start),
one row per pod in start order, the upgrade write, the migration (new twin starting, postStart, readiness) and the
rest (health gate and reset) in their colours, a failed pod's last segment in red.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from xml.sax.saxutils import escape

COLOURS = (("upgrade", "#f0ad4e", "upgrade write"), ("migration", "#5bc0de", "migration"), ("reset", "#5cb85c", "gate + reset"))
FAILED = "#d9534f"


def _segments(pod):
    """``[(start, end, colour)]`` of one pod, seconds from its own start."""
    timings = pod.get("timings") or {}
    total = float(timings.get("total") or 0)
    out, at = [], 0.0
    for key, colour, dummy in COLOURS:
        if timings.get(key) is not None:
            end = at + max(0.0, float(timings[key]))
            out.append((at, end, colour))
            at = end
    if total > at:
        out.append((at, total, FAILED if pod.get("failed") else "#999999"))
    elif pod.get("failed") and out:
        out[-1] = (out[-1][0], out[-1][1], FAILED)
    return out


def _tick(span):
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 12:
            return step
    return 7200


def timeline_svg(pods, title="", width=1000):
    """The SVG document (a string) for ``pods`` (see the module docstring)."""
    rows = sorted((p for p in pods or [] if p.get("started_at") is not None), key=lambda p: (float(p["started_at"]), p.get("name") or ""))
    origin = float(rows[0]["started_at"]) if rows else 0.0
    span = max([float(p["started_at"]) - origin + float((p.get("timings") or {}).get("total") or 0) for p in rows] + [0.001])
    row = max(1.0, min(12.0, 600.0 / max(1, len(rows))))
    left, top, plot = 10.0, 40.0, float(width) - 20.0
    height = top + row * len(rows) + 40
    scale = plot / span
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%.1f" y="14">%s</text>' % (left, escape("%s%d pods, %.1f s" % ((title + ": ") if title else "", len(rows), span)))]
    x = left + 250
    for dummy, colour, label in COLOURS + (("failed", FAILED, "failed"),):
        parts.append('<rect x="%.1f" y="5" width="10" height="10" fill="%s"/><text x="%.1f" y="14">%s</text>' % (x, colour, x + 13, label))
        x += 100
    for index, pod in enumerate(rows):
        y = top + index * row
        start = float(pod["started_at"]) - origin
        for begin, end, colour in _segments(pod):
            parts.append('<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s</title></rect>' % (
                left + (start + begin) * scale, y, max(0.5, (end - begin) * scale), max(0.8, row - (0.2 if row > 2 else 0)), colour,
                escape("%s/%s %.2f-%.2f s" % (pod.get("namespace"), pod.get("name"), start + begin, start + end))))
    step = _tick(span)
    axis = top + row * len(rows) + 5
    tick = 0.0
    while tick <= span + 1e-9:
        xpos = left + tick * scale
        parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ccc"/><text x="%.1f" y="%.1f">%gs</text>' % (
            xpos, top, xpos, axis, xpos + 2, axis + 14, tick))
        tick += step
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
