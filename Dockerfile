# syntax=docker/dockerfile:1.7
# Mashpipe server image: embedded default (SQLite under /data), non-root, `mashpipe serve`.
# Build: docker build -t mashpipe .   Run: docker run -p 8000:8000 -v mashpipe-data:/data mashpipe

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY app ./app
COPY connectors ./connectors
COPY migrations ./migrations
RUN python -m venv /opt/mashpipe && /opt/mashpipe/bin/pip install --upgrade pip \
    && /opt/mashpipe/bin/pip install .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/mashpipe/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MASHPIPE_DATABASE_URL=sqlite+aiosqlite:////data/mashpipe.db \
    MASHPIPE_HOST=0.0.0.0 \
    MASHPIPE_PORT=8000
RUN groupadd --system --gid 10001 mashpipe \
    && useradd --system --uid 10001 --gid mashpipe --home-dir /data --shell /usr/sbin/nologin mashpipe \
    && mkdir -p /data && chown mashpipe:mashpipe /data
COPY --from=build /opt/mashpipe /opt/mashpipe
COPY examples /opt/mashpipe-examples
USER mashpipe
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=2).status == 200 else 1)"
CMD ["mashpipe", "serve"]
