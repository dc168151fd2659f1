"""Scoring throughput: 10,000 synthetic replies over the bundled extraction-v1-full cases.

Measures (a) parse + schema check + match per reply, (b) the whole ``score()`` with bootstrap
intervals, both in process, and (c) ``benchsel score`` end to end: a new process reading the
predictions JSONL, scoring, printing the table and writing the metrics JSON.
Run: ``python benchmarks/bench_scoring.py [--cases 10000] [--profile | --profile-command]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _docs import write_section

from benchsel.evalset import EvalSet, load_evalset
from benchsel.scoring.parse import parse_reply
from benchsel.scoring.scorecard import ReplyInput, gold_of, schema_check, score, score_reply

SHAPES = ("valid", "fenced", "prose", "truncated", "thinking")
ROOT = Path(__file__).resolve().parent.parent


def _answer(evalset: EvalSet, case_id: str, rng: random.Random) -> dict[str, Any]:
    gold = evalset.case(case_id).gold.model_dump(exclude_none=True)
    entities = [e for e in gold["entities"] if rng.random() > 0.15]
    if rng.random() < 0.3:
        entities.append({"name": "Invented thing", "type": "software", "role": "object"})
    relationships = [r for r in gold["relationships"] if rng.random() > 0.25]
    return {"entities": entities, "relationships": relationships}


def make_replies(evalset: EvalSet, n: int, seed: int = 0) -> list[ReplyInput]:
    rng = random.Random(seed)
    replies = []
    for i in range(n):
        case = evalset.cases[i % len(evalset.cases)]
        text = json.dumps(_answer(evalset, case.id, rng))
        shape = SHAPES[i % len(SHAPES)] if i % 2 else "valid"  # about half valid JSON
        if shape == "fenced":
            text = f"```json\n{text}\n```"
        elif shape == "prose":
            text = f"Here is the knowledge graph you asked for:\n{text}\nLet me know if you need more."
        elif shape == "truncated":
            text = text[: max(20, int(len(text) * 0.7))]
        elif shape == "thinking":
            text = f"<think>The text mentions a few systems; I list them.</think>\n{text}"
        replies.append(ReplyInput(case.id, text, repeat=i // len(evalset.cases)))
    return replies


Rate = tuple[float, float]
"""(cases per wall second, cases per CPU second of this process)."""


def _rate(n: int, wall_started: float, cpu_started: float) -> Rate:
    return n / (time.perf_counter() - wall_started), n / (time.process_time() - cpu_started)


def bench_per_reply(evalset: EvalSet, replies: list[ReplyInput]) -> Rate:
    golds = {case.id: gold_of(case) for case in evalset.cases}
    symmetric, check = evalset.symmetric_relations, schema_check(evalset.schema)
    started, cpu = time.perf_counter(), time.process_time()
    for reply in replies:
        case = evalset.by_id[reply.case_id]
        score_reply(
            case,
            parse_reply(reply.output),
            schema=check,
            symmetric=symmetric,
            gold=golds[case.id],
        )
    return _rate(len(replies), started, cpu)


def bench_score(evalset: EvalSet, replies: list[ReplyInput]) -> Rate:
    started, cpu = time.perf_counter(), time.process_time()
    score(evalset, replies)
    return _rate(len(replies), started, cpu)


def score_command(predictions: Path, evalset: str, out: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "benchsel", "score"),
        *("--evalset", evalset, "--predictions", str(predictions), "--json", str(out)),
    ]


def bench_command(evalset: str, replies: list[ReplyInput], repeats: int, profile: str = "") -> list[Rate]:
    """``benchsel score`` in a new process, start to exit: (cases per wall second, per CPU second of
    the child)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        predictions = Path(tmp) / "predictions.jsonl"
        lines = (json.dumps({"id": r.case_id, "repeat": r.repeat, "output": r.output}) for r in replies)
        predictions.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = score_command(predictions, evalset, Path(tmp) / "metrics.json")
        if profile:
            flags = ["-X", "importtime"] if profile == "imports" else ["-m", "cProfile", "-s", "cumulative"]
            command = [command[0], *flags, *command[1:]]
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            print("\n".join((result.stderr if profile == "imports" else result.stdout).splitlines()[:60]))
            return []
        for _ in range(repeats):
            started, cpu = time.perf_counter(), os.times()
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
            ended = os.times()
            child_cpu = ended.children_user + ended.children_system - cpu.children_user - cpu.children_system
            rates.append(
                (len(replies) / (time.perf_counter() - started), len(replies) / max(child_cpu, 1e-9))
            )
    return rates


def _best(rates: list[Rate]) -> str:
    wall = max(r[0] for r in rates)
    cpu = max(r[1] for r in rates)
    return f"{wall:,.0f} cases/s wall, {cpu:,.0f} cases/s of CPU time (best of {len(rates)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--evalset", default="extraction-v1-full")
    parser.add_argument("--repeats", type=int, default=5, help="passes; the best one is reported")
    parser.add_argument("--profile", action="store_true", help="cProfile the per-reply loop")
    parser.add_argument(
        "--profile-command",
        choices=["imports", "cprofile"],
        help="profile `benchsel score` end to end: -X importtime or cProfile",
    )
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    evalset = load_evalset(args.evalset)
    replies = make_replies(evalset, args.cases)
    if args.profile_command:
        bench_command(args.evalset, replies, 1, profile=args.profile_command)
        return
    bench_per_reply(evalset, replies[:500])  # warm caches (validator, regexes)
    if args.profile:
        import cProfile
        import pstats

        with cProfile.Profile() as profiler:
            bench_per_reply(evalset, replies)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    per_reply = [bench_per_reply(evalset, replies) for _ in range(args.repeats)]
    whole = [bench_score(evalset, replies) for _ in range(args.repeats)]
    command = bench_command(args.evalset, replies, args.repeats)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}")
    print(f"load average while measuring: {load}")
    print(f"replies: {len(replies)} over {len(evalset.cases)} cases of {evalset.name}")
    print(f"(a) parse + schema + match per reply: {_best(per_reply)}")
    print(f"(b) score() with bootstrap intervals: {_best(whole)}")
    print(f"(c) `benchsel score` end to end, process start included: {_best(command)}")
    if not args.no_docs:
        write_section(
            "bench_scoring",
            "Scoring (`benchmarks/bench_scoring.py`)",
            _section(args, per_reply, whole, command),
        )


def _section(args: argparse.Namespace, per_reply: list[Rate], whole: list[Rate], command: list[Rate]) -> str:
    load = os.getloadavg()[0]
    return f"""
{args.cases:,} synthetic replies over the bundled {args.evalset} cases: about half valid JSON, the rest
fenced, prose-wrapped, truncated at 70% or thinking-prefixed, with entities and relationships dropped
and invented at random. (a) is `parse_reply` + schema check + entity/relationship matching per reply;
(b) is the whole `score()` over the same replies, with bootstrap intervals (1,000 resamples, four
views). Best of {args.repeats} passes.

| | cases/s |
|---|---|
| (a) parse + schema + match per reply | {_best(per_reply)} |
| (b) `score()` with bootstrap intervals | {_best(whole)} |
| (c) `benchsel score --json` end to end, process start included | {_best(command)} |

Goals: (a) over 20,000 cases/s, (c) over 5,000 cases/s. The first version did 2,784 (a) and 1,972 (b);
(c) was under 1,000 cases/s before the end-to-end work below.
What made it faster (behaviour unchanged; `tests/test_scoring_fastschema.py` checks the fast schema
check against jsonschema on about 1,000 valid and broken answers):
- jsonschema was 60% of (a): `benchsel/scoring/fastschema.py` turns an answer schema that uses only
  type, required, properties, additionalProperties, items, string enums, lengths and pattern into one
  generated Python function; jsonschema still runs on other schemas and to word the error of an
  invalid answer.
- name and relation-label normalisation are cached: the same names recur across replies.
- recovery finds fences with `str.find`, tries a complete embedded object before the truncation
  repair, and the repair scans once.
- `score()` sums counts as integers, and the as-is view of a reply that is not valid JSON is computed
  once per case.
- end to end (c), profiled with `--profile-command cprofile|imports`: writing the metrics JSON was
  the largest part (`json.dumps(indent=2)` runs the pure-Python encoder, and `dataclasses.asdict`
  deep-copied every row): rows are now built by hand and written one per line through the C encoder.
  Python's cyclic garbage collector re-walked the growing heap of small scoring objects (a quarter
  of `score()`): it is paused while scoring. jsonschema is imported only to word a failure.
- a reply is parsed once: the lenient parse serves the strict view too (redone strictly only when the
  text holds NaN or Infinity), through one decoder built once; per-difficulty counts are summed as
  integers; the garbage-collector pause covers the whole `benchsel score` command. Measured side by
  side against the code before (alternating, the same minutes, load average 2.4-2.7): (a) +7-13%,
  (b) +7-14%, (c) +12-16%, and the metrics JSON byte-identical.

This VM's speed drifts: the code before these last changes measured 17,000 and then 14,515 (a) twenty
minutes apart on the same day. Compare figures measured side by side, not across days.

Measured {time.strftime("%Y-%m-%d")}, Python {platform.python_version()}, {os.cpu_count()} cores
({platform.machine()}), 1-minute load average {load:.1f}:
`python benchmarks/bench_scoring.py --repeats {args.repeats}` (`--profile` prints a cProfile of the loop).
"""


if __name__ == "__main__":
    main()
