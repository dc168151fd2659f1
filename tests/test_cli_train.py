"""`benchsel train` and `benchsel train data` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from benchsel.cli.main import cli
from benchsel.evalset import load_evalset
from benchsel.train import pipeline


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "120"})


def test_data_generate_writes_chat_records(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    result = invoke("train", "data", "generate", "--n", "12", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote 12 examples to {out}"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12
    assert [m["role"] for m in records[0]["messages"]][-1] == "assistant"
    assert set(json.loads(records[0]["messages"][-1]["content"])) == {"entities", "relationships"}


def test_data_check_refuses_a_leak_and_names_the_fix(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    assert invoke("train", "data", "generate", "--n", "10", "--out", str(out)).exit_code == 0
    case = load_evalset("extraction-v1").cases[0]
    leaked = {"id": "leak-1", "text": case.text, "gold": case.gold.model_dump(exclude_none=True)}
    prompt = load_evalset("extraction-v1").prompt
    messages = [*prompt.messages(case.text), {"role": "assistant", "content": json.dumps(leaked["gold"])}]
    with out.open("a") as handle:
        handle.write(json.dumps({"id": "leak-1", "messages": messages, "text": case.text}) + "\n")

    refused = invoke("train", "data", "check", str(out), "--evalset", "extraction-v1")
    assert refused.exit_code == 2
    assert f"leak-1 (eval case {case.id})" in refused.output
    assert "--drop-leaks" in refused.output

    dropped = invoke("train", "data", "check", str(out), "--evalset", "extraction-v1", "--drop-leaks")
    assert dropped.exit_code == 0, dropped.output
    assert dropped.output.splitlines()[0] == "kept 10 of 11: 1 leaked into extraction-v1 (dropped)"


def test_missing_training_extra_says_which_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "_module_available", lambda name: name not in {"peft", "trl"})
    result = invoke("train", "--base", "smollm2:135m")
    assert result.exit_code == 2
    assert "benchsel train (peft, trl not installed) needs the 'train' extra" in result.output
    assert "pip install 'benchsel[train]'" in result.output


def test_train_without_a_base_is_a_usage_error() -> None:
    result = invoke("train", "--evaluate")
    assert result.exit_code == 2
    assert "--base TAG|DIR|FILE or --from-selection" in result.output


@pytest.mark.parametrize(
    ("flag", "setting"),
    [("--lora-r", "--r"), ("--lora-alpha", "--alpha"), ("--per-device-train-batch-size", "--batch"),
     ("--gradient-accumulation-steps", "--grad-accum"), ("--max-length", "--max-seq-len")],
)  # fmt: skip
def test_peft_and_trl_names_are_the_same_settings(flag: str, setting: str) -> None:
    result = invoke("train", "--base", "smollm2:135m", flag, "0")
    assert result.exit_code == 2
    assert f"{setting}: Input should be greater than or equal to 1" in result.output


def test_a_bad_setting_flag_names_the_flag() -> None:
    result = invoke("train", "--base", "smollm2:135m", "--r", "0")
    assert result.exit_code == 2
    assert "--r: Input should be greater than or equal to 1" in result.output


def test_register_with_a_bad_name_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    result = invoke("train", "--base", "smollm2:135m", "--register", "my extractor", "--out", str(out))
    assert result.exit_code == 2
    assert "--register 'my extractor': not an Ollama model name" in result.output
    assert not out.exists()


def test_register_without_ollama_is_refused_before_training(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    args = ("train", "--base", "smollm2:135m", "--register", "extractor", "--out", str(out))
    result = invoke(*args, "--host", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "--register extractor: no Ollama answers at http://127.0.0.1:9" in result.output
    assert "ollama serve" in result.output
    assert not out.exists()


def _models_of_runs(db: Path) -> list[tuple[str, ...]]:
    from benchsel.store import Store

    with Store(db) as store:
        return [record.models for record in store.runs()]


@pytest.mark.integration
@pytest.mark.train
def test_readme_train_from_selection_with_default_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's flow, as a user types it in a fresh folder: run -> select -> `benchsel train
    --from-selection reports/<run>/selection.json --evaluate` with the default (relative) output folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHSEL_CACHE_DIR", str(tmp_path / "cache"))
    db = str(tmp_path / "runs.db")
    # 3 cases at 128 tokens: enough for SmolLM2 to find gold entities, so the selection names a winner
    ran = invoke("run", "--models", "smollm2:135m", "--backend", "llamacpp", "--limit", "3",
                 "--num-predict", "128", "--threads", "2", "--db", db, "--no-report")  # fmt: skip
    assert ran.exit_code == 0, ran.output
    run_id = ran.output.split("run id: ")[1].split()[0]
    selected = invoke("select", run_id, "--vram", "8GiB", "--reserve", "3GiB", "--db", db)
    assert selected.exit_code == 0, selected.output
    selection = Path("reports") / run_id / "selection.json"
    assert selection.is_file()
    assert "Train: smollm2:135m" in selected.output

    reported = invoke("report", run_id, "--db", db)  # the README's third step uses the selection just made
    assert reported.exit_code == 0, reported.output
    assert f"Wrote {Path('reports') / run_id / 'report.html'}" in reported.output
    report_md = (Path("reports") / run_id / "report.md").read_text()
    assert "8.0 GiB" in report_md and "3.0 GiB" in report_md  # the budget and reserve of `select`
    assert "not checked" not in report_md

    trained = invoke("train", "--from-selection", str(selection), "--evaluate", "--db", db, "--n", "8",
                     "--max-steps", "1", "--batch", "1", "--grad-accum", "1", "--max-seq-len", "768",
                     "--limit", "1", "--threads", "2")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    text = trained.output
    assert f"From {selection}: base smollm2:135m, eval set extraction-v1" in text
    assert "options given on the command line win" in text
    # --limit 1 was given: it wins over the selection run's limit 2, and is said
    assert "limit 1 (the selection's run: 3)" in text
    assert "From the selection's run" in text and "num_predict 128" in text
    [out_dir] = list(Path("reports").glob("train-*"))
    name = f"smollm2:135m+{out_dir.name}"
    assert f"Trained {name}: 1 steps" in text
    assert f"Benchmarking the fine-tune {name} (llamacpp)" in text
    assert f"Adapter: {(out_dir / 'adapter.gguf').resolve()}" in text
    assert "Tokenizing" in text and "Loading the base weights" in text and "Dequantizing" in text
    assert "FutureWarning" not in text and "Traceback" not in text
    assert "Base: run" in text and "Fine-tune: run" in text
    runs = _models_of_runs(Path(db))
    assert (name,) in runs and ("smollm2:135m",) in runs
    [compare_md] = list(out_dir.glob("compare-*/compare.md"))
    assert "| Metric | Base | Fine-tune |" in compare_md.read_text()

    # the README's last step: compare the base's run with the fine-tune's, by run id
    base_run = text.split("Base: run ")[1].split()[0].strip(",;:")
    tuned_run = text.split("Fine-tune: run ")[1].split()[0].strip(",;:")
    compared = invoke("compare", base_run, tuned_run, "--db", db)
    assert compared.exit_code == 0, compared.output
    assert "cases, B minus A):" in compared.output
    assert "Wrote " in compared.output and "compare.md" in compared.output
