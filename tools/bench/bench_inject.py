#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: inject 10,000 Deployment pod templates in memory with 3 SidecarSets each.

One SidecarSet is HotUpgrade with shareVolumePolicy enabled (MOSN-like), one is a cold Before sidecar with a
transferEnv, one an After log agent with its own volume. Prints ONE JSON line:
{"bench": "inject_templates", "templates": N, "seconds": s, "templates_per_s": r, "target_per_s": 5000, "ok": bool}
Usage (from the repository root): .venv/bin/python tools/bench/bench_inject.py [--templates N] [--profile]
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_engine():
    tree = os.path.join(ROOT, ".collections")
    if not os.path.isdir(os.path.join(tree, "ansible_collections", "meshops", "sidecarset")):
        tree = tempfile.mkdtemp(prefix="bench-collections-")
        os.makedirs(os.path.join(tree, "ansible_collections", "meshops"))
        os.symlink(ROOT, os.path.join(tree, "ansible_collections", "meshops", "sidecarset"))
    sys.path.insert(0, tree)
    from ansible_collections.meshops.sidecarset.plugins.module_utils import manifests, sidecarset
    return manifests, sidecarset


SIDECARSETS = [
    {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "mosn"},
        "spec": {
            "namespace": "default",
            "selector": {"matchLabels": {"mesh.apsara-edge.com/mosn-injected": "true"}},
            "containers": [{
                "name": "mosn", "image": "tinyqian/mosn:v1", "imagePullPolicy": "IfNotPresent",
                "podInjectPolicy": "BeforeAppContainer", "shareVolumePolicy": {"type": "enabled"},
                "lifecycle": {"postStart": {"exec": {"command": ["/bin/sh", "-c", "sleep 30"]}}},
                "upgradeStrategy": {"upgradeType": "HotUpgrade", "hotUpgradeEmptyImage": "openkruise/hotupgrade-sample:empty"},
                "volumeMounts": [{"name": "mosn-log", "mountPath": "/home/admin/mosn/logs"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }],
            "volumes": [{"name": "mosn-log", "emptyDir": {}}],
        },
    },
    {
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "envoy"},
        "spec": {
            "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
            "containers": [{
                "name": "envoy", "image": "envoyproxy/envoy:v1.30.1",
                "ports": [{"containerPort": 15001, "name": "proxy"}],
                "readinessProbe": {"httpGet": {"port": 15021, "path": "/healthz/ready"}},
                "transferEnv": [{"sourceContainerName": "app", "envNames": ["POD_IP", "TZ"]}],
            }],
        },
    },
    {
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "log-agent"},
        "spec": {
            "selector": {"matchExpressions": [{"key": "logging", "operator": "Exists"}]},
            "containers": [{
                "name": "log-agent", "image": "fluent/fluent-bit:3.0", "podInjectPolicy": "AfterAppContainer",
                "volumeMounts": [{"name": "log-buffer", "mountPath": "/buffer"}],
            }],
            "volumes": [{"name": "log-buffer", "emptyDir": {"medium": "Memory"}}],
            "imagePullSecrets": [{"name": "registry"}],
        },
    },
]


def make_templates(count):
    docs = []
    for i in range(count):
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app-%d" % i, "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "app-%d" % i}},
                "template": {
                    "metadata": {"labels": {
                        "app": "app-%d" % i, "tier": "web" if i % 2 else "api", "logging": "on",
                        "mesh.apsara-edge.com/mosn-injected": "true"}},
                    "spec": {
                        "containers": [{
                            "name": "app", "image": "example/app:%d" % (i % 50),
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "TZ", "value": "UTC"},
                                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                             {"name": "cache", "mountPath": "/cache", "subPathExpr": "$(TZ)"}],
                        }],
                        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}],
                    },
                },
            },
        })
    return docs


def run(count):
    manifests, sidecarset = _import_engine()
    sets = sidecarset.load_sidecarsets(SIDECARSETS)
    docs = make_templates(count)
    start = time.perf_counter()
    cpu_start = time.process_time()
    injected = 0
    for doc in docs:
        unused_doc, status, unused_reason = manifests.inject_manifest(doc, sets, now="2026-01-01T00:00:00Z")
        injected += status == "injected"
    cpu = time.process_time() - cpu_start
    seconds = time.perf_counter() - start
    if injected != count:
        raise SystemExit("only %d of %d templates were injected" % (injected, count))
    return seconds, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=10000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile report on stderr")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        seconds, cpu = profiler.runcall(run, args.templates)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    else:
        seconds, cpu = run(args.templates)
    # The rate is per CPU second of this (single-threaded) process, so that a busy machine does not distort
    # the one-core figure; wall-clock seconds are reported as well.
    rate = args.templates / cpu if cpu else float("inf")
    print(json.dumps({"bench": "inject_templates", "templates": args.templates, "seconds": round(seconds, 3),
                      "cpu_seconds": round(cpu, 3), "templates_per_s": round(rate, 1), "target_per_s": 5000,
                      "ok": rate >= 5000}))


if __name__ == "__main__":
    main()
