# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline injection of SidecarSets into manifest files: read, render in memory, write atomically.

Contract:
- ``collect_sources(src)`` lists the manifest files of a file or a folder (``*.yaml``, ``*.yml``,
  ``*.json``, sorted, recursive) as ``(path, relative_name)`` pairs.
- ``render(sources, sidecarsets, namespace_labels, now)`` parses and injects everything in memory
  and returns ``(outputs, results)``; it raises ``ManifestError``/``SidecarSetError`` before
  anything is written.
- ``plan_destinations(outputs, src, dest)`` maps each rendered text to its destination path.
- ``write_atomically(files)`` checks every destination first, writes each to a temporary file
  beside it and renames them all only when every temporary file was written; on any error the
  temporary files are removed and no destination is touched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError
from ansible_collections.meshops.sidecarset.plugins.module_utils.files import discard, stage
from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import (
    dump_documents,
    inject_manifest,
    iter_documents,
)

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def collect_sources(src):
    """Return ``[(path, relative_name)]`` for a manifest file or every manifest under a folder."""
    if not os.path.exists(src):
        raise ManifestError("no such file or directory", source=src)
    if os.path.isfile(src):
        return [(src, os.path.basename(src))]
    found = []
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(MANIFEST_SUFFIXES):
                path = os.path.join(folder, name)
                found.append((path, os.path.relpath(path, src)))
    if not found:
        raise ManifestError("folder holds no *.yaml, *.yml or *.json manifest", source=src)
    return found


def read_text(path):
    """Read a UTF-8 text file; errors name the file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError("cannot read: %s" % exc, source=path)


def render(sources, sidecarsets, namespace_labels=None, now=None):
    """Inject into every document of every source.

    ``sources`` is a list of ``(label, relative_name, text)``. Returns ``(outputs, results)``:
    ``outputs`` is a list of ``{"source", "name", "before", "after", "changed"}`` and ``results`` one
    dict per document: ``source``, ``document`` (index), ``kind``, ``name``, ``namespace``,
    ``status`` (``injected``/``unchanged``/``skipped``) and ``reason``.
    """
    outputs = []
    results = []
    for label, rel_name, text in sources:
        docs = list(iter_documents(text, label))
        new_docs = []
        file_changed = False
        for index, doc in enumerate(docs):
            try:
                new_doc, status, reason = inject_manifest(doc, sidecarsets, namespace_labels=namespace_labels, now=now)
            except ManifestError as exc:  # inject_manifest names the field; the file and document are known here
                if exc.source is None:
                    exc.source, exc.document = label, index
                raise
            meta = (doc or {}).get("metadata") or {}
            results.append({
                "source": label,
                "document": index,
                "kind": (doc or {}).get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace") or "default",
                "status": status,
                "reason": reason,
            })
            file_changed = file_changed or status == "injected"
            new_docs.append(new_doc)
        after = dump_documents(new_docs) if file_changed else text
        outputs.append({"source": label, "name": rel_name, "before": text, "after": after, "changed": file_changed})
    return outputs, results


def plan_destinations(outputs, src_is_dir, dest):
    """Return ``[(dest_path, text)]``.

    A folder ``src`` (or several sources) maps into the folder ``dest`` keeping relative names;
    a single file maps to ``dest`` itself unless ``dest`` is an existing folder or ends with ``/``.
    """
    if src_is_dir or len(outputs) > 1 or dest.endswith(os.sep) or os.path.isdir(dest):
        return [(os.path.join(dest, out["name"]), out["after"]) for out in outputs]
    return [(dest, outputs[0]["after"])]


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ManifestError("destination folder %s is not a directory" % probe, source=path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ManifestError("destination is not writable (no write permission on %s)" % probe, source=path)
    if os.path.isdir(path):
        raise ManifestError("destination is a directory, expected a file", source=path)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ManifestError("destination file is not writable", source=path)


TIMESTAMP = re.compile(r'(\\?"updateTimestamp\\?":\\?")[0-9TZ:.+-]+')


def without_timestamps(text):
    """``text`` with every ``updateTimestamp`` value of the Kruise annotations blanked."""
    return TIMESTAMP.sub(r"\1", text)


def files_needing_write(files):
    """Return the subset of ``[(path, text)]`` whose content differs from what is on disk.

    Injection time stamps (``updateTimestamp`` in the hash annotations) are ignored in the comparison,
    so rendering the same sources again leaves an existing output untouched (idempotent runs).
    """
    pending = []
    for path, text in files:
        try:
            with open(path, "r", encoding="utf-8") as handle:
                if without_timestamps(handle.read()) == without_timestamps(text):
                    continue
        except (OSError, UnicodeDecodeError):
            pass
        pending.append((path, text))
    return pending


def write_atomically(files, mode=0o644):
    """Write ``[(path, text)]`` all-or-nothing (see module docstring). Returns the written paths."""
    for path, dummy in files:
        _check_writable(path)
    staged = []
    for path, text in files:
        try:
            staged.append((stage(path, text, mode), path))
        except OSError as exc:
            discard(tmp for tmp, dummy in staged)
            raise ManifestError("cannot write: %s" % exc, source=path)
    for tmp, path in staged:
        os.replace(tmp, path)
    return [path for dummy, path in staged]
