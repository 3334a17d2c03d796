# deliverability-exporter: a small image that runs the exporter as a non-root user.
#
#   docker build -t deliverability-exporter .
#   docker run -p 9723:9723 \
#     -v "$PWD/config.yml:/etc/deliverability-exporter/config.yml:ro" deliverability-exporter
#
# Point resolver.nameservers at a local recursive resolver (the unbound service
# of docker-compose.yml): blocklists refuse queries from public resolvers.
FROM python:3.12-slim

LABEL org.opencontainers.image.title="deliverability-exporter" \
      org.opencontainers.image.description="Prometheus exporter for mail deliverability: DNSBL listings, reverse DNS, SPF, DKIM, DMARC, MX and transport security" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid, so mounted config files can be made readable to it.
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid exporter --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin exporter \
 && mkdir -p /etc/deliverability-exporter

# Only what the package needs (.dockerignore keeps the rest out of the context).
WORKDIR /tmp/build
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
RUN pip install --no-cache-dir . \
 && rm -rf /tmp/build

WORKDIR /
USER 10001:10001
EXPOSE 9723

# The slim image has no curl: ask /-/healthy with Python itself. This assumes
# the default plain-HTTP listener on :9723.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9723/-/healthy', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["deliverability-exporter"]
CMD ["--config.file=/etc/deliverability-exporter/config.yml"]
