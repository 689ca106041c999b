# tusedge: tus 1.0.0 upload server. Serves on 0.0.0.0:1080 with its data in the /data volume, as an
# unprivileged user, and runs with a read-only root file system (docs/deploy.md#in-a-container).
#
#   scripts/build-image                  the wheelhouse, then docker or podman build (what the tests run)
#   docker build -t tusedge .            the same from the package index, on the public base image
#
# The base image is a build argument: any Debian-like image with python3 (3.11+) and its venv module, e.g.
# one made from Debian packages by mmdebstrap where no registry is reachable (scripts/build-image
# --debian-base). With wheels in build/wheelhouse/ (made on the host by scripts/build-image) the build
# installs from them only and needs no network at all.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim

# The wheels (if any) and the list of dependencies, in a stage of their own: the image gets neither.
FROM ${BASE_IMAGE} AS wheels
COPY pyproject.toml build/wheelhouse/*.whl /wheels/

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/tusedge/bin:$PATH \
    TUSEDGE_HOST=0.0.0.0 \
    TUSEDGE_PORT=1080 \
    TUSEDGE_DATA_DIR=/data

# 1. The dependencies, with the [postgres] extra (several nodes sharing state), in their own layer: it is
#    kept while only tusedge's code changes. Offline from the wheels when there are any; the list of their
#    digests (made with them) is what a cached layer is checked against.
COPY pyproject.toml build/wheelhouse/SHA256SUM[S] /tmp/dependencies/
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi; \
    python3 -m venv /opt/tusedge; \
    python3 -c 'import tomllib; p = tomllib.load(open("/wheels/pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["postgres"]))' > /tmp/requirements.txt; \
    /opt/tusedge/bin/pip install --quiet "$@" -r /tmp/requirements.txt; \
    rm -r /tmp/requirements.txt /tmp/dependencies; \
    groupadd --system --gid 10001 tusedge; \
    useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin tusedge; \
    mkdir -p /data; \
    chown tusedge:tusedge /data

# 2. tusedge itself (the upload page's files and its copy of tus-js-client come with the package).
COPY pyproject.toml README.md /src/
COPY tusedge /src/tusedge
COPY conformance /src/conformance
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi; \
    /opt/tusedge/bin/pip install --quiet --no-deps "$@" /src; \
    rm -rf /src; \
    tusedge --version

USER tusedge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 1080/tcp 1080/udp
# SIGTERM drains: no new uploads, PATCHes in flight get TUSEDGE_DRAIN_TIMEOUT_S (30 s), then what arrived is
# committed. Give the container that long to stop: docker stop -t 40, podman stop -t 40.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TUSEDGE_PORT', '1080'), timeout=3)"]
ENTRYPOINT ["tusedge", "serve"]
