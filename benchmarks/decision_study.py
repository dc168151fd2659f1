"""The decision study: does the model benchsel picks turn out best after LoRA?

For each candidate: zero-shot on the eval set, the few-shot probe and the pilot-LoRA probe on a probe
split, and a full LoRA (a fixed budget at least 5x the pilot's tokens, the same synthetic data, seed and
settings for every model) re-benchmarked on the test split. Each predictor (deploy-now, trainable
potential, few-shot, pilot LoRA), measured on probe cases only, is scored against the post-LoRA ranking
on the test cases: Spearman and Kendall correlation and the regret of its pick, with bootstrap intervals
over cases, and the compute it cost. Everything runs through benchsel's runner, scorer, store and
trainer. Writes docs/decision-validity.md (or --doc) and a study.json beside the runs.

    make study                       # the CPU study on the three real candidates
    python benchmarks/decision_study.py --size 2     # first: time 2 steps of each model, estimate
    python benchmarks/decision_study.py --models smollm2:135m,gemma3:270m --cases 40 --full-steps 40
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_MODELS = "smollm2:135m,gemma3:270m,qwen2.5-coder:0.5b"
DEFAULT_EVALSET = "extraction-v1-full"
MIN_BUDGET_RATIO = 5  # the full LoRA sees at least this many times the pilot's tokens
PREDICTORS = ("deploy_now", "trainable_potential", "fewshot", "lora_probe")
PREDICTOR_TEXT = {
    "deploy_now": "deploy-now score (zero-shot, heuristic weights)",
    "trainable_potential": "trainable-potential score (zero-shot, heuristic weights)",
    "fewshot": "few-shot probe (as-is entity F1 with worked examples)",
    "lora_probe": "pilot-LoRA probe (as-is entity F1 after the pilot)",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="Comma-separated candidates.")
    p.add_argument("--evalset", default=DEFAULT_EVALSET)
    p.add_argument("--cases", type=int, help="Use the first N cases of the eval set [all].")
    p.add_argument("--probe-fraction", type=float, default=0.5, help="Share of the cases in the probe split.")
    # `make study` passes the budgets of the recorded run (docs/decision-validity.md): 2 and 10 steps of 2
    # examples, about 70 minutes on 2 cores. These defaults are 4x that; size them with --size first.
    p.add_argument("--probe-steps", type=int, default=4, help="Pilot LoRA steps.")
    p.add_argument("--full-steps", type=int, default=20, help="Full LoRA steps (>= 5x --probe-steps).")
    p.add_argument("--shots", type=int, default=3, help="Worked examples in the few-shot probe.")
    p.add_argument("--num-predict", type=int, default=256, help="Token limit per answer.")
    p.add_argument("--batch", type=int, default=2, help="Per-device batch size (every LoRA).")
    p.add_argument("--grad-accum", type=int, default=2, help="Gradient accumulation steps (every LoRA).")
    p.add_argument("--max-seq-len", type=int, default=1024, help="Longest training example in tokens.")
    p.add_argument(
        "--learning-rate", type=float,
        help="LoRA learning rate for every model [the trainer's default]; short budgets learn little at "
        "the default, which is set for the full recipe.",
    )  # fmt: skip
    p.add_argument(
        "--no-checkpointing", action="store_true",
        help="Keep activations instead of recomputing them: faster steps, more memory (same updates).",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="Seed of the split, the data and the training.")
    p.add_argument("--threads", type=int, help="llama-server threads.")
    p.add_argument("--resamples", type=int, default=1000, help="Bootstrap resamples over cases.")
    p.add_argument("--db", type=Path, default=Path("reports/study/benchsel.sqlite"))
    p.add_argument("--out", type=Path, default=Path("reports/study"), help="Adapters and study.json.")
    p.add_argument("--doc", type=Path, default=Path("docs/decision-validity.md"))
    p.add_argument("--cache-dir", type=Path, help="Where dequantized bases are kept [~/.cache/benchsel].")
    p.add_argument(
        "--size", type=int, metavar="STEPS",
        help="Only time STEPS LoRA steps of each model and estimate the study's training time.",
    )  # fmt: skip
    return p.parse_args(argv)


# ---- the machine and the load on it --------------------------------------------------------------


class LoadMeter:
    """CPU used by other processes while the study ran, as a share of all the cores it may use:
    benchsel's own contention sampler, whose own-tree time includes llama-server and the trainer."""

    def start(self) -> LoadMeter:
        from benchsel.contention import CpuSampler

        self._sampler = CpuSampler().start()
        return self

    def others_share(self) -> float:
        c = self._sampler.stop()
        return c.other_cpu_s / (c.wall_s * c.cpus) if c.available and c.wall_s > 0 and c.cpus else 0.0


def machine() -> dict[str, Any]:
    from benchsel.hardware import detect_gpus

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if "model name" in line
        ),
        platform.processor() or platform.machine(),
    )
    mem_kib = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line), 0
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "gpus": [str(g) for g in detect_gpus()] or ["none"],
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


# ---- rank statistics -----------------------------------------------------------------------------


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else math.nan


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking corrected for)."""
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx * dy > 0:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def regret(predicted: Sequence[float], outcome: Sequence[float]) -> float:
    """Best post-LoRA score minus the post-LoRA score of the predictor's pick."""
    pick = max(range(len(predicted)), key=lambda i: predicted[i])
    return max(outcome) - outcome[pick]


# ---- per-case tables and the bootstrap ----------------------------------------------------------

Counts3 = tuple[float, float, float]


@dataclass(frozen=True)
class CaseTable:
    """One model's per-case figures on one split, in the split's case order: counts (tp, fp, fn)
    per view, and rates per case (mean over repeats)."""

    as_is_entities: Any
    as_is_relationships: Any
    content_entities: Any
    content_relationships: Any
    valid_json: Any
    schema_valid: Any
    no_thinking_leak: float


def case_table(model: Any, case_ids: Sequence[str]) -> CaseTable:
    import numpy as np

    index = {c: i for i, c in enumerate(case_ids)}
    counts = {key: np.zeros((len(case_ids), 3)) for key in ("ae", "ar", "ce", "cr")}
    rates = {key: np.zeros(len(case_ids)) for key in ("vj", "sv", "n")}
    for reply in model.score.per_reply:
        i = index.get(reply.case_id)
        if i is None:
            continue
        for key, match in (
            ("ae", reply.as_is.entities),
            ("ar", reply.as_is.relationships),
            ("ce", reply.content.entities),
            ("cr", reply.content.relationships),
        ):
            c = match.counts
            counts[key][i] += (c.tp, c.fp, c.fn)
        rates["vj"][i] += reply.strict_json
        rates["sv"][i] += reply.schema_valid
        rates["n"][i] += 1
    n = np.maximum(rates["n"], 1)
    return CaseTable(
        counts["ae"], counts["ar"], counts["ce"], counts["cr"],
        rates["vj"] / n, rates["sv"] / n, 1.0 - model.speed.thinking_share,
    )  # fmt: skip


def _f1(sums: Any) -> Any:
    from benchsel.scoring.metrics import f1_of

    return f1_of(sums)


def _recall(sums: Any) -> Any:
    from benchsel.scoring.metrics import recall_of

    return recall_of(sums)


def heuristic_score(table: CaseTable, weights: dict[str, float], rows: Any) -> Any:
    """The selection's weighted score, recomputed over the case draws ``rows`` (shape (B, n))."""
    import numpy as np

    def summed(counts: Any) -> Any:
        return counts[rows].sum(axis=1)

    values = {
        "content_entity_recall": lambda: _recall(summed(table.content_entities)),
        "content_relationship_f1": lambda: _f1(summed(table.content_relationships)),
        "content_entity_f1": lambda: _f1(summed(table.content_entities)),
        "valid_json": lambda: table.valid_json[rows].mean(axis=1),
        "schema_valid": lambda: table.schema_valid[rows].mean(axis=1),
        "no_thinking_leak": lambda: np.full(rows.shape[0], table.no_thinking_leak),
        "as_is_entity_f1": lambda: _f1(summed(table.as_is_entities)),
        "as_is_relationship_f1": lambda: _f1(summed(table.as_is_relationships)),
        "as_is_valid_json": lambda: table.valid_json[rows].mean(axis=1),
    }
    total = sum(weights.values())
    return sum(values[key]() * w for key, w in weights.items()) / total


def entity_f1(table: CaseTable, rows: Any) -> Any:
    return _f1(table.as_is_entities[rows].sum(axis=1))


def bootstrap_stats(
    predictors: dict[str, Callable[[int, Any], Any]],
    outcome: Callable[[int, Any], Any],
    n_models: int,
    n_probe: int,
    n_test: int,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Point figures (every case once) and 95% percentile intervals over case resamples: probe cases
    for the predictors and test cases for the outcome, drawn independently (the splits are disjoint)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    point_p = np.arange(n_probe)[None, :]
    point_t = np.arange(n_test)[None, :]
    draws_p = rng.integers(0, n_probe, size=(resamples, n_probe))
    draws_t = rng.integers(0, n_test, size=(resamples, n_test))
    out_point = [float(outcome(m, point_t)[0]) for m in range(n_models)]
    out_boot = np.stack([outcome(m, draws_t) for m in range(n_models)], axis=1)
    result: dict[str, dict[str, Any]] = {}
    for name, predictor in predictors.items():
        point = [float(predictor(m, point_p)[0]) for m in range(n_models)]
        boot = np.stack([predictor(m, draws_p) for m in range(n_models)], axis=1)
        figures: dict[str, Any] = {"values": point}
        for stat, fn in (("spearman", spearman), ("kendall", kendall), ("regret", regret)):
            samples = np.array([fn(list(boot[b]), list(out_boot[b])) for b in range(resamples)])
            kept = samples[~np.isnan(samples)]
            low, high = np.percentile(kept, [2.5, 97.5]) if len(kept) else (math.nan, math.nan)
            figures[stat] = {"value": fn(point, out_point), "low": float(low), "high": float(high)}
        figures["pick"] = int(max(range(n_models), key=lambda i: point[i]))
        result[name] = figures
    result["_outcome"] = {"values": out_point}
    return result


# ---- the study ----------------------------------------------------------------------------------


def _stage(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.full_steps < MIN_BUDGET_RATIO * args.probe_steps:
        print(
            f"--full-steps {args.full_steps}: the full LoRA needs at least {MIN_BUDGET_RATIO}x the pilot's "
            f"tokens - give at least {MIN_BUDGET_RATIO * args.probe_steps} steps (same batch and length)",
            file=sys.stderr,
        )
        return 2
    if args.size:
        size_study(args)
        return 0
    result = run_study(args, list(sys.argv[1:] if argv is None else argv))
    print(f"Wrote {args.doc} and {result['json_path']}")
    return 0


def run_study(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from benchsel import api
    from benchsel.evalset import load_evalset
    from benchsel.probe import ProbePlan, probe
    from benchsel.probe.figures import ProbeFigures
    from benchsel.probe.measure import run_options, train_and_measure
    from benchsel.probe.split import subset
    from benchsel.selection import DEFAULT_WEIGHTS, select
    from benchsel.store import Store
    from benchsel.summary import summarize_run

    args.db.parent.mkdir(parents=True, exist_ok=True)  # the study owns its folders
    meter = LoadMeter().start()
    started_at = datetime.now(UTC)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    evalset = load_evalset(args.evalset)
    settings = _settings(args)
    common_plan = {
        "fraction": args.probe_fraction, "seed": args.seed, "settings": settings, "db": args.db,
        "threads": args.threads, "cache_dir": args.cache_dir, "models": tuple(models),
        "out_dir": args.out / "adapters",
    }  # fmt: skip

    _stage(f"Zero-shot: {', '.join(models)} on {args.cases or len(evalset.cases)} cases of {evalset.name}")
    t0 = time.perf_counter()
    zero = api.run(
        models, evalset=evalset, backend="llamacpp", num_predict=args.num_predict, limit=args.cases,
        seed=args.seed, threads=args.threads, db=args.db,
    )  # fmt: skip
    zero_s = time.perf_counter() - t0
    run_id = zero.run.id
    fewshot = probe(ProbePlan(run_id, "fewshot", shots=args.shots, **common_plan), on_stage=_stage)
    pilot = probe(ProbePlan(run_id, "lora", steps=args.probe_steps, **common_plan), on_stage=_stage)
    split = pilot.split
    assert split == fewshot.split, "both probes must share one split"
    test_set, probe_set = subset(evalset, split.test), subset(evalset, split.probe)

    full: dict[str, ProbeFigures] = {}
    full_plan = ProbePlan(run_id, "lora", steps=args.full_steps, **common_plan)
    options = {"db": args.db, **run_options(zero)}
    for name in models:
        _stage(f"Full LoRA: {name}, {args.full_steps} steps, measured on {len(split.test)} test cases")
        t0 = time.perf_counter()
        figures = train_and_measure(full_plan, name, test_set, options, _stage)
        full[name] = figures.model_copy(update={"seconds": time.perf_counter() - t0})

    with Store(args.db) as store:
        zero_probe = summarize_run(store, run_id, evalset=probe_set)
        zero_test = summarize_run(store, run_id, evalset=test_set)
        after = {
            key: {
                name: summarize_run(store, str(fig["after_run_id"]), evalset=cases).models[0]
                for name, fig in outcome.probe.models.items()
                if fig.get("after_run_id")
            }
            for key, outcome, cases in (("fewshot", fewshot, probe_set), ("lora_probe", pilot, probe_set))
        }
        after["full"] = {
            name: summarize_run(store, str(fig.after_run_id), evalset=test_set).models[0]
            for name, fig in full.items()
        }
    missing = [m for m in models if any(m not in after[k] for k in after)]
    if missing:
        raise SystemExit(f"no figures for {', '.join(missing)}: see the probe failures in the store")

    predicted = select(zero_probe)
    tables = {
        "zero_probe": [case_table(zero_probe.model(m), split.probe) for m in models],
        "fewshot": [case_table(after["fewshot"][m], split.probe) for m in models],
        "lora_probe": [case_table(after["lora_probe"][m], split.probe) for m in models],
        "full": [case_table(after["full"][m], split.test) for m in models],
    }
    weights = {name: DEFAULT_WEIGHTS.of_ranking(name) for name in ("deploy_now", "trainable_potential")}
    predictors: dict[str, Callable[[int, Any], Any]] = {
        "deploy_now": lambda m, rows: heuristic_score(tables["zero_probe"][m], weights["deploy_now"], rows),
        "trainable_potential": lambda m, rows: heuristic_score(
            tables["zero_probe"][m], weights["trainable_potential"], rows
        ),
        "fewshot": lambda m, rows: entity_f1(tables["fewshot"][m], rows),
        "lora_probe": lambda m, rows: entity_f1(tables["lora_probe"][m], rows),
    }
    stats = bootstrap_stats(
        predictors, lambda m, rows: entity_f1(tables["full"][m], rows), len(models),
        len(split.probe), len(split.test), args.resamples, args.seed,
    )  # fmt: skip
    probe_share = len(split.probe) / len(split.probe + split.test)
    cost = {
        "deploy_now": zero_s * probe_share,
        "trainable_potential": zero_s * probe_share,
        "fewshot": sum(ProbeFigures.model_validate(f).seconds for f in fewshot.probe.models.values()),
        "lora_probe": sum(ProbeFigures.model_validate(f).seconds for f in pilot.probe.models.values()),
        "full": sum(f.seconds for f in full.values()),
    }
    study = {
        "command": shlex.join(["python", "benchmarks/decision_study.py", *argv]),
        "argv": vars(args)
        | {
            "db": str(args.db),
            "out": str(args.out),
            "doc": str(args.doc),
            "cache_dir": str(args.cache_dir) if args.cache_dir else None,
        },
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cpu_load_from_others": meter.others_share(),
        "run_id": run_id,
        "probe_ids": {"fewshot": fewshot.probe.id, "lora_probe": pilot.probe.id},
        "evalset": {"name": evalset.name, "hash": evalset.content_hash},
        "split": {"probe": len(split.probe), "test": len(split.test), "seed": split.seed},
        "models": models,
        "per_model": {
            m: {
                "deploy_now": predicted.deploy_now.entry(m).score,
                "trainable_potential": predicted.trainable.entry(m).score,
                "zero_shot_probe_f1": zero_probe.model(m).score.as_is.entities.f1.value,
                "zero_shot_test_f1": _interval(zero_test.model(m).score.as_is.entities.f1),
                "fewshot": ProbeFigures.model_validate(fewshot.probe.models[m]).model_dump(),
                "lora_probe": ProbeFigures.model_validate(pilot.probe.models[m]).model_dump(),
                "full": full[m].model_dump(),
            }
            for m in models
        },
        "predictors": {k: v for k, v in stats.items() if k != "_outcome"},
        "outcome": stats["_outcome"]["values"],
        "compute_seconds": cost,
        "settings": {"probe": pilot.probe.settings, "full_steps": args.full_steps, "shots": args.shots},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"study-{run_id}.json"
    json_path.write_text(json.dumps(study, indent=2, default=str) + "\n", encoding="utf-8")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    old = args.doc.read_text(encoding="utf-8") if args.doc.exists() else ""
    args.doc.write_text(render_doc(study) + kept_reading(old), encoding="utf-8")
    return {**study, "json_path": str(json_path)}


def _interval(estimate: Any) -> dict[str, float]:
    return {"value": estimate.value, "low": estimate.low, "high": estimate.high}


def size_study(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Time a few LoRA steps of each model through the trainer (batch, length and data as the study
    uses them) and extrapolate the study's training time: the pilot and the full LoRA of every model."""
    import tempfile

    from benchsel.probe.measure import ProbePlan, pilot_settings, reset_peak_rss
    from benchsel.train.pipeline import TrainPlan, train

    plan = ProbePlan("size", "lora", steps=args.size, seed=args.seed, settings=_settings(args))
    settings = pilot_settings(plan)
    out: dict[str, dict[str, float]] = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            reset_peak_rss()
            t0 = time.perf_counter()
            outcome = train(
                TrainPlan(base=name, evalset=args.evalset, settings=settings, seed=args.seed,
                          synthetic_n=max(20, 2 * args.size * settings.effective_batch_size),
                          out_dir=Path(tmp), cache_dir=args.cache_dir),
            )  # fmt: skip
            total = time.perf_counter() - t0
        r = outcome.training
        step_s = r.train_seconds / max(r.steps, 1)
        out[name] = {
            "step_s": step_s,
            "train_tokens_per_s": r.tokens_per_s,
            "peak_rss_gib": r.peak_memory_bytes / 1024**3,
            "overhead_s": total - r.train_seconds,
            "study_training_s": step_s * (args.probe_steps + args.full_steps),
        }
        print(
            f"{name}: {step_s:.1f} s a step at batch {settings.per_device_batch_size} x "
            f"{settings.gradient_accumulation_steps} ({r.tokens_per_s:.0f} tok/s), peak RSS "
            f"{out[name]['peak_rss_gib']:.1f} GiB, load/export {out[name]['overhead_s']:.0f} s; "
            f"{args.probe_steps} + {args.full_steps} steps = {out[name]['study_training_s'] / 60:.0f} min",
            flush=True,
        )
    total_min = sum(v["study_training_s"] for v in out.values()) / 60
    print(f"Training in the study: about {total_min:.0f} min (benchmarking the cases comes on top)")
    return out


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "per_device_batch_size": args.batch,
        "gradient_accumulation_steps": args.grad_accum,
        "max_seq_len": args.max_seq_len,
    }
    if args.learning_rate is not None:
        settings["learning_rate"] = args.learning_rate
    if args.no_checkpointing:
        settings["gradient_checkpointing"] = False
    return settings


# ---- the write-up --------------------------------------------------------------------------------


def _ci(f: dict[str, float], spec: str = "+.2f") -> str:
    if f["value"] is None or math.isnan(f["value"]):
        return "n/a (a ranking without spread)"
    if math.isnan(f["low"]):
        return f"{f['value']:{spec}}"
    return f"{f['value']:{spec}} [{f['low']:{spec}}, {f['high']:{spec}}]"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


READING = re.compile(r"<!-- reading -->.*?<!-- /reading -->", re.DOTALL)


def kept_reading(old_doc: str) -> str:
    """The hand-written reading of an earlier run (between ``<!-- reading -->`` markers), kept when the
    study is run again so that a re-run never silently drops it; it names the run it was written for."""
    found = READING.search(old_doc)
    return "\n" + found.group(0) + "\n" if found else ""


def render_doc(study: dict[str, Any]) -> str:
    models = study["models"]
    per = study["per_model"]
    m = study["machine"]
    s = study["settings"]
    train = s["probe"]["train"]
    best = max(range(len(models)), key=lambda i: study["outcome"][i])
    lines = [
        "# Decision validity: does benchsel's pick turn out best after LoRA?",
        "",
        "Figures from one recorded run of `benchmarks/decision_study.py`; the same command and seed "
        "reproduce them.",
        "",
        f"- Command: `{study['command']}`",
        f"- Date: {study['started_at']} to {study['finished_at']} (UTC)",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, GPU: {', '.join(m['gpus'])}; "
        f"{m['system']}, Python {m['python']}",
        f"- CPU load from other processes while it ran: {study['cpu_load_from_others']:.0%} of all cores "
        "(from /proc/stat, minus the study's own CPU time)",
        f"- Eval set: {study['evalset']['name']} (hash `{study['evalset']['hash'][:12]}`), "
        f"{study['split']['probe']} probe cases and {study['split']['test']} test cases (seed "
        f"{study['split']['seed']}); zero-shot run `{study['run_id']}`",
        f"- LoRA (every model alike): r={train['r']}, alpha={train['alpha']}, lr={train['learning_rate']}, "
        f"batch {train['per_device_batch_size']} x {train['gradient_accumulation_steps']}, max length "
        f"{train['max_seq_len']}, seed {train['seed']}; pilot {s['probe']['steps']} steps, full "
        f"{s['full_steps']} steps ({s['full_steps'] / s['probe']['steps']:.0f}x the pilot's tokens), on "
        "the deterministic synthetic data (leak-checked against both splits)",
        f"- Few-shot probe: {s['shots']} worked examples from the synthetic generator",
        "",
        "## Per model, before and after",
        "",
        "As-is entity F1 with 95% bootstrap intervals. Predictors are measured on the probe cases; "
        "zero-shot and post-LoRA on the test cases.",
        "",
    ]
    rows = []
    for name in models:
        p = per[name]
        full = p["full"]
        rows.append([
            name,
            f"{p['deploy_now']:.3f}",
            f"{p['trainable_potential']:.3f}",
            _ci(p["fewshot"]["probed"], ".2f") + f" ({p['fewshot']['gain']['value']:+.2f})",
            _ci(p["lora_probe"]["probed"], ".2f") + f" ({p['lora_probe']['gain']['value']:+.2f})",
            _ci(p["zero_shot_test_f1"], ".2f"),
            _ci(full["probed"], ".2f"),
            _ci(full["gain"], "+.2f"),
            f"{full['training']['train_seconds']:.0f}" if full.get("training") else "-",
            f"{full['training']['peak_memory_bytes'] / 1024**3:.1f}" if full.get("training") else "-",
        ])  # fmt: skip
    lines += _table(
        ["Model", "Deploy now", "Trainable potential", "Few-shot (gain)", "Pilot LoRA (gain)",
         "Zero-shot test", "Post-LoRA test", "LoRA gain (paired)", "Full train s", "Peak RSS GiB"],
        rows,
    )  # fmt: skip
    lines += ["", "## Each predictor against the post-LoRA ranking", ""]
    rows = []
    for key in PREDICTORS:
        f = study["predictors"][key]
        rows.append([
            PREDICTOR_TEXT[key], _ci(f["spearman"]), _ci(f["kendall"]), models[f["pick"]],
            _ci(f["regret"], ".3f"), f"{study['compute_seconds'][key]:.0f}",
        ])  # fmt: skip
    lines += _table(["Predictor", "Spearman", "Kendall", "Pick", "Regret of the pick", "Compute s"], rows)
    lines += [
        "",
        f"Best after the full LoRA: **{models[best]}** (as-is entity F1 {study['outcome'][best]:.2f} on "
        f"the test cases). Regret is that score minus the post-LoRA score of the predictor's pick. The "
        f"full LoRAs took {study['compute_seconds']['full']:.0f} s in all. Intervals: 95% percentile "
        "bootstrap, probe cases and test cases resampled independently; a correlation is undefined in "
        "a resample where a ranking has no spread, and such resamples are left out.",
        "",
        "## Reading",
        "",
        f"With {len(models)} models a rank correlation takes only a few values, so these are weak "
        "evidence: a predictor that orders three models right has Spearman 1.0, one swap halves it. "
        "Read the per-model table first.",
        "",
    ]
    agree = [PREDICTOR_TEXT[k] for k in PREDICTORS if study["predictors"][k]["pick"] == best]
    lines.append(
        "Predictors whose pick was the best model after training: "
        + ("; ".join(agree) if agree else "none")
        + "."
    )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
