# syntax=docker/dockerfile:1
# The Tenant operator: `tenantry operator` (kopf), turning Tenant resources into gateways.
#
# Build from the repository root (the context needs pyproject.toml, uv.lock and the packages):
#   docker build -f images/operator.Dockerfile -t tenantry/operator:dev .
#
# The base image is pinned by tag and digest; images/README.md says how to move the pin.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- build: resolve exactly what uv.lock says into /app/.venv -------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# The same uv release the project pins in its dev tools.
RUN pip install "uv==0.13.8"

WORKDIR /src
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

COPY control_plane ./control_plane
COPY tenant_gateway ./tenant_gateway
COPY operators ./operators
# --no-editable: the project goes into the venv as a package, so /src is not needed at run time.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- run: the venv on a clean base, as an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE}

RUN groupadd --system --gid 10001 tenantry \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tenantry

COPY --from=build /app/.venv /app/.venv

# Read-only root filesystem friendly: no bytecode written at run time (it was compiled at build),
# HOME and temporary files in /tmp (an emptyDir on Kubernetes).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# For Docker and Compose (kopf's liveness endpoint); Kubernetes uses the chart's probe.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8081/healthz', timeout=2)"]
USER 10001:10001
WORKDIR /tmp
EXPOSE 8081
ENTRYPOINT ["tenantry"]
CMD ["operator", "--liveness", "http://0.0.0.0:8081/healthz"]
