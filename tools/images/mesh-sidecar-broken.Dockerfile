# mesh-sidecar *broken* image, for the failure tests on real nodes (tools/images, docs/real-nodes.md).
#   docker build -f tools/images/mesh-sidecar-broken.Dockerfile -t meshops/mesh-sidecar:broken examples/mesh-sidecar
# The same files, user and commands as the real sidecar image, but the entrypoint exits 1 at once: kubelet
# reports the container terminated (Error), the exec postStart hook fails, and the container goes into
# CrashLoopBackOff, while the old twin keeps serving. This is what a bad release looks like on a kubelet.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/mesh-sidecar \
    MESH_SIDECAR_BUILD=broken

COPY meshsidecar /opt/mesh-sidecar/meshsidecar
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin mesh
USER 10001
WORKDIR /opt/mesh-sidecar

ENTRYPOINT ["/bin/sh", "-c", "echo 'mesh-sidecar:broken exits on purpose' >&2; exit 1", "mesh-sidecar-broken"]
CMD ["serve"]
