"""Every plugin of the collection renders with the real ansible-doc."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ANSIBLE_DOC = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
ENV = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"))


def plugins(kind, folder):
    path = os.path.join(ROOT, "plugins", folder)
    names = sorted(f[:-3] for f in os.listdir(path) if f.endswith(".py") and not f.startswith("_"))
    return [(kind, "meshops.sidecarset." + name) for name in names]


@pytest.mark.parametrize("kind,name", plugins("module", "modules") + plugins("filter", "filter") + plugins("inventory", "inventory"))
def test_ansible_doc_renders(kind, name):
    proc = subprocess.run([ANSIBLE_DOC, "-t", kind, "--json", name], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[name]["doc"]
    assert doc["short_description"]
    assert stderr_problems(proc.stderr) == []


def stderr_problems(stderr):
    """The lines ansible-doc wrote on stderr: a clean render writes none (a warning, a deprecation or a traceback
    each fail the test; before, any stderr without the word WARNING passed)."""
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("stderr", [
    "[WARNING]: Collection meshops.sidecarset does not support Ansible version 2.19.14\n",
    "[DEPRECATION WARNING]: The option 'x' is deprecated.\n",
    "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'options'\n",
    "[ERROR]: module meshops.sidecarset.x has a documentation formatting error\n",
])
def test_stderr_check_fails_on_any_output(stderr):
    assert stderr_problems(stderr) != []
    assert stderr_problems("") == [] and stderr_problems("\n") == []
