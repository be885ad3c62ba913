# glmix: `make demo` runs the default grid on the CPU and shows the leaderboard; `make test` runs the tests.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
RESULTS ?= results/smoke

.PHONY: setup test test-slurm fuzz demo bench bench-full lint clean clean-results

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .

setup: $(BIN)/python

test: $(BIN)/python
	$(BIN)/python -m pytest -n 2 -q

# the tests of tests/slurm/ against a one-node Slurm cluster that they start and stop (root;
# installs slurm-wlm and munge with apt-get when missing; otherwise says why it skips, exit 0)
test-slurm: $(BIN)/python
	@sh tests/slurm/install.sh; rc=$$?; [ $$rc -eq 3 ] && exit 0; [ $$rc -eq 0 ] || exit $$rc; \
	GLMIX_SLURM_TESTS=1 $(BIN)/python -m pytest tests/slurm -p no:xdist -p no:cacheprovider -q

# the fuzzer's long profile (tests/fuzz/, docs/design.md "Untrusted inputs"): random draws,
# FUZZ_EXAMPLES per test (make test runs the short, fixed-seed profile); a failing draw is kept in
# .hypothesis/ and replayed first next time, and becomes a regression test (@example)
FUZZ_EXAMPLES ?= 2000
fuzz: $(BIN)/python
	GLMIX_FUZZ=long GLMIX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz -n 2 -q

demo: $(BIN)/python
	$(BIN)/python -m analysis.demo results_dir=$(abspath $(RESULTS))

# bench: a quick sweep within 5 minutes on 2 cores (task generation of 20,000 sequences, the
# layers at n = 256, one training step per mixer at n = 128 on a small batch); bench-full: the
# whole sweep, about 80 minutes on 2 cores (docs/benchmarks.md).
# Each writes its JSON under bench_out/ after every mixer.
bench: $(BIN)/python
	$(BIN)/python -m bench.tasks --num-examples 20000
	$(BIN)/python -m bench.ops --quick --max-n 256 --compare ''
	$(BIN)/python -m bench.step --ns 128 --batch 4 --min-run-time 0.2

bench-full: $(BIN)/python
	$(BIN)/python -m bench.tasks
	$(BIN)/python -m bench.ops
	$(BIN)/python -m bench.step --full

lint: $(BIN)/python
	$(BIN)/ruff check .

# clean keeps results/ (finished runs are expensive); clean-results removes them
clean:
	rm -rf $(VENV) multirun outputs .pytest_cache build dist *.egg-info

clean-results:
	rm -rf results
