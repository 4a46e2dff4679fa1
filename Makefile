# meshops.sidecarset developer commands. Everything runs from a fresh checkout:
# `make test` builds the whole environment first (venv, kubernetes.core, local control plane).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PYTHONDONTWRITEBYTECODE := 1
# Real kubelet nodes (containerd + kubelet, docs/real-nodes.md) beside the simulated ones, for `make cluster-up`
# and the real-node tests of `make test`; REAL_NODES=0 to skip them.
REAL_NODES ?= 1

.PHONY: help setup test unit sanity lint integration molecule bench chaos conformance demo demo-offline cluster-up cluster-down ensure-cluster clean

help:
	@echo "make demo   - show the collection working (see README)"
	@echo "make test   - set up everything and run the whole test suite (what CI runs)"
	@echo "make setup | unit | sanity | lint | integration | molecule | bench | chaos | conformance | cluster-up | cluster-down | clean"

setup:
	@tools/setup.sh

unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

sanity: setup
	tools/sanity.sh

lint: setup
	$(VENV)/bin/ansible-lint --offline -q

cluster-up: setup
	REAL_NODES=$(REAL_NODES) tools/cluster/up.sh

# With KUBECONFIG set, the tests use that cluster (e.g. kind) and nothing is started here.
ensure-cluster: setup
	@if [ -z "$$KUBECONFIG" ]; then tools/cluster/up.sh; else echo "using the cluster of KUBECONFIG=$$KUBECONFIG"; fi

cluster-down:
	tools/cluster/down.sh

integration: ensure-cluster
	REAL_NODES=$(REAL_NODES) $(PY) -m pytest -q -p no:cacheprovider tests/integration

molecule: ensure-cluster
	tools/molecule.sh

# The whole suite. Static checks first (fast failures), then the cluster, then every pytest
# test in one run so its closing line counts them all. tests/conformance compares with the real kruise-manager
# (docs/kruise-conformance.md): it builds it from its Go module (cold: 7 min) and runs it on a control plane of its
# own; without Go or the module proxy its cases fail with kruise.sh's message (never a silent skip).
test: setup
	tools/sanity.sh
	$(VENV)/bin/ansible-lint --offline -q
	@$(MAKE) --no-print-directory ensure-cluster
	@if [ -x tools/molecule.sh ]; then tools/molecule.sh; fi
	REAL_NODES=$(REAL_NODES) $(PY) -m pytest -p no:cacheprovider -q -rs tests/unit tests/integration tests/conformance

# JSON lines on stdout only: setup and the benchmarks' progress go to stderr.
bench:
	@tools/setup.sh >&2
	@tools/bench/run.sh

# Faults, measured (docs/faults.md): the long variants of the kill, concurrent-run and API-fault tests (30 kill points
# per mode, every API fault, 3 trials each) on the cluster of `make integration`, in namespaces of their own; JSON
# lines per fault on stdout. Not part of `make test` (which runs the short variants).
chaos: ensure-cluster
	@rm -f out/chaos.jsonl; mkdir -p out
	@MESHOPS_CHAOS_KILL_POINTS=30 MESHOPS_CHAOS_TWICE_TRIALS=5 MESHOPS_CHAOS_API_TRIALS=3 MESHOPS_CHAOS_API_ALL=1 \
	  MESHOPS_CHAOS_REPORT=$(CURDIR)/out/chaos.jsonl $(PY) -m pytest -p no:cacheprovider -q -rs \
	  tests/integration/test_rollout_kill.py tests/integration/test_rollout_twice.py tests/integration/test_api_faults.py >&2; \
	  rc=$$?; cat out/chaos.jsonl 2>/dev/null; exit $$rc

# The real kruise-manager v1.9.0 as the oracle (docs/kruise-conformance.md): builds it from its Go module, runs it on
# a control plane of its own, compares injection, hot upgrade, status, validation and migration both ways. Also run
# by `make test` (in its pytest run); this target runs it alone.
conformance: setup
	$(PY) -m pytest -p no:cacheprovider -q -rs tests/conformance

# MESH=mosn: the seed's MOSN proxy on a real kubelet node (docs/mosn.md); the default, the reference sidecar.
MESH ?= reference
demo: setup
	@if [ "$(MESH)" = mosn ]; then tools/mosn/demo.sh; elif [ "$(MESH)" = reference ]; then tools/demo.sh; \
	else echo "make demo: MESH=$(MESH) is not known (reference or mosn)" >&2; exit 2; fi

demo-offline: setup
	tools/demo-offline.sh

clean: cluster-down
	-@[ -x tools/kruise/kruise.sh ] && tools/kruise/kruise.sh down >/dev/null 2>&1; true
	-@[ -d .bench/cluster-kruise ] && $(PY) tools/bench/bench_kruise_race.py --down >/dev/null 2>&1; true
	-@for dir in .bench/cluster-default .bench/cluster-bench; do [ -d $$dir ] && MESHOPS_CLUSTER_DIR=$$dir tools/cluster/down.sh; done; true
	rm -rf $(VENV) .collections .cluster .bench out .pytest_cache
