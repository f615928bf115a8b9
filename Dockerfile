# One image for both processes of wpclone; the command picks which runs:
#   python -m wpclone_operator   (the default)      python -m wpclone_api
# Build: docker build -t wpclone:dev .    (the Helm chart sets the command of each Deployment)

# The base is pinned to a patch release; bump it deliberately (and pin its digest when releasing).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY engine/ engine/
COPY common/ common/
COPY operator/ operator/
COPY api/ api/
COPY cli/ cli/
# A virtual environment is a self-contained folder: the runtime stage copies it and nothing else.
RUN python -m venv /opt/wpclone && /opt/wpclone/bin/pip install -c constraints.txt .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="wpclone" \
      org.opencontainers.image.description="Temporary clones of production WordPress sites: operator and REST API"
# A fixed numeric user: Kubernetes can verify runAsNonRoot, and the chart runs as the same uid.
RUN groupadd --system --gid 10001 wpclone \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin wpclone
COPY --from=build /opt/wpclone /opt/wpclone
ENV PATH=/opt/wpclone/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# 8080: the operator's /healthz; 9090: its /metrics; 8000: the API (with /healthz and /metrics).
EXPOSE 8080 9090 8000
CMD ["python", "-m", "wpclone_operator"]
