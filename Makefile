# Two commands a new user needs: `make demo` (the main job) and `make test` (the suite).
# Both set up a local virtual environment from pyproject.toml first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-onnx test test-slow clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rowstat demo

# The shipped digits CNN: 8 test images on the tiny preset's RTL, accuracy and a per-layer table.
demo-onnx: $(STAMP)
	$(BIN)/rowstat demo --onnx

test: $(STAMP)
	$(BIN)/python -m pytest -n auto

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) .cache build
