# syntax=docker/dockerfile:1
#
# replaywire in a container:
#
#   docker build -t replaywire .
#   docker run -p 8080:8080 -v replaywire-data:/data replaywire
#
# Every knob is an environment variable (see `replaywire serve --help`).
# The build stage compiles the Rust core into a wheel with maturin; the
# runtime stage is a slim Python with that wheel and nothing else.

ARG PYTHON_VERSION=3.11
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

# --- the wheel ---------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS rust
# Node builds the browser tracker and viewer (js/, esbuild) that the wheel ships.
FROM node:20-${DEBIAN}-slim AS node

# Same Python (and glibc) as the runtime stage, so the wheel's tags match it.
FROM python:${PYTHON_VERSION}-slim-${DEBIAN} AS build
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
ENV CARGO_HOME=/usr/local/cargo \
    RUSTUP_HOME=/usr/local/rustup \
    PATH=/usr/local/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The compiler of the build stage only; pinning Debian's versions would break
# the build at each point release for no gain in the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN pip install "maturin>=1.7,<2"

WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust rust
COPY python python
COPY js js
RUN npm --prefix js ci --no-audit --no-fund && node js/build.mjs
# Cargo's registry and target folder are cache mounts: a rebuild after a
# Python-only change does not compile the dependencies again.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    maturin build --release --locked --interpreter python3 --out /wheels

# --- the runtime ---------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN groupadd --system --gid 10001 replaywire \
 && useradd --system --uid 10001 --gid replaywire --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin replaywire \
 && mkdir -p /data \
 && chown replaywire:replaywire /data

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install /wheels/replaywire-*.whl

# The server listens on every interface inside the container; storage lives
# on the volume. Logs are JSON lines on stdout (LOG_FORMAT=auto would pick
# JSON anyway without a TTY, but `docker run -t` should not change them).
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL=sqlite:////data/replaywire.db \
    SPOOL_DIR=/data/spool \
    LOG_FORMAT=json
VOLUME /data
WORKDIR /data
EXPOSE 8080
# Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 10001:10001

# Liveness only: /health/live answers 200 while the process serves HTTP.
# urlopen raises on anything but 2xx, which exits non-zero.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8080'), timeout=2)"]

# `replaywire serve` is PID 1: it handles SIGTERM itself (trio signal
# receiver): readiness fails at once, WebSockets close with 1001, every
# accepted batch is written, and it exits within DRAIN_SECONDS (15 s by
# default). A second SIGTERM forces the exit. Give `docker stop` more than
# DRAIN_SECONDS: `docker stop -t 25` (docker-compose.yml: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["replaywire", "serve"]
