"""Prompt-prefix caching: the warm-up, slot pinning and re-priming (unit), and on a real llama-server,
replies at temperature 0 that do not depend on the order of the cases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchsel import runner
from benchsel.backends.llamacpp import LlamaCppBackend
from benchsel.backends.ollama import OllamaBackend
from benchsel.backends.openai import OpenAIBackend
from benchsel.errors import TransportError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.prefix_cache import describe_setting, effective_prompt_cache, prime
from benchsel.records import ColdPrefill, Reply, RequestOptions
from benchsel.store import Store
from benchsel.summary import summarize_run

MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def evalset() -> EvalSet:
    return load_evalset("extraction-v1")


class Recorder:
    """Records each request (its last message and options) and answers with fixed timings."""

    name = "openai"

    def __init__(self, slots: int | None, fail_warm_ups: int = 0) -> None:
        self.slots = slots
        self.sent: list[tuple[str, RequestOptions]] = []
        self.fail_warm_ups = fail_warm_ups

    def slots_for(self, model: str) -> int | None:
        return self.slots

    def chat(
        self, model: str, messages: list[dict[str, str]], options: RequestOptions, schema: Any = None
    ) -> Reply:
        self.sent.append((messages[-1]["content"], options))
        if options.num_predict == 1 and self.fail_warm_ups:
            self.fail_warm_ups -= 1
            raise TransportError("connection", "refused")
        return Reply(content="{}", prompt_eval_count=200, prompt_eval_duration_ns=1_000_000_000)


def user_text(evalset: EvalSet, text: str) -> str:
    return evalset.prompt.messages(text)[-1]["content"]


def warm_up_text(evalset: EvalSet) -> str:
    return user_text(evalset, "")


def test_warm_up_is_cold_and_every_later_case_starts_from_a_re_primed_slot(evalset: EvalSet) -> None:
    backend = Recorder(slots=1)
    primed = prime(backend, MODEL, evalset.prompt, RequestOptions(), concurrency=1)  # type: ignore[arg-type]
    assert primed.cold == ColdPrefill(200, 1_000_000_000) and primed.cold.tokens_per_s == 200
    for case in evalset.cases[:3]:
        primed.chat(MODEL, evalset.prompt.messages(case.text), RequestOptions())
    warm = warm_up_text(evalset)
    cases = [user_text(evalset, case.text) for case in evalset.cases[:3]]
    assert [text for text, _ in backend.sent] == [warm, cases[0], warm, cases[1], warm, cases[2]]
    cold, *later = [options for _, options in backend.sent]
    assert cold.prompt_cache is False and cold.num_predict == 1 and cold.format == "none"
    assert all(options.prompt_cache and options.slot == 0 for options in later)


def test_every_slot_is_primed_and_each_request_is_pinned_to_one(evalset: EvalSet) -> None:
    backend = Recorder(slots=4)
    primed = prime(backend, MODEL, evalset.prompt, RequestOptions(), concurrency=3)  # type: ignore[arg-type]
    assert [options.slot for _, options in backend.sent] == [0, 1, 2]  # -j 3 uses 3 of the 4 slots
    assert primed.cold == ColdPrefill(600, 3_000_000_000)
    primed.chat(MODEL, evalset.prompt.messages("x"), RequestOptions())
    assert backend.sent[-1][1].slot in (0, 1, 2)


def test_without_the_cache_there_is_one_cold_warm_up_and_no_re_priming(evalset: EvalSet) -> None:
    backend = Recorder(slots=2)
    off = RequestOptions(prompt_cache=False)
    primed = prime(backend, MODEL, evalset.prompt, off, concurrency=2)  # type: ignore[arg-type]
    for text in ("a", "b", "c"):
        primed.chat(MODEL, evalset.prompt.messages(text), off)
    assert [text for text, _ in backend.sent].count(warm_up_text(evalset)) == 1
    assert all(options.prompt_cache is False for _, options in backend.sent)


def test_a_server_without_slots_is_re_primed_only_at_j_1(evalset: EvalSet) -> None:
    backend = Recorder(slots=None)
    primed = prime(backend, MODEL, evalset.prompt, RequestOptions(), concurrency=2)  # type: ignore[arg-type]
    for text in ("a", "b", "c"):
        primed.chat(MODEL, evalset.prompt.messages(text), RequestOptions())
    assert [text for text, _ in backend.sent].count(warm_up_text(evalset)) == 1
    assert all(options.slot is None for _, options in backend.sent)


def test_a_failed_warm_up_leaves_the_cases_unprimed(evalset: EvalSet) -> None:
    backend = Recorder(slots=1, fail_warm_ups=5)
    primed = prime(backend, MODEL, evalset.prompt, RequestOptions(), concurrency=1)  # type: ignore[arg-type]
    assert primed.cold is None
    primed.chat(MODEL, evalset.prompt.messages("a"), RequestOptions())
    primed.chat(MODEL, evalset.prompt.messages("b"), RequestOptions())
    expected = [warm_up_text(evalset), user_text(evalset, "a"), user_text(evalset, "b")]
    assert [text for text, _ in backend.sent] == expected


def test_ollama_cannot_turn_the_cache_off_and_the_setting_is_described() -> None:
    ollama = OllamaBackend("http://127.0.0.1:9")
    assert effective_prompt_cache(ollama, requested=False) is True
    assert effective_prompt_cache(OpenAIBackend("http://127.0.0.1:9"), requested=False) is False
    assert "cannot be turned off" in describe_setting({"prompt_cache": True}, "ollama")
    assert describe_setting({"prompt_cache": False}, "llamacpp").startswith("prompt cache: off")
    assert describe_setting({"prompt_cache": True}, "llamacpp").startswith("prompt cache: on")
    assert "before the setting was recorded" in describe_setting({}, "openai")
    assert describe_setting({}, "ollama").startswith("prompt cache: on")


def test_the_cache_setting_is_part_of_the_cache_key(evalset: EvalSet) -> None:
    from benchsel.records import ModelSnapshot

    snapshot = ModelSnapshot(name=MODEL, backend="llamacpp", digest="d")
    case = evalset.cases[0]
    on = runner.cache_key(snapshot, evalset, case, RequestOptions(), 0)
    off = runner.cache_key(snapshot, evalset, case, RequestOptions(prompt_cache=False), 0)
    pinned = runner.cache_key(snapshot, evalset, case, RequestOptions(slot=3), 0)
    assert on != off and on == pinned


# ---- real llama-server --------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "runs.sqlite") as s:
        yield s


def run_in_order(
    evalset: EvalSet, order: list[int], store: Store, options: RequestOptions
) -> dict[str, Reply]:
    cases = tuple(evalset.cases[i] for i in order)
    ordered = replace(evalset, cases=cases)
    spec = runner.RunSpec((MODEL,), ordered, options, fresh=True)
    backend = LlamaCppBackend(threads=2)
    try:
        record = runner.run(spec, backend, store)
    finally:
        backend.close()
    return {r.case_id: r.reply for r in store.results(record.id) if r.reply is not None}


@pytest.mark.integration
def test_replies_do_not_depend_on_the_order_of_the_cases(evalset: EvalSet, store: Store) -> None:
    """Three cases at temperature 0, in two orders, each on a fresh engine: the same replies, and
    each case prefills the same number of tokens after the cached prefix. The three texts all begin
    with "The", which a slot left as the previous case had it would lend the next one."""
    options = RequestOptions(num_ctx=2048, num_predict=48, timeout_s=300)
    forward = run_in_order(evalset, [2, 4, 8], store, options)
    backward = run_in_order(evalset, [8, 4, 2], store, options)
    assert len(forward) == 3 and forward.keys() == backward.keys()
    assert {k: r.content for k, r in forward.items()} == {k: r.content for k, r in backward.items()}
    assert {k: r.prompt_eval_count for k, r in forward.items()} == {
        k: r.prompt_eval_count for k, r in backward.items()
    }
    [run, _] = store.runs()
    summary = summarize_run(store, run.id)
    speed = summary.models[0].speed
    cold = store.models(run.id)[0].cold_prefill
    assert cold is not None and speed.cold_prefill_tokens_per_s == cold.tokens_per_s
    # the cases prefill only what follows the cached system prompt
    assert all(r.prompt_eval_count < cold.tokens for r in forward.values())
    assert speed.contention is not None and speed.contention.available
    assert speed.contention.engine_threads == 2


@pytest.mark.integration
def test_no_prompt_cache_prefills_every_whole_prompt(evalset: EvalSet, store: Store) -> None:
    options = RequestOptions(num_ctx=2048, num_predict=8, timeout_s=300, prompt_cache=False)
    replies = run_in_order(evalset, [0, 1], store, options)
    [run] = store.runs()
    cold = store.models(run.id)[0].cold_prefill
    assert cold is not None and run.options["prompt_cache"] is False
    # each case prefills the system prompt again: more tokens than the warm-up prompt alone
    assert all(r.prompt_eval_count > cold.tokens for r in replies.values())
