"""Importers that turn public relation-extraction formats into a benchsel eval set directory.

``spert``: the JSON layout CoNLL04, SciERC and ADE are published in (token lists, entity spans,
relations as entity indices). ``jsonl``: any JSONL with text, entities and relations under field
names you map.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchsel import defaults, jsonio
from benchsel.errors import UsageError
from benchsel.evalset import Case, Entity, Gold, Relationship, check_case, load_evalset
from benchsel.labels import LabelInventory, label_inventory, render_prompt, render_schema
from benchsel.normalize import normalize_name, normalize_relation

_NO_SPACE_BEFORE = {
    ".",
    ",",
    ";",
    ":",
    "!",
    "?",
    ")",
    "]",
    "}",
    "%",
    "'s",
    "n't",
    "'re",
    "'ve",
    "'ll",
    "'d",
    "'m",
}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}
_QUOTES = {'"', "``", "''"}
SKIPPED_SHOWN = 10


def detokenize(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join tokens into text (no space before punctuation or clitics, none after opening brackets,
    quotes attached to what they enclose). Returns the text and each token's character span."""
    text = ""
    spans: list[tuple[int, int]] = []
    open_quote = False
    attach_next = False
    for token in tokens:
        piece = {"``": '"', "''": '"', "-LRB-": "(", "-RRB-": ")"}.get(token, token)
        is_quote = token in _QUOTES
        glue = (
            not text
            or attach_next
            or token in _NO_SPACE_BEFORE
            or piece.lower() in _NO_SPACE_BEFORE
            or (is_quote and open_quote)
        )
        if not glue:
            text += " "
        start = len(text)
        text += piece
        spans.append((start, len(text)))
        attach_next = piece in _NO_SPACE_AFTER or (is_quote and not open_quote)
        if is_quote:
            open_quote = not open_quote
    return text, spans


@dataclass(frozen=True)
class ImportReport:
    out_dir: Path
    cases: int
    skipped: list[str] = field(default_factory=list)
    inventory: LabelInventory = field(default_factory=lambda: LabelInventory({}, {}))


def skipped_lines(skipped: list[str], shown: int = SKIPPED_SHOWN) -> list[str]:
    """The first ``shown`` skipped records (id: reason), and how many more there are."""
    lines = skipped[:shown]
    if len(skipped) > shown:
        lines.append(f"... and {len(skipped) - shown} more")
    return lines


def _difficulty(relationships: int, entities: int) -> str:
    if relationships == 0 and entities <= 2 or relationships <= 1 and entities <= 2:
        return "simple"
    if relationships <= 2 and entities <= 4:
        return "medium"
    return "complex"


def _build_case(
    case_id: str, text: str, entities: list[tuple[str, str | None]], relations: list[tuple[int, str, int]]
) -> Case:
    by_name: dict[str, Entity] = {}
    names: list[str] = []
    for name, kind in entities:
        names.append(name)
        key = normalize_name(name)
        if key and key not in by_name:
            by_name[key] = Entity(name=name, type=kind.lower() if kind else None)
    rels: dict[tuple[str, str, str], Relationship] = {}
    sources = set()
    for head, label, tail in relations:
        if not all(isinstance(i, int) and 0 <= i < len(names) for i in (head, tail)):
            raise IndexError(f"relation {label} joins entity {head} and {tail} of {len(names)}")
        source, target = names[head], names[tail]
        rel = Relationship(source=source, relation=normalize_relation(label), target=target)
        rels.setdefault((normalize_name(source), rel.relation, normalize_name(target)), rel)
        sources.add(normalize_name(source))
    entity_list = [
        e.model_copy(update={"role": "subject" if key in sources else "object"}) for key, e in by_name.items()
    ]
    return Case(
        id=case_id,
        text=text,
        gold=Gold(entities=entity_list, relationships=list(rels.values())),
        difficulty=_difficulty(len(rels), len(entity_list)),  # type: ignore[arg-type]
        tags=["imported"],
    )


def _span(entity: Mapping[str, Any], spans: list[tuple[int, int]], text: str) -> tuple[str, str | None]:
    start, end = entity["start"], entity["end"]
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(spans)):
        raise ValueError(f"entity span [{start}, {end}) is outside the {len(spans)} tokens")
    kind = entity.get("type")
    return text[spans[start][0] : spans[end - 1][1]], None if kind is None else str(kind)


def _spert_case(case_id: str, record: Mapping[str, Any]) -> Case:
    tokens = [str(t) for t in record["tokens"]]
    text, spans = detokenize(tokens)
    entities = [_span(e, spans, text) for e in record.get("entities", [])]
    relations = [(r["head"], str(r["type"]), r["tail"]) for r in record.get("relations", [])]
    return _build_case(case_id, text, entities, relations)


class _Collector:
    """Cases that survive the checks, and one line per record that did not (with the reason)."""

    def __init__(self) -> None:
        self.cases: list[Case] = []
        self.skipped: list[str] = []
        self._ids: set[str] = set()

    def add(self, case_id: str, build: Any) -> None:
        if case_id in self._ids:
            self.skipped.append(f"{case_id}: duplicate id (an earlier record has it)")
            return
        try:
            case = build()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            self.skipped.append(f"{case_id}: malformed record ({type(exc).__name__}: {_first_line(exc)})")
            return
        problem = check_case(case)
        if problem:
            self.skipped.append(f"{case_id}: {problem}")
            return
        self._ids.add(case_id)
        self.cases.append(case)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)


def from_spert(records: Iterable[Mapping[str, Any]], prefix: str = "case") -> tuple[list[Case], list[str]]:
    collector = _Collector()
    for index, record in enumerate(records):
        case_id = str(record.get("orig_id", f"{prefix}-{index + 1:05d}"))
        collector.add(case_id, lambda record=record, case_id=case_id: _spert_case(case_id, record))
    return collector.cases, collector.skipped


@dataclass(frozen=True)
class FieldMap:
    """Where a generic JSONL record keeps its parts (dotted paths allowed)."""

    id: str = "id"
    text: str = "text"
    entities: str = "entities"
    entity_name: str = "name"
    entity_type: str = "type"
    relations: str = "relations"
    head: str = "head"
    relation: str = "type"
    tail: str = "tail"


def _get(record: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, Mapping) or part not in record:
            return None
        record = record[part]
    return record


def from_jsonl_records(
    records: Iterable[Mapping[str, Any]], fields: FieldMap, prefix: str = "case"
) -> tuple[list[Case], list[str]]:
    """Relation heads and tails may be entity indices or entity names."""
    collector = _Collector()
    for index, record in enumerate(records):
        raw_id = _get(record, fields.id)
        case_id = str(raw_id) if raw_id is not None and raw_id != "" else f"{prefix}-{index + 1:05d}"
        collector.add(case_id, lambda record=record, case_id=case_id: _jsonl_case(case_id, record, fields))
    return collector.cases, collector.skipped


def _jsonl_case(case_id: str, record: Mapping[str, Any], fields: FieldMap) -> Case:
    text = _get(record, fields.text)
    raw_entities = _get(record, fields.entities) or []
    raw_relations = _get(record, fields.relations) or []
    if not isinstance(text, str) or not isinstance(raw_entities, list) or not isinstance(raw_relations, list):
        raise ValueError(
            f"no text at '{fields.text}' or no list at '{fields.entities}' / '{fields.relations}'"
        )
    entities = []
    for e in raw_entities:
        name = _get(e, fields.entity_name) if isinstance(e, Mapping) else e
        if not isinstance(name, str | int | float) or isinstance(name, bool):
            raise ValueError(f"entity {e!r} has no name at '{fields.entity_name}'")
        kind = _get(e, fields.entity_type) if isinstance(e, Mapping) else None
        entities.append((str(name), None if kind is None else str(kind)))
    names = [normalize_name(name) for name, _ in entities]
    relations = []
    for rel in raw_relations:
        head = _entity_index(_get(rel, fields.head), names)
        tail = _entity_index(_get(rel, fields.tail), names)
        label = _get(rel, fields.relation)
        if head is None or tail is None or not label:
            raise ValueError(f"relation {rel!r} names an unknown entity or has no label")
        relations.append((head, str(label), tail))
    return _build_case(case_id, text, entities, relations)


def _entity_index(end: Any, names: list[str]) -> int | None:
    if isinstance(end, int) and not isinstance(end, bool):
        return end if 0 <= end < len(names) else None
    key = normalize_name(str(end)) if end is not None else ""
    return names.index(key) if key in names else None


def read_records(path: Path) -> list[Mapping[str, Any]]:
    return [record for _, record in jsonio.read_records(path, missing="")]


def write_evalset(cases: list[Case], out_dir: Path, name: str, description: str) -> Path:
    """Write a complete eval set directory; prompt.md and schema.json are built from the cases'
    own entity types and relation labels (labels.py), so the model is told what the scorer expects."""
    if (out_dir / "evalset.toml").exists():
        raise UsageError(f"{out_dir} already holds an eval set - choose another OUT_DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    inventory = label_inventory(cases)
    (out_dir / "prompt.md").write_text(render_prompt(inventory), encoding="utf-8")
    (out_dir / "schema.json").write_text(
        json.dumps(render_schema(inventory), indent=2) + "\n", encoding="utf-8"
    )
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "imported"
    (out_dir / "evalset.toml").write_text(
        f'name = "{safe_name}"\nversion = "1"\ntask = "extraction"\n'
        f"description = {json.dumps(description)}\n"
        'prompt = "prompt.md"\nschema = "schema.json"\ncases = "cases.jsonl"\n'
        "symmetric_relations = []\n\n[defaults]\n"
        f"num_predict = {defaults.NUM_PREDICT}\nnum_ctx = {defaults.NUM_CTX}\n",
        encoding="utf-8",
    )
    with (out_dir / "cases.jsonl").open("w", encoding="utf-8") as fh:
        for case in cases:
            fh.write(json.dumps(case.model_dump(exclude_none=True), ensure_ascii=False) + "\n")
    load_evalset(out_dir)
    return out_dir


def import_file(path: Path, out_dir: Path, fmt: str, fields: FieldMap | None = None) -> ImportReport:
    records = read_records(path)
    if fmt == "spert":
        cases, skipped = from_spert(records, prefix=path.stem)
    elif fmt == "jsonl":
        cases, skipped = from_jsonl_records(records, fields or FieldMap(), prefix=path.stem)
    else:
        raise UsageError(f"unknown import format '{fmt}' - use spert or jsonl")
    if not cases:
        reasons = "; ".join(skipped_lines(skipped, 3)) or "the file holds no records"
        raise UsageError(f"{path}: nothing to import, no record produced a valid case ({reasons})")
    write_evalset(cases, out_dir, out_dir.name, f"imported from {path.name} ({fmt})")
    return ImportReport(out_dir, len(cases), skipped, label_inventory(cases))
