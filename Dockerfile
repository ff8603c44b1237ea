# hmt as a single-node service: the engine, the API and the web UI in one process.
# The database is SQLite on the /data volume unless HMT_DATABASE_URL names PostgreSQL.
# HMT_ENGINE_ID is fixed because a container's host name changes with every restart and
# the derived id would too; give each engine its own when several share one database.
# See README.md, "Docker". Not build-tested in the project's CI (it has no registry
# for base images); the wheel it installs is the one tests/cli/test_wheel.py checks.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HMT_HOST=0.0.0.0 \
    HMT_PORT=8000 \
    HMT_DATABASE_URL=sqlite:////data/hmt.db \
    HMT_ENGINE_ID=hmt-single-node
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin hmt \
    && mkdir -p /data && chown hmt /data
USER hmt
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# /health is public and answers 503 when the engine is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HMT_PORT', '8000'), timeout=4)"]
# SIGTERM (docker stop) stops `hmt run` gracefully: in-flight orders finish first.
STOPSIGNAL SIGTERM
CMD ["hmt", "run"]
