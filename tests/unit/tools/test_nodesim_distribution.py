"""The node simulator's per-pod duration distribution (``lognormal(MEDIAN, SIGMA[, MAX])``, docs/nodesim.md)."""

import json
import statistics

import pytest

from nodesim.config import Config, parse_duration


def draw(cfg, pod, annotations):
    return cfg.behaviour("tinyqian/mosn:slow-1", "mosn-2", "ns", annotations, seed=pod)["postStartDuration"]


def test_lognormal_per_pod_deterministic_and_shaped():
    cfg = Config(zero_delay=True)
    rules = {"nodesim.meshops.io/rules": json.dumps([{"image": "*:slow-*", "postStartDuration": "lognormal(3s, 0.9)"}])}
    values = [draw(cfg, "pod-%d" % i, rules) for i in range(2000)]
    assert values[:5] == [draw(cfg, "pod-%d" % i, rules) for i in range(5)]  # the same pod, the same value
    assert len(set(values)) == len(values)  # each pod its own
    assert 2.7 < statistics.median(values) < 3.3
    share_over_20 = sum(1 for v in values if v > 20) / len(values)
    assert 0.005 < share_over_20 < 0.04  # "some pods 20 s"
    # other images keep the zero-delay default
    assert cfg.behaviour("tinyqian/mosn:v1", "mosn-2", "ns", rules, seed="pod-1")["postStartDuration"] == 0.0


def test_lognormal_cap_and_per_container_annotation():
    cfg = Config(zero_delay=True)
    annotations = {"nodesim.meshops.io/mosn-2.post-start-duration": "lognormal(10s, 2, 12s)"}
    values = [draw(cfg, "p%d" % i, annotations) for i in range(300)]
    assert max(values) == 12.0 and min(values) > 0


@pytest.mark.parametrize("text", ["lognormal(3s)", "lognormal(0s, 1)", "lognormal(3s, x)", "lognormal(3s, -1)"])
def test_bad_distribution_named(text):
    with pytest.raises(ValueError, match="lognormal|distribution|duration"):
        parse_duration(text)
