# QuickSketch: `make demo` runs the main job, `make test` runs every test.
# Both create .venv and install what they need on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The README's test command: unit tests, the browser test and the notebooks.
# --durations: the slowest tests are printed at the end, to keep the suite well under 30 minutes.
PYTEST_ARGS := tests notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider --durations=25

.PHONY: demo test install lab bench clean help

help:
	@echo "make demo    set up .venv, then data -> train (short) -> evaluate -> export ONNX -> predict"
	@echo "make test    set up .venv, then run all tests (pytest $(PYTEST_ARGS))"
	@echo "make lab     open the notebooks in JupyterLab"
	@echo "make bench   benchmark training and inference speed"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/quicksketch demo

# The tested run: notebooks run short (CI=true) and read the real drawings beside the checkout
# when they exist (an absolute path: nbval starts kernels inside notebooks/), else the offline default.
SHARED_QUICKDRAW := $(wildcard $(abspath ../shared/data/quickdraw))
SHARED_STROKES := $(wildcard $(abspath ../shared/data/strokes))
test: export CI = true
test: export QUICKSKETCH_DATA = $(SHARED_QUICKDRAW)
test: export QUICKSKETCH_STROKES = $(SHARED_STROKES)
# ... and train into artifacts/, never over a model a person trained in models/.
test: export QUICKSKETCH_CHECKPOINT = $(abspath artifacts/nbval/sketchcnn.pt)
# ... and keep the shipped models' ONNX exports (what `predict` answers with) there too, not in ~/.cache.
test: export XDG_CACHE_HOME = $(abspath artifacts/cache)
# pytest exits 5 when it collected no tests: that is a failure here.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# The bench measures on the real drawings and strokes beside the checkout when they exist.
bench: export QUICKSKETCH_DATA = $(SHARED_QUICKDRAW)
bench: export QUICKSKETCH_STROKES = $(SHARED_STROKES)
bench: $(STAMP)
	$(BIN)/quicksketch bench --quick

clean:
	rm -rf $(VENV) .pytest_cache artifacts
