# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""files: the one atomic writer (offline manifests, the rollout report, the progress file)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils import files


def test_write_makes_the_folders_and_sets_the_mode(tmp_path):
    path = str(tmp_path / "a" / "b" / "out.yaml")
    files.write(path, "one\n", mode=0o600)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "one\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path / "a" / "b")) == ["out.yaml"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch, durable):
    path = str(tmp_path / "out.json")
    files.write(path, "old")

    def broken_chmod(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "chmod", broken_chmod)
    with pytest.raises(OSError):
        files.write(path, "new", durable=durable)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == "old"
    assert os.listdir(str(tmp_path)) == ["out.json"]


def test_a_staged_file_is_committed_only_by_the_rename(tmp_path):
    path = str(tmp_path / "out.txt")
    tmp = files.stage(path, "staged")
    assert not os.path.exists(path) and os.path.dirname(tmp) == str(tmp_path)
    files.discard([tmp, tmp])  # a second discard of the same file is no error
    assert os.listdir(str(tmp_path)) == []
