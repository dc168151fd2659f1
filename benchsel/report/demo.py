"""A synthetic run written into a real store: replies shaped like the motivating case's seven models
(and more), for report demos, the screenshot and the report benchmark. Never used to score a model."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchsel import __version__
from benchsel.evalset import Case, EvalSet, load_evalset, resolve_evalset
from benchsel.records import Memory, ModelSnapshot, Reply
from benchsel.store import RunRecord, Store, StoredResult
from benchsel.synthetic import generate_cases

GIB = 1024**3


@dataclass(frozen=True)
class DemoProfile:
    """How a made-up model behaves: how often its reply is strict JSON, how much of the gold it keeps."""

    name: str
    parameter_size: str
    valid_json: float
    entity_recall: float
    relationship_recall: float
    invented_per_reply: float
    decode_tps: float
    size_bytes: int
    thinks: bool = False
    measured: bool = True


DEMO_PROFILES: tuple[DemoProfile, ...] = (
    DemoProfile("gemma3:4b", "4.3B", 1.00, 0.85, 0.35, 0.3, 44.9, int(3.3 * GIB)),
    DemoProfile("gemma4:e2b", "5.1B", 0.75, 1.00, 0.35, 0.5, 42.1, int(4.1 * GIB)),
    DemoProfile("gemma4:e4b", "8.0B", 0.50, 0.90, 0.35, 0.4, 9.7, int(7.9 * GIB), measured=False),
    DemoProfile("qwen3:4b", "4.0B", 0.00, 0.0, 0.0, 0.0, 41.8, int(2.5 * GIB), thinks=True),
    DemoProfile("qwen3.5:4b", "4.7B", 0.00, 0.0, 0.0, 0.0, 33.0, int(3.4 * GIB), thinks=True),
    DemoProfile("nemotron-mini:4b", "4.2B", 0.00, 0.0, 0.0, 0.0, 13.2, int(2.7 * GIB), thinks=True),
    DemoProfile("nemotron-3-nano:4b", "4.0B", 0.00, 0.0, 0.0, 0.0, 28.4, int(2.8 * GIB), thinks=True),
    DemoProfile("llama3.2:3b", "3.2B", 0.95, 0.70, 0.25, 0.6, 52.0, int(2.0 * GIB)),
    DemoProfile("phi4-mini:3.8b", "3.8B", 0.90, 0.78, 0.30, 0.4, 38.5, int(2.5 * GIB)),
    DemoProfile("granite3.3:2b", "2.5B", 0.85, 0.65, 0.20, 0.8, 61.0, int(1.5 * GIB)),
)


def demo_profiles(n: int) -> tuple[DemoProfile, ...]:
    """The first ``n`` built-in profiles, with numbered copies past the ten there are."""
    out = list(DEMO_PROFILES[:n])
    for i in range(len(out), n):
        base = DEMO_PROFILES[i % len(DEMO_PROFILES)]
        out.append(DemoProfile(**{**base.__dict__, "name": f"{base.name}-v{i // len(DEMO_PROFILES) + 1}"}))
    return tuple(out)


def write_demo_evalset(dest: Path, cases: int, *, seed: int = 0, base: str = "extraction-v1") -> EvalSet:
    """A copy of a bundled eval set's prompt and schema with ``cases`` synthetic cases."""
    source = resolve_evalset(base)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("evalset.toml", "prompt.md", "schema.json"):
        shutil.copyfile(source / name, dest / name)
    lines = [case.model_dump_json(exclude_none=True) for case in generate_cases(cases, seed=seed)]
    (dest / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_evalset(dest)


def _model_info(profile: DemoProfile) -> dict[str, Any]:
    layers = 26 if profile.size_bytes < 3 * GIB else 34
    return {
        "general.architecture": "gemma3",
        "general.parameter_count": int(float(profile.parameter_size.rstrip("B")) * 1e9),
        "gemma3.block_count": layers,
        "gemma3.embedding_length": 2560,
        "gemma3.attention.head_count": 8,
        "gemma3.attention.head_count_kv": 4,
        "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256,
        "gemma3.attention.sliding_window": 1024,
        "gemma3.context_length": 131072,
        "gemma3.feed_forward_length": 10240,
        "gemma3.vocab_size": 262144,
    }


def demo_snapshot(profile: DemoProfile, backend: str = "ollama") -> ModelSnapshot:
    digest = "sha256:" + hashlib.sha256(profile.name.encode()).hexdigest()
    return ModelSnapshot(
        name=profile.name,
        backend=backend,
        digest=digest,
        family=profile.name.split(":")[0],
        parameter_size=profile.parameter_size,
        parameter_count=int(float(profile.parameter_size.rstrip("B")) * 1e9),
        quantization="Q4_K_M",
        capabilities=("completion", "thinking") if profile.thinks else ("completion",),
        context_length=131072,
        size_bytes=profile.size_bytes,
        server_version="0.12.6",
        model_info=_model_info(profile),
    )


def _answer(case: Case, profile: DemoProfile, rng: random.Random) -> dict[str, Any]:
    entities = [
        {"name": e.name, "role": e.role or "subject"}
        for e in case.gold.entities
        if rng.random() < profile.entity_recall
    ]
    while rng.random() < profile.invented_per_reply / (1 + profile.invented_per_reply):
        entities.append({"name": f"Invented Entity {rng.randint(1, 99)}", "role": "object"})
    relationships = [
        {"source": r.source, "relation": r.relation, "target": r.target}
        for r in case.gold.relationships
        if rng.random() < profile.relationship_recall
    ]
    if case.gold.relationships and rng.random() < 0.3:
        r = case.gold.relationships[0]
        relationships.append({"source": r.target, "relation": "RELATED_TO", "target": r.source})
    return {"entities": entities, "relationships": relationships}


def demo_reply(case: Case, profile: DemoProfile, rng: random.Random, num_predict: int = 1024) -> Reply:
    """One reply as the profile would give it, with server-style timings."""
    thinking = ""
    if profile.thinks:
        thinking = "Okay, let me look at the entities in the text one by one. " * 60
        content, done = "", "length"
        tokens = num_predict
    else:
        body = json.dumps(_answer(case, profile, rng))
        if rng.random() >= profile.valid_json:
            body = rng.choice([f"```json\n{body}\n```", f"Here is the extracted graph:\n{body}"])
        content, done = body, "stop"
        tokens = max(8, len(body) // 4)
    decode_ns = int(tokens / (profile.decode_tps * rng.uniform(0.9, 1.1)) * 1e9)
    prefill_ns = int(rng.uniform(0.05, 0.2) * 1e9)
    return Reply(
        content=content,
        thinking=thinking,
        done_reason=done,
        prompt_eval_count=180 + len(case.text) // 4,
        prompt_eval_duration_ns=prefill_ns,
        eval_count=tokens,
        eval_duration_ns=decode_ns,
        total_duration_ns=decode_ns + prefill_ns,
        wall_s=(decode_ns + prefill_ns) / 1e9 + 0.01,
    )


def write_demo_run(
    store: Store,
    evalset: EvalSet,
    profiles: tuple[DemoProfile, ...] = DEMO_PROFILES[:7],
    *,
    run_id: str | None = None,
    seed: int = 0,
    repeats: int = 1,
) -> RunRecord:
    """Create a finished run in ``store`` with one reply per profile x case x repeat."""
    rng = random.Random(seed)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    run = store.create_run(
        RunRecord(
            id=run_id or f"demo-{seed}-{rng.randrange(16**8):08x}",
            run_key=f"demo-{seed}",
            created_at=stamp,
            evalset_name=evalset.name,
            evalset_hash=evalset.content_hash,
            evalset_path=str(evalset.path),
            backend="ollama",
            host="http://127.0.0.1:11434",
            models=tuple(p.name for p in profiles),
            repeats=repeats,
            options={"num_predict": 1024, "num_ctx": 4096, "temperature": 0.0, "seed": 42, "think": "auto"},
            benchsel_version=__version__,
            status="done",
            hardware={"gpus": [{"name": "NVIDIA GeForce RTX 4060", "memory_total_bytes": 8 * GIB}]},
        )
    )
    for profile in profiles:
        memory = (
            Memory(int(profile.size_bytes * 1.1), int(profile.size_bytes * 1.1), "/api/ps")
            if profile.measured
            else None
        )
        store.save_model(run.id, demo_snapshot(profile), load_s=rng.uniform(1.0, 6.0), memory=memory)
        for case in evalset.cases:
            for repeat in range(repeats):
                store.add_result(
                    StoredResult(
                        run_id=run.id,
                        model=profile.name,
                        case_id=case.id,
                        repeat=repeat,
                        cache_key=f"{run.id}:{profile.name}:{case.id}:{repeat}",
                        reply=demo_reply(case, profile, rng),
                    )
                )
    return run
