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
COPY crds /opt/kubenas/crds
# torch comes from the base image; install the rest of the [train] extra around it.
RUN pip install "numpy>=1.24" "scikit-learn>=1.3" "matplotlib>=3.7" "onnx>=1.16" "onnxruntime>=1.18" \
 && pip install --no-deps . \
 && pip install "kopf>=1.37" "kubernetes>=28" "prometheus-client>=0.19" "pyyaml>=6" "jsonschema>=4.18" "rich>=13" \
 && rm -rf /src \
 && python -c "import torch, onnx, onnxruntime, kubenas_trainer.k8s_report, kubenas.controller.main"
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT []
CMD ["kubenas-train", "--help"]
