# The demo application image meshops/demo-app:1 (make demo, real nodes): meshsidecar's tiny upstream on
# 127.0.0.1:8080, where the sidecar (MESH_SIDECAR_UPSTREAM) sends the pod's traffic.
#   docker build -f examples/demo/Dockerfile.app -t meshops/demo-app:1 examples/mesh-sidecar
# tools/images builds it without Docker (docs/real-nodes.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/mesh-sidecar

COPY meshsidecar /opt/mesh-sidecar/meshsidecar
RUN useradd --uid 10002 --no-create-home --shell /usr/sbin/nologin app
USER 10002
WORKDIR /opt/mesh-sidecar

ENTRYPOINT ["python", "-m", "meshsidecar", "app"]
CMD ["--host", "127.0.0.1", "--port", "8080"]
