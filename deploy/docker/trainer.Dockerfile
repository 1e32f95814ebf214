# The trainer image: CUDA PyTorch plus kubenas (trainer, and the controller for the
# reinforce strategy). Trial Jobs run `kubenas-train --from-cluster` explicitly.
#   docker build -f deploy/docker/trainer.Dockerfile -t ghcr.io/kubenas/kubenas-trainer:0.1.0 .
ARG BASE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    KUBENAS_CRD_DIR=/opt/kubenas/crds HOME=/tmp MPLCONFIGDIR=/tmp/.matplotlib
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY operator ./operator
COPY trainer ./trainer
COPY deploy/docker/*.txt ./deploy/docker/
COPY crds /opt/kubenas/crds
# The bring-your-own examples (docs/byo.md): `python -m byo_digits.train_mlp` and the
# builder/loader byo_digits.models:build, byo_digits.data:load.
COPY deploy/examples/byo_digits /opt/kubenas/examples/byo_digits
ENV PYTHONPATH=/opt/kubenas/examples
# torch comes from the base image; every other package pinned with its hash
# (deploy/docker/trainer.txt, from lock.sh), kubenas itself from this checkout. openssl
# makes the metrics endpoint's self-signed certificate of a reinforce experiment's controller.
RUN pip install --require-hashes -r deploy/docker/trainer.txt \
 && pip install --no-deps . \
 && rm -rf /src \
 && python -c "import torch, onnx, onnxruntime, kubenas_trainer.reporting.cluster, kubenas.controller.main" \
 && openssl version
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT []
CMD ["kubenas-train", "--help"]
