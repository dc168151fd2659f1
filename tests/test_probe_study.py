"""The decision study's statistics (rank correlations, regret, the bootstrap over cases) and, on tiny
settings, the whole study end to end: real llama-server, real trainer, the write-up."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from test_probe_e2e import build_tiny_gguf

STUDY_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "decision_study.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decision_study", STUDY_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decision_study"] = module
    spec.loader.exec_module(module)
    return module


study = _load()


def test_ranks_share_ties() -> None:
    assert study.ranks([0.3, 0.1, 0.3, 0.2]) == [3.5, 1.0, 3.5, 2.0]


@pytest.mark.parametrize(
    ("x", "y", "rho", "tau"),
    [
        ([1, 2, 3], [10, 20, 30], 1.0, 1.0),
        ([1, 2, 3], [30, 20, 10], -1.0, -1.0),
        ([1, 2, 3], [10, 30, 20], 0.5, 1 / 3),
        ([1, 2, 3, 4], [1, 2, 2, 3], 0.9486832980505138, 0.9128709291752769),
    ],
)
def test_spearman_and_kendall_tau_b(x: list[float], y: list[float], rho: float, tau: float) -> None:
    assert study.spearman(x, y) == pytest.approx(rho)
    assert study.kendall(x, y) == pytest.approx(tau)


def test_a_ranking_without_spread_has_no_correlation() -> None:
    assert math.isnan(study.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(study.kendall([1, 1, 1], [1, 2, 3]))


def test_regret_is_the_best_outcome_minus_the_picks() -> None:
    assert study.regret([0.9, 0.1, 0.5], [0.2, 0.8, 0.6]) == pytest.approx(0.6)
    assert study.regret([0.1, 0.9, 0.5], [0.2, 0.8, 0.6]) == 0.0


def test_bootstrap_of_a_perfect_predictor_has_no_regret() -> None:
    import numpy as np

    quality = [0.2, 0.5, 0.8]  # per model, the same on every case

    def outcome(m: int, rows: np.ndarray) -> np.ndarray:
        return np.full(rows.shape[0], quality[m])

    stats = study.bootstrap_stats({"perfect": outcome, "reversed": lambda m, rows: -outcome(m, rows)},
                                  outcome, 3, 5, 6, 50, 0)  # fmt: skip
    assert stats["perfect"]["spearman"] == pytest.approx({"value": 1.0, "low": 1.0, "high": 1.0})
    assert stats["perfect"]["regret"]["value"] == 0.0 and stats["perfect"]["pick"] == 2
    assert stats["reversed"]["kendall"]["value"] == -1.0
    assert stats["reversed"]["regret"]["value"] == pytest.approx(0.6)
    assert stats["_outcome"]["values"] == quality


def test_the_full_budget_must_be_five_times_the_pilot(capsys: pytest.CaptureFixture[str]) -> None:
    assert study.main(["--probe-steps", "10", "--full-steps", "20"]) == 2
    assert "give at least 50 steps" in capsys.readouterr().err


def test_the_load_meter_reads_proc_stat() -> None:
    meter = study.LoadMeter().start()
    sum(i * i for i in range(200_000))
    assert 0.0 <= meter.others_share() <= 1.0


@pytest.mark.train
@pytest.mark.integration
def test_the_study_runs_end_to_end_on_tiny_settings(tmp_path: Path) -> None:
    tiny_gguf = build_tiny_gguf(tmp_path / "tiny")
    doc = tmp_path / "decision-validity.md"
    argv = [
        "--models", f"smollm2:135m,{tiny_gguf}", "--cases", "6", "--probe-steps", "1", "--full-steps", "5",
        "--shots", "1", "--num-predict", "24", "--batch", "1", "--grad-accum", "1", "--max-seq-len", "2048",
        "--threads", "2", "--resamples", "50", "--db", str(tmp_path / "s.sqlite"),
        "--out", str(tmp_path / "study"), "--doc", str(doc), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    assert study.main(argv) == 0
    text = doc.read_text()
    assert f"- Command: `python benchmarks/decision_study.py --models smollm2:135m,{tiny_gguf}" in text
    assert "CPU load from other processes while it ran:" in text
    for predictor in study.PREDICTORS:
        assert study.PREDICTOR_TEXT[predictor] in text
    [saved] = (tmp_path / "study").glob("study-*.json")
    data = json.loads(saved.read_text())
    assert data["split"]["probe"] + data["split"]["test"] == 6
    for name in ("smollm2:135m", str(tiny_gguf)):
        per = data["per_model"][name]
        assert per["lora_probe"]["training"]["steps"] == 1 and per["full"]["training"]["steps"] == 5
        assert (
            per["full"]["cases"] == data["split"]["test"]
            and per["fewshot"]["cases"] == data["split"]["probe"]
        )
    assert set(data["compute_seconds"]) == {*study.PREDICTORS, "full"}


def test_a_rerun_keeps_the_hand_written_reading() -> None:
    reading = "<!-- reading -->\n## Reading (run 1)\n\nTrust the pilot.\n<!-- /reading -->"
    old = "# Decision validity\n\nfigures\n\n" + reading + "\n"
    assert study.kept_reading(old) == "\n" + reading + "\n"
    assert study.kept_reading("# Decision validity\n\nNot measured yet.\n") == ""


def test_the_study_settings_pass_the_learning_rate_and_checkpointing() -> None:
    args = study.parse_args(
        ["--learning-rate", "1e-3", "--no-checkpointing", "--batch", "2", "--grad-accum", "1"]
    )
    assert study._settings(args) == {
        "per_device_batch_size": 2, "gradient_accumulation_steps": 1, "max_seq_len": 1024,
        "learning_rate": 1e-3, "gradient_checkpointing": False,
    }  # fmt: skip
    assert "learning_rate" not in study._settings(study.parse_args([]))
