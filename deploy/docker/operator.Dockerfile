# The operator and controller image: kubenas without torch (kopf, the official client,
# the search spaces and the random / evolution strategies).
#   docker build -f deploy/docker/operator.Dockerfile -t ghcr.io/kubenas/kubenas-operator:0.1.0 .
# Experiments with strategy.type reinforce run their controller in the trainer image,
# which has torch (see kubenas.operator.manifests.controller_image).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    KUBENAS_CRD_DIR=/opt/kubenas/crds
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY operator ./operator
COPY trainer ./trainer
COPY deploy/docker/*.txt ./deploy/docker/
COPY crds /opt/kubenas/crds
# Every package pinned with its hash (deploy/docker/operator.txt, from lock.sh); kubenas
# itself from this checkout, nothing else resolved at build time. openssl (Debian's
# ca-certificates depends on it) makes the metrics endpoint's self-signed certificate.
RUN pip install --require-hashes -r deploy/docker/operator.txt \
 && pip install --no-deps . && rm -rf /src && python -c "import kubenas.operator.handlers, kubenas.controller.main" \
 && openssl version
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT []
CMD ["kubenas", "operator"]
