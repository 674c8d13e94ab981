# Image for clusters (KubeRay manifests in k8s/, launcher configs in cluster/): Ray 2.60 + this project.
FROM rayproject/ray:2.60.0-py311-gpu
# The Linux torch wheel on PyPI is the CUDA build.
RUN pip install --no-cache-dir "torch==2.13.0"
COPY --chown=ray:users . /home/ray/sweep
RUN pip install --no-cache-dir /home/ray/sweep
