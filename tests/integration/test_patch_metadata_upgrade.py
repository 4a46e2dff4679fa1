"""patchPodMetadata re-applied in the Upgrade write (issue 16), on the real API server, while another writer keeps
annotating the same pod: our keys land in the same write as the images, and every annotation of the other writer
survives (its last value is on the pod at the end)."""

import threading
import time

import pytest

from modrun import run_module
from workloads import create_injected_deployment, images, mosn_raw, pods_of, wait_ready, write_yaml

pytestmark = pytest.mark.integration


def _with_patches(raw, patches):
    raw["spec"]["patchPodMetadata"] = patches
    return raw


def test_upgrade_write_reapplies_patch_pod_metadata_and_keeps_a_concurrent_writers_annotations(kube, namespace, tmp_path):
    v1 = _with_patches(mosn_raw(), [{"patchPolicy": "Retain", "annotations": {"mesh.example/config": '{"v":1}'}}])
    create_injected_deployment(kube, v1, "test-app", namespace, 1)
    pod = wait_ready(kube, namespace, 1)[0]
    name = pod["metadata"]["name"]
    assert pod["metadata"]["annotations"]["mesh.example/config"] == '{"v":1}'

    stop = threading.Event()
    written = []
    errors = []

    def other_writer():
        count = 0
        while not stop.is_set():
            count += 1
            try:
                kube.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {
                    "other.example/counter": str(count)}}})
                written.append(str(count))
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)
            time.sleep(0.05)

    thread = threading.Thread(target=other_writer, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        v2 = _with_patches(mosn_raw("tinyqian/mosn:v2"), [
            {"patchPolicy": "Overwrite", "annotations": {"mesh.example/version": "v2"}},
            {"patchPolicy": "MergePatchJson", "annotations": {"mesh.example/config": '{"v":2,"extra":true}'}},
            {"patchPolicy": "Retain", "annotations": {"other.example/counter": "from the SidecarSet"}},
        ])
        result, proc = run_module("sidecar_upgrade", dict(sidecarset=write_yaml(tmp_path / "v2.yaml", v2),
                                                          namespace=namespace, timeout=60, phase="upgrade"),
                                  env=kube.env)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not result.get("failed"), proc.stdout[-3000:]
    assert not errors and len(written) > 5, (errors[:3], len(written))
    pod = pods_of(kube, namespace)[0]
    ann = pod["metadata"]["annotations"]
    assert images(pod)["mosn-2"] == "tinyqian/mosn:v2"
    assert ann["mesh.example/version"] == "v2"
    assert ann["mesh.example/config"] == '{"extra":true,"v":2}'
    # the other writer's annotation: its last write, never ours (Retain: the pod had the key)
    assert ann["other.example/counter"] == written[-1]
