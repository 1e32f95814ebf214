# Two commands do all set-up on a fresh machine (see README):
#   make demo   -- a real NAS search on the embedded default (no cluster)
#   make test   -- the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; set TORCH_SPEC="torch" for your platform's default build.
TORCH_SPEC ?= torch==2.13.0
EXAMPLE ?= deploy/examples/digits-evolution.yaml
RUN_DIR ?= runs/demo

.PHONY: install demo test clean sync-crds

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[train,test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/kubenas run $(EXAMPLE) --run-dir $(RUN_DIR)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info

# kustomize cannot read files above deploy/, so deploy/crds/ is a copy of crds/
# (tests/operator/test_deploy.py fails when they drift).
sync-crds:
	sh deploy/sync-crds.sh
