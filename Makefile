# glmix: `make demo` runs the default grid on the CPU and shows the leaderboard; `make test` runs the tests.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
RESULTS ?= results/smoke

.PHONY: setup test demo bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .

setup: $(BIN)/python

test: $(BIN)/python
	$(BIN)/python -m pytest -n 2 -q

demo: $(BIN)/python
	$(BIN)/python -m runners.demo results_dir=$(abspath $(RESULTS))

bench: $(BIN)/python
	$(BIN)/python -m bench.tasks
	$(BIN)/python -m bench.ops

lint: $(BIN)/python
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) results multirun outputs .pytest_cache
