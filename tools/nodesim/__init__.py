"""nodesim: a small kwok-like node simulator for a real kube-apiserver (see docs/nodesim.md).

Run: ``PYTHONPATH=tools .venv/bin/python -m nodesim --kubeconfig .cluster/kubeconfig``.
"""

from .config import ANNOTATION_PREFIX, BUILTIN_RULES, DEFAULTS, Config  # noqa: F401
from .simulator import MANAGED_LABEL, ZONE_LABEL, Simulator, image_id, image_repo  # noqa: F401

__all__ = [
    "ANNOTATION_PREFIX", "BUILTIN_RULES", "DEFAULTS", "Config", "MANAGED_LABEL", "ZONE_LABEL",
    "Simulator", "image_id", "image_repo",
]
