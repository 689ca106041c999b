# tusedge: tus 1.0.0 upload server. Serves on 0.0.0.0:1080 with its data in the /data volume.

# The upload page's copy of tus-js-client, from the npm registry through web/package-lock.json.
FROM node:20-slim AS web
WORKDIR /src
COPY web ./web
COPY tusedge/server/static ./tusedge/server/static
RUN npm --prefix web ci --no-audit --no-fund && npm --prefix web run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TUSEDGE_HOST=0.0.0.0 \
    TUSEDGE_PORT=1080 \
    TUSEDGE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tusedge ./tusedge
COPY conformance ./conformance
COPY --from=web /src/tusedge/server/static/vendor ./tusedge/server/static/vendor
RUN pip install --no-cache-dir ".[postgres]" \
    && useradd --system --uid 10001 --home-dir /data tusedge \
    && mkdir -p /data && chown tusedge /data

USER tusedge
VOLUME ["/data"]
EXPOSE 1080/tcp 1080/udp
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:%s/files/' % os.environ.get('TUSEDGE_PORT', '1080'), method='OPTIONS'))"
ENTRYPOINT ["tusedge", "serve"]
