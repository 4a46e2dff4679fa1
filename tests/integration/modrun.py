"""Run one of the collection's modules through the real ansible-playbook and return its result.

``run_module(name, args, env)`` writes a one-task playbook (the task registers its result and a second task
dumps it as JSON), runs ``ansible-playbook`` with the repository's ansible.cfg and returns
``(result_dict, completed_process)``. ``check=True`` adds ``--check --diff``.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def ansible_env(extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    env.update(extra or {})
    return env


def run_module(name, args, env=None, check=False, timeout=600):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        play = [{
            "name": "run %s" % name,
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {"name": "module", "meshops.sidecarset.%s" % name: args, "register": "result", "ignore_errors": True},
                {"name": "dump", "ansible.builtin.copy": {"content": "{{ result | to_json }}", "dest": out}, "check_mode": False, "diff": False},
            ],
        }]
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as handle:
            yaml.safe_dump(play, handle)
        cmd = [ANSIBLE_PLAYBOOK, path] + (["--check", "--diff"] if check else [])
        proc = subprocess.run(cmd, cwd=ROOT, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=False)
        if not os.path.exists(out):
            raise AssertionError("ansible-playbook did not run the module:\n" + proc.stdout + proc.stderr)
        with open(out) as handle:
            return json.load(handle), proc
