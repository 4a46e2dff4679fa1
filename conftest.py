"""Make ``ansible_collections.meshops.sidecarset`` importable when pytest runs on the flat checkout.

If the checkout already sits at ``.../ansible_collections/meshops/sidecarset`` (as under
ansible-test), nothing is done. Otherwise the git-ignored tree ``.collections`` built by
``make setup`` (which links this checkout and holds kubernetes.core) is put first on the
collection path, and Ansible's collection finder is installed.
"""

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def _install_collection_finder():
    parts = ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        return
    tree = os.path.join(ROOT, ".collections")
    paths = [tree] + [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    try:
        from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    except ImportError:  # pragma: no cover - ansible-core is part of the dev environment
        return
    # pylint: disable=protected-access
    _AnsibleCollectionFinder(paths=paths)._install()
    sys.path.insert(0, os.path.join(ROOT, "tools"))


_install_collection_finder()
