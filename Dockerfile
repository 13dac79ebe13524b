# syntax=docker/dockerfile:1
# One image for both roles; the config file chooses the collectors (docs/deploy.md).
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t snat-exporter:0.1.0 .    or, without a local engine:
#   az acr build --registry <acr> --image snat-exporter:0.1.0 .
# Pin the base by digest in your own build (python:3.11-slim-trixie@sha256:...) for fully reproducible images.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/snat-exporter
WORKDIR /src
# The same constraints file as CI (`make deps`): the image runs the dependency versions the tests ran.
# Only the runtime dependencies of pyproject.toml are installed; the dev extras never enter the image.
COPY constraints.txt pyproject.toml README.md LICENSE ./
COPY snat_exporter ./snat_exporter
# The source revision that `snat-exporter --version` and snat_exporter_build_info report (release.yml passes the
# commit; without it they say "unknown").
ARG REVISION=""
RUN if [ -n "$REVISION" ]; then echo "$REVISION" > snat_exporter/REVISION; fi
RUN /opt/snat-exporter/bin/pip install --constraint constraints.txt . \
 && /opt/snat-exporter/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# pip compiled the byte-code at install time; at run time the root filesystem is read-only, so never write any.
# A fixed glibc mmap threshold: each cycle allocates and frees multi-megabyte buffers (Azure answers, rendered
# exposition), and glibc's dynamic threshold would otherwise move them onto a heap that fragments and is never
# returned (measured at 1,200 resources: 284 MB RSS without it, 172 MB with it; docs/performance.md). The exporter
# also fixes it at start-up (snat_exporter/tuning.py); here glibc has it before the interpreter allocates anything.
ENV PATH=/opt/snat-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_MMAP_THRESHOLD_=131072
RUN groupadd --system --gid 65532 snat \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin snat
COPY --from=build /opt/snat-exporter /opt/snat-exporter
# Numeric, so that the kubelet can verify runAsNonRoot without reading /etc/passwd. The node agent overrides it
# (uid 0 holding only CAP_NET_ADMIN): see docs/deploy.md.
USER 65532:65532
EXPOSE 9874
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["snat-exporter"]
CMD ["serve", "--config", "/etc/snat-exporter/config.yaml"]
