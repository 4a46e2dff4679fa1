"""Extract one collection (e.g. ``kubernetes/core``) out of the ``ansible`` wheel.

Usage: extract_collection.py WHEEL NAMESPACE/NAME DEST_TREE

Writes ``DEST_TREE/ansible_collections/NAMESPACE/NAME`` atomically (extract to a temporary
directory beside it, then rename), so an interrupted run leaves nothing half-written.
"""

import os
import shutil
import sys
import tempfile
import zipfile


def extract(wheel, collection, dest_tree):
    prefix = "ansible_collections/%s/" % collection.strip("/")
    target = os.path.join(dest_tree, "ansible_collections", collection)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(target))
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if not member.startswith(prefix) or member.endswith("/"):
                continue
            rel = member[len(prefix):]
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with archive.open(member) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            count += 1
    if count == 0:
        shutil.rmtree(tmp)
        raise SystemExit("no files under %s in %s" % (prefix, wheel))
    if os.path.exists(target):
        shutil.rmtree(target)
    os.rename(tmp, target)
    return count


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    n = extract(sys.argv[1], sys.argv[2], sys.argv[3])
    print("extracted %d files of %s" % (n, sys.argv[2]))
