# fbifpn: the two commands are `make demo` and `make test`; both create .venv first when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= demo

# timm would otherwise retry the model hub for ~47 s before failing on machines without a network.
export HF_HUB_OFFLINE := 1

.PHONY: venv demo bench test test-fast lint format lab strip clean

venv: $(STAMP)

# Reinstalls when pyproject.toml changes. facenet-pytorch goes in with --no-deps: its metadata pins
# torch<2.3 and numpy<2, yet it runs with the pinned torch (shared/docs/environment.md).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	$(PY) -m pip install --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

# The main job on the embedded default, until the notebooks land: the synthetic benchmark (cached in
# runs/data/demo-seed0/), its face crops and manifests (runs/prep/), the model's cost table, an
# overfit check, training on synth-ff (runs/demo/; a finished run is resumed, not redone) and the
# in-dataset and cross-dataset evaluations.
DATA := runs/data/demo-seed0
WORKERS ?= $(shell nproc)
demo: venv
	$(PY) -m fbifpn synth --size demo --workers $(WORKERS)
	$(PY) -m fbifpn prep --layout ffpp --root $(DATA)/synth-ff --workers $(WORKERS)
	$(PY) -m fbifpn prep --layout celebdf --root $(DATA)/synth-cdf --workers $(WORKERS)
	$(PY) -m fbifpn prep --layout dfdc --root $(DATA)/synth-dfdc --workers $(WORKERS)
	$(PY) -m fbifpn info --profile $(PROFILE)
	$(PY) -m fbifpn overfit --profile $(PROFILE)
	$(PY) -m fbifpn train --profile $(PROFILE) --run-dir runs/$(PROFILE) --resume
	for set in synth-ff synth-cdf synth-dfdc; do \
	  $(PY) -m fbifpn eval --checkpoint runs/$(PROFILE)/best.pt --manifest runs/prep/$$set-demo-seed0 \
	    --out runs/$(PROFILE)/eval-$$set || exit 1; \
	done

bench: venv
	$(PY) benchmarks/sbi_rate.py
	$(PY) benchmarks/prep_rate.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

test-fast: lint
	$(PY) -m pytest -m "not slow"

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lab: venv
	$(VENV)/bin/jupyter lab

strip: venv
	git ls-files '*.ipynb' | xargs -r $(VENV)/bin/nbstripout

clean:
	rm -rf $(VENV) runs
