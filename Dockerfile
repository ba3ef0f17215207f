# syntax=docker/dockerfile:1
# livetoken — multi-stage: build wheels with the pinned lock, run as a non-root user on a slim base.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY service ./service
# With the otel extra: tracing stays off until OTEL_* variables configure it (README: Tracing).
RUN python -m venv /opt/livetoken \
 && /opt/livetoken/bin/pip install --no-cache-dir --disable-pip-version-check -c requirements.lock '.[otel]'

FROM python:3.11-slim AS runtime
# The version pyproject.toml names (tests/ops check they agree); `docker compose build` tags the image with it.
LABEL org.opencontainers.image.title="livetoken" \
      org.opencontainers.image.version="0.2.0"
# No compilers, no pip cache, no secrets: only the virtualenv and the example config.
COPY --from=build /opt/livetoken /opt/livetoken
COPY deploy/livetoken.toml /etc/livetoken/livetoken.toml
RUN groupadd --system --gid 10001 livetoken \
 && useradd --system --uid 10001 --gid livetoken --home-dir /nonexistent --shell /usr/sbin/nologin livetoken
ENV PATH=/opt/livetoken/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LIVETOKEN_CONFIG=/etc/livetoken/livetoken.toml \
    LIVETOKEN_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["livetoken"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
