# mesh-sidecar *stuck* image, for the never-ready test on real nodes (tools/images, docs/real-nodes.md).
#   docker build -f tools/images/mesh-sidecar-stuck.Dockerfile -t meshops/mesh-sidecar:stuck examples/mesh-sidecar
# The real sidecar with its test-only fault: as the new twin it receives the listeners from the old one but
# never sends READY (pause-before-ready), so its postStart hook waits until its own timeout and fails, and it is
# never ready. The old twin gives up waiting for READY after MESH_SIDECAR_READY_TIMEOUT and keeps serving: a
# release that hangs in its hand-over, as seen by the kubelet.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/mesh-sidecar \
    MESH_SIDECAR_BUILD=stuck \
    MESH_SIDECAR_FAULT=pause-before-ready=3600

COPY meshsidecar /opt/mesh-sidecar/meshsidecar
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin mesh
USER 10001
WORKDIR /opt/mesh-sidecar

ENTRYPOINT ["python", "-m", "meshsidecar"]
CMD ["serve"]
