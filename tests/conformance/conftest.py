"""Fixtures of the Kruise conformance suite; the helpers are in kruiseref.py (docs/kruise-conformance.md)."""

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

import kruiseref
from kruiseref import CLUSTER_DIR, Case, Kruise, kruise_sh


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance: compares with the real OpenKruise kruise-manager")
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    for item in items:
        if kruiseref.HERE in Path(str(getattr(item, "path", None) or item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.conformance)


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
    if not kruiseref.RESULTS:
        return
    kruiseref.OUT.mkdir(parents=True, exist_ok=True)
    summary = {
        "cases": len(kruiseref.RESULTS),
        "compared_fields": sum(r.get("compared_fields", 0) for r in kruiseref.RESULTS),
        "results": kruiseref.RESULTS,
    }
    (kruiseref.OUT / "results.json").write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")


@pytest.fixture(scope="session")
def kruise():
    started = False
    if kruise_sh("status", timeout=30).returncode != 0:
        t0 = time.monotonic()
        proc = kruise_sh("up")
        if proc.returncode != 0:
            out = proc.stdout + proc.stderr
            if "no 'go' on PATH" in out or "go mod download" in out:
                # never a silent skip: the suite is part of make test (docs/kruise-conformance.md, "CI")
                pytest.fail("the Kruise reference (kruise-manager %s) cannot be built on this machine: it needs Go >= 1.26 "
                            "and the Go module proxy (tools/kruise/kruise.sh build):\n%s" % (kruiseref.KRUISE_VERSION, out[-3000:]),
                            pytrace=False)
            pytest.fail("tools/kruise/kruise.sh up failed (exit %d):\n%s" % (proc.returncode, out[-6000:]), pytrace=False)
        started = True
        sys.stderr.write("\nkruise.sh up: %.1f s\n" % (time.monotonic() - t0))
    env = dict(re.findall(r"^(?:export )?([A-Z_0-9]+)=\"?([^\"\n]*)\"?$", (CLUSTER_DIR / "kruise.env").read_text(), re.M))
    yield Kruise(env["KUBECONFIG"], env.get("KRUISE_VERSION"))
    if started and os.environ.get("KRUISE_KEEP") != "1":
        proc = kruise_sh("down", timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def case(kruise, request):
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().replace("test_", "")).strip("-")
    made = []

    def make(labels=None):
        c = Case(kruise, slug, labels or {})
        made.append(c)
        return c

    yield make
    for c in made:
        c.cleanup()
