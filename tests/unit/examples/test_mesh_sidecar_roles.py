"""Role decision table of the mesh-sidecar reference (examples/mesh-sidecar/meshsidecar/roles.py)."""

import os
import sys

import pytest

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, "examples", "mesh-sidecar"
    ),
)

from meshsidecar.roles import (
    Role,
    RoleError,
    decide_from_env,
    decide_role,
)  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize(
    "version, alt, role",
    [
        # empty twin: at injection (0/1) and after a reset (0/R)
        ("0", "1", Role.EMPTY),
        ("0", "1098297016", Role.EMPTY),
        ("0", "0", Role.EMPTY),
        ("0", "", Role.EMPTY),
        # normal start: first injection (1/0), or restart after a reset (ALT annotation back to 0)
        ("1", "0", Role.FRESH),
        ("1", "", Role.FRESH),
        ("1", None, Role.FRESH),
        ("1098297016", "0", Role.FRESH),
        # newer side of an upgrade: VERSION > ALT > 0
        ("1098297016", "1", Role.SUCCESSOR),
        ("2000", "1999", Role.SUCCESSOR),
        # integer, not string, comparison: "10" < "9" as strings
        ("10", "9", Role.SUCCESSOR),
        ("9", "10", Role.STALE),
        # older side restarted mid-upgrade: 0 < VERSION < ALT
        ("1", "1098297016", Role.STALE),
        (" 1 ", " 5 ", Role.STALE),
    ],
)
def test_decision_table(version, alt, role):
    assert decide_role(version, alt).role is role


def test_successor_dials_alt():
    decision = decide_role("1098297016", "1")
    assert (decision.version, decision.alt, decision.peer) == (1098297016, 1, 1)
    assert decide_role("1", "0").peer is None


@pytest.mark.parametrize(
    "role, idles", [(Role.EMPTY, True), (Role.STALE, True), (Role.FRESH, False), (Role.SUCCESSOR, False)]
)
def test_idle_roles(role, idles):
    assert role.idles is idles


@pytest.mark.parametrize(
    "version, alt",
    [
        ("v1", "0"),
        ("1", "x"),
        ("-1", "0"),
        ("1", "-3"),
        ("1.5", "0"),
        ("", "0"),
        (None, None),
        ("7", "7"),
        ("0x10", "1"),
    ],
)
def test_invalid_env_raises(version, alt):
    with pytest.raises(RoleError):
        decide_role(version, alt)


def test_empty_image_forces_empty_role():
    assert decide_role("1098297016", "1", empty_image=True).role is Role.EMPTY
    assert decide_role(None, None, empty_image=True).role is Role.EMPTY
    assert decide_role("garbage", "x", empty_image=True).role is Role.EMPTY


def test_decide_from_env():
    env = {"SIDECARSET_VERSION": "5", "SIDECARSET_VERSION_ALT": "3"}
    assert decide_from_env(env).role is Role.SUCCESSOR
    assert decide_from_env(dict(env, MESH_SIDECAR_EMPTY="true")).role is Role.EMPTY
    assert decide_from_env(dict(env, MESH_SIDECAR_EMPTY="0")).role is Role.SUCCESSOR
