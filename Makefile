# The two commands a person needs: `make test` and `make run`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-tools run lint venv clean gpu-wheels

venv: $(STAMP)

# torch and torchvision are pinned as a matched pair (see pyproject.toml); pip, not uv.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# exiftool and exiv2: the oracles the sidecar tests read XMP back with (skipped with a message without them)
test-tools:
	apt-get install -y libimage-exiftool-perl exiv2 || sudo apt-get install -y libimage-exiftool-perl exiv2

run: $(STAMP)
	$(BIN)/mkt-desktop

# ruff over everything; mypy over what the app ships (scope in pyproject.toml's [tool.mypy])
lint: $(STAMP)
	$(BIN)/ruff check mkt_core trainer mkt_desktop tests benchmarks tools
	$(BIN)/mypy

# the small pure-Python packages benchmarks/gpu_suite.sh installs on a GPU machine that lacks them
gpu-wheels: $(STAMP)
	$(BIN)/pip download --quiet --no-deps --dest benchmarks/wheels open_clip_torch ftfy wcwidth safetensors regex

clean:
	rm -rf $(VENV) build *.egg-info
