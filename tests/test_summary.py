"""benchsel.summary: short names for tables, and what a failed model is."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_record

from benchsel.evalset import load_evalset
from benchsel.store import Store, StoredResult
from benchsel.summary import short_name, summarize_run


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("/models/SmolLM2-135M-Instruct-Q8_0.gguf", "SmolLM2-135M-Instruct-Q8_0"),
        ("relative/dir/qwen.GGUF", "qwen"),
        ("gemma3:4b", "gemma3:4b"),
        (
            "hf.co/bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
            "hf.co/bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
        ),
    ],
)
def test_short_name(model: str, expected: str) -> None:
    assert short_name(model) == expected


def test_two_files_with_one_stem_keep_their_folder(tmp_path: Path) -> None:
    evalset = load_evalset("extraction-v1")
    models = ("/a/base/model.gguf", "/a/tuned/model.gguf", "/x/one/solo.gguf")
    with Store(tmp_path / "r.sqlite") as store:
        store.create_run(
            run_record(models, evalset, created_at="2026-11-30T05:00:00", backend="llamacpp", host="local")
        )
        for model in models:
            store.add_result(
                StoredResult("r1", model, evalset.cases[0].id, 0, model, None, "rejected:http_400")
            )
        summary = summarize_run(store, "r1")
    assert [m.display_name for m in summary.models] == ["base/model", "tuned/model", "solo"]
    assert [m.name for m in summary.models] == list(models)  # the full path is kept
    assert summary.nothing_scored and all(m.failed for m in summary.models)
