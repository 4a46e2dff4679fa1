"""nodesim behaviour configuration (pure Python; no cluster needed)."""

import hashlib
import json

import pytest

from nodesim import Config, image_id, image_repo
from nodesim.config import parse_duration

P = "nodesim.meshops.io/"


def test_image_id_is_a_stable_digest_of_the_image_string():
    digest = hashlib.sha256(b"docker.io/library/nginx:1.20").hexdigest()
    assert image_id("docker.io/library/nginx:1.20") == "docker-pullable://docker.io/library/nginx@sha256:" + digest
    assert image_id("nginx:1.20") == image_id("nginx:1.20") != image_id("nginx:1.21")
    assert image_repo("localhost:5000/app") == "localhost:5000/app"
    assert image_repo("localhost:5000/app:v1") == "localhost:5000/app"
    assert image_repo("app@sha256:abc") == "app"


@pytest.mark.parametrize("value,seconds", [(1, 1.0), ("1.5", 1.5), ("300ms", 0.3), ("2s", 2.0), ("1m", 60.0),
                                           (None, None), ("never", None)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


def test_defaults_and_builtin_image_rules():
    cfg = Config()
    assert cfg.behaviour("nginx:1.20", "app", "ns")["pullDelay"] == 0.3
    assert cfg.behaviour("registry.local/proxy:broken", "proxy", "ns")["pullFailure"] is True
    assert cfg.behaviour("x:poststart-fail", "c", "ns")["postStartFailure"] is True
    assert cfg.behaviour("x:never-ready", "c", "ns")["neverReady"] is True
    crash = cfg.behaviour("x:crash", "c", "ns")
    assert crash["crashAfter"] == 1.0 and crash["exitCode"] == 1


def test_zero_delay():
    cfg = Config(zero_delay=True)
    b = cfg.behaviour("nginx:1.20", "app", "ns")
    assert b["pullDelay"] == b["postStartDuration"] == b["startDelay"] == 0
    assert cfg.globals["backoffInitial"] <= 0.1


def test_config_file_rules_then_annotations_win(tmp_path):
    path = tmp_path / "nodesim.yaml"
    path.write_text(
        "defaults: {pullDelay: 1s}\n"
        "rules:\n"
        "  - {image: 'mesh/*', pull-delay: 2s}\n"
        "  - {container: proxy, namespace: 'prod-*', readyDelay: 500ms}\n")
    cfg = Config.load(str(path))
    assert cfg.behaviour("nginx:1", "app", "x")["pullDelay"] == 1.0
    assert cfg.behaviour("mesh/proxy:1", "proxy", "x")["pullDelay"] == 2.0
    assert cfg.behaviour("mesh/proxy:1", "proxy", "x")["readyDelay"] is None
    assert cfg.behaviour("mesh/proxy:1", "proxy", "prod-eu")["readyDelay"] == 0.5
    ann = {
        P + "pull-delay": "3s",
        P + "proxy.pull-delay": "4s",
        P + "rules": json.dumps([{"image": "mesh/*", "neverReady": True}]),
    }
    assert cfg.behaviour("mesh/proxy:1", "proxy", "x", ann)["pullDelay"] == 4.0
    assert cfg.behaviour("mesh/proxy:1", "proxy", "x", ann)["neverReady"] is True
    assert cfg.behaviour("nginx:1", "app", "x", ann)["pullDelay"] == 3.0
    assert cfg.behaviour("nginx:1", "app", "x", ann)["neverReady"] is False


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError):
        Config({"defaults": {"pulDelay": 1}})
    with pytest.raises(ValueError):
        Config({"nodez": 3})
    with pytest.raises(ValueError):
        Config().behaviour("a", "b", "c", {P + "b.no-such-thing": "1"})
