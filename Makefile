# Two commands do all set-up on a fresh machine (see README):
#   make demo   -- a real NAS search on the embedded default (no cluster)
#   make test   -- the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch from PyPI: on Linux that is the CUDA build (several GB; it also runs on a CPU).
# For the much smaller CPU build on a laptop:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Debian/Ubuntu: `python3 -m venv` needs the python3-venv package.
TORCH_SPEC ?= torch==2.13.0
# torchvision (object detection) is built for one torch: installed with it, so the extra never moves torch.
TORCHVISION_SPEC ?= torchvision==0.28.0
TORCH_INDEX ?=
EXAMPLE ?= deploy/examples/digits-evolution.yaml
RUN_DIR ?= runs/demo

.PHONY: install demo test test-fast kube helm kueue prometheus chart clean sync-crds

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" "$(TORCHVISION_SPEC)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/pip install -q -e ".[train,serve,test,bench]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/kubenas run $(EXAMPLE) --run-dir $(RUN_DIR)

# The real-API-server tier (tests/e2e): etcd, kube-apiserver and kube-controller-manager
# built from their Go modules once, into ~/.cache/kubenas (hack/kube/build.sh; needs Go).
kube:
	bash hack/kube/build.sh >/dev/null

# helm for the chart tests (tests/e2e/test_helm.py), built from the helm.sh/helm/v3 Go
# module once, into ~/.cache/kubenas (hack/helm/build.sh; needs Go).
helm:
	bash hack/helm/build.sh >/dev/null

# Kueue's controller manager and its install manifests for tests/e2e/test_kueue.py, built
# from the sigs.k8s.io/kueue Go module once, into ~/.cache/kubenas (hack/kueue/build.sh; needs Go).
kueue:
	bash hack/kueue/build.sh >/dev/null

# prometheus and promtool for the monitoring tests (tests/observability, tests/e2e/test_prometheus.py):
# Debian 12's package, unpacked once into ~/.cache/kubenas (hack/prometheus/install.sh; apt).
prometheus:
	bash hack/prometheus/install.sh >/dev/null

test: install kube helm kueue prometheus
	$(BIN)/python -m pytest -q

# For contributors: the unit and emulated-API-server tiers only (no Go build, no control
# plane); about 12 minutes on 2 cores. `make test` (CI) runs the real-API-server tier too.
test-fast: install prometheus
	$(BIN)/python -m pytest -q --ignore=tests/e2e

clean:
	rm -rf $(VENV) runs build *.egg-info

# kustomize cannot read files above deploy/, so deploy/crds/ is a copy of crds/
# (tests/install/test_deploy.py fails when they drift).
sync-crds:
	sh deploy/sync-crds.sh

# charts/kubenas is generated from deploy/ (tests/install/test_chart.py fails when it drifts).
chart: install
	$(BIN)/python hack/helm/chart.py
