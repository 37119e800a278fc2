# The two commands a person needs: `make test` and `make run`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test run lint venv clean

venv: $(STAMP)

# torch and torchvision are pinned as a matched pair (see pyproject.toml); pip, not uv.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/mkt-desktop

lint: $(STAMP)
	$(BIN)/ruff check mkt_core trainer mkt_desktop tests benchmarks tools

clean:
	rm -rf $(VENV) build *.egg-info
