# syntax=docker/dockerfile:1
# Image for clusters (KubeRay manifests in k8s/, launcher configs in cluster/): Ray 2.60 + this project.
# Build context: only what .dockerignore lets through (pyproject.toml, README.md and the three
# packages); the final image holds the installed packages, not the sources.
#
# The base is pinned by its release tag, which names the Ray and Python versions the project
# requires (ray>=2.60,<2.61). To pin it bit for bit, build with its digest:
#   docker build --build-arg RAY_IMAGE=rayproject/ray@sha256:DIGEST .
# (`docker buildx imagetools inspect rayproject/ray:2.60.0-py311-gpu` prints the digest.)
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu

FROM ${RAY_IMAGE} AS wheel
USER 1000:100
WORKDIR /tmp/src
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 orchestrator/ orchestrator/
COPY --chown=1000:100 cluster/ cluster/
COPY --chown=1000:100 schedules/ schedules/
RUN pip wheel --no-deps --no-cache-dir --wheel-dir /tmp/wheels .

FROM ${RAY_IMAGE}
# `ray` (uid 1000, group users) in rayproject/ray images; numeric, so that Kubernetes'
# runAsNonRoot can check it.
USER 1000:100
# The Linux torch wheel on PyPI is the CUDA build.
RUN pip install --no-cache-dir "torch==2.13.0"
RUN --mount=type=bind,from=wheel,source=/tmp/wheels,target=/tmp/wheels \
    pip install --no-cache-dir /tmp/wheels/*.whl
