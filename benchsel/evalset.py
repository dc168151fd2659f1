"""The eval-set format: a directory with evalset.toml, prompt.md, schema.json and cases.jsonl.

Loading validates everything and raises :class:`EvalSetError` naming the file, the line and the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchsel import defaults, jsonio
from benchsel.errors import EvalSetError
from benchsel.gcpause import gc_paused
from benchsel.jsonio import BOM
from benchsel.normalize import normalize_name, normalize_relation

Difficulty = Literal["simple", "medium", "complex", "adversarial"]
DIFFICULTIES: tuple[str, ...] = ("simple", "medium", "complex", "adversarial")
MANIFEST = "evalset.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    name: str = Field(min_length=1)
    type: str | None = None
    role: str | None = None


class Relationship(_Strict):
    source: str = Field(min_length=1)
    relation: str = Field(min_length=1)
    target: str = Field(min_length=1)


class Gold(_Strict):
    entities: list[Entity] = Field(default_factory=list)
    relationships: list[Relationship] = Field(default_factory=list)


class Case(_Strict):
    """One gold-standard case: a text and the answer a perfect model would give."""

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    gold: Gold
    difficulty: Difficulty
    tags: list[str] = Field(default_factory=list)


class Defaults(_Strict):
    """Request options every model gets for this eval set (overridable on the command line)."""

    num_predict: int = Field(defaults.NUM_PREDICT, gt=0)
    num_ctx: int = Field(defaults.NUM_CTX, gt=0)
    temperature: float = Field(0.0, ge=0)
    seed: int = 42


class Manifest(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = "1"
    task: str = "extraction"
    description: str = ""
    prompt: str = "prompt.md"
    schema_file: str = Field("schema.json", alias="schema")
    cases: str = "cases.jsonl"
    symmetric_relations: list[str] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=lambda: Defaults.model_validate({}))

    @field_validator("symmetric_relations")
    @classmethod
    def _upper_snake(cls, value: list[str]) -> list[str]:
        return [normalize_relation(v) for v in value]


@dataclass(frozen=True)
class Prompt:
    """A system prompt and a user template with ``{text}`` where the case text goes."""

    system: str
    user_template: str

    def messages(self, text: str) -> list[dict[str, str]]:
        user = self.user_template.replace("{text}", text)
        if self.system:
            return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        return [{"role": "user", "content": user}]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.system}\0{self.user_template}".encode()).hexdigest()


@dataclass(frozen=True)
class EvalSet:
    path: Path
    manifest: Manifest
    prompt: Prompt
    schema: dict[str, Any]
    cases: tuple[Case, ...]
    content_hash: str

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def symmetric_relations(self) -> frozenset[str]:
        return frozenset(self.manifest.symmetric_relations)

    @cached_property
    def by_id(self) -> dict[str, Case]:
        return {case.id: case for case in self.cases}

    def case(self, case_id: str) -> Case:
        try:
            return self.by_id[case_id]
        except KeyError:
            raise EvalSetError(f"eval set '{self.name}' has no case '{case_id}'") from None


# ---- finding eval sets -------------------------------------------------------------------------


def bundled_root() -> Path:
    """Where the bundled eval sets live: $BENCHSEL_EVALSETS, the wheel's copy, or the source tree."""
    env = os.environ.get("BENCHSEL_EVALSETS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "_evalsets", here.parent / "evalsets"):
        if candidate.is_dir():
            return candidate
    return here / "_evalsets"


def bundled_evalsets() -> list[Path]:
    root = bundled_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())


def resolve_evalset(name_or_path: str | Path) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    if path.is_dir():
        return path
    bundled = bundled_root() / str(name_or_path)
    if isinstance(name_or_path, str) and "/" not in name_or_path and bundled.is_dir():
        return bundled
    names = ", ".join(p.name for p in bundled_evalsets()) or "none found"
    raise EvalSetError(
        f"eval set '{name_or_path}' not found: give a directory holding {MANIFEST} "
        f"or a bundled name ({names}); `benchsel evalset list` shows them"
    )


# ---- loading ------------------------------------------------------------------------------------

MAX_PROBLEMS = 50
"""`evalset validate` lists at most this many problems."""


def load_evalset(name_or_path: str | Path) -> EvalSet:
    """Load and validate an eval set directory (or a bundled name); the first problem is an error."""
    root = resolve_evalset(name_or_path)
    manifest, manifest_bytes = _manifest(root)
    prompt_bytes = _read_bytes(root / manifest.prompt)
    prompt = parse_prompt(_text(prompt_bytes, root / manifest.prompt), root / manifest.prompt)
    schema_bytes = _read_bytes(root / manifest.schema_file)
    schema = _load_schema(schema_bytes, root / manifest.schema_file)
    cases_bytes = _read_bytes(root / manifest.cases)
    cases = parse_cases(cases_bytes, root / manifest.cases)
    digest = hashlib.sha256()
    for part in (manifest_bytes, prompt_bytes, schema_bytes, cases_bytes):
        digest.update(hashlib.sha256(part).digest())
    return EvalSet(root, manifest, prompt, schema, tuple(cases), digest.hexdigest())


@dataclass(frozen=True)
class Validation:
    """What `evalset validate` found: each problem as ``file[:line]: reason`` (at most ``limit``, then
    ``more`` counts the rest), the good cases read and the content hash (as load_evalset gives it)."""

    root: Path
    name: str
    version: str
    cases: int
    problems: tuple[str, ...]
    more: int
    content_hash: str

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_evalset(name_or_path: str | Path, *, limit: int = MAX_PROBLEMS) -> Validation:
    """Check an eval set and report every problem (up to ``limit``), not only the first. Cases are
    read line by line and not kept, so memory stays small on a large cases.jsonl."""
    root = resolve_evalset(name_or_path)
    manifest, manifest_bytes = _manifest(root)  # nothing else can be found without it
    problems: list[str] = []
    hashes = [hashlib.sha256(manifest_bytes).digest()]
    for name, check in ((manifest.prompt, _prompt_problem), (manifest.schema_file, _schema_problem)):
        path = root / name
        try:
            raw = _read_bytes(path)
            check(raw, path)
        except EvalSetError as exc:
            problems.append(str(exc))
            raw = b""
        hashes.append(hashlib.sha256(raw).digest())
    cases_path = root / manifest.cases
    reader = _CaseReader(cases_path)
    cases_hash = hashlib.sha256()
    more = 0
    try:
        handle = cases_path.open("rb")
    except OSError as exc:
        problems.append(str(_unreadable(cases_path, exc)))
    else:
        with handle:
            for lineno, line in enumerate(handle, start=1):
                cases_hash.update(line)
                try:
                    reader.read(lineno, line)
                except EvalSetError as exc:
                    if len(problems) < limit:
                        problems.append(str(exc))
                    else:
                        more += 1
        if reader.count == 0 and not problems:
            problems.append(f"{cases_path}: holds no cases")
    hashes.append(cases_hash.digest())
    content_hash = hashlib.sha256(b"".join(hashes)).hexdigest()
    return Validation(
        root, manifest.name, manifest.version, reader.count, tuple(problems), more, content_hash
    )


def _manifest(root: Path) -> tuple[Manifest, bytes]:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise EvalSetError(f"{manifest_path}: missing - an eval set directory needs {MANIFEST}")
    manifest_bytes = _read_bytes(manifest_path)
    try:
        manifest = Manifest.model_validate(tomllib.loads(_text(manifest_bytes, manifest_path)))
    except tomllib.TOMLDecodeError as exc:
        raise EvalSetError(f"{manifest_path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise EvalSetError(f"{manifest_path}: {_pydantic_reason(exc)}") from None
    return manifest, manifest_bytes


def _text(raw: bytes, path: Path) -> str:
    """UTF-8 text of an eval-set file, a leading byte-order mark dropped."""
    return jsonio.decode(raw.removeprefix(BOM), str(path), EvalSetError)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: OSError) -> EvalSetError:
    if isinstance(exc, FileNotFoundError):
        return EvalSetError(f"{path}: missing - the manifest names it, create it or fix the name")
    return EvalSetError(f"{path}: cannot be read: {exc.strerror}")


_HEADING = re.compile(r"^#\s+(system|user)\s*$", re.IGNORECASE | re.MULTILINE)


def parse_prompt(text: str, path: Path | str = "prompt.md") -> Prompt:
    """``# System`` and ``# User`` sections; the user section must contain ``{text}``."""
    parts = _HEADING.split(text)
    sections = {parts[i].lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise EvalSetError(f"{path}: needs a '# User' section holding the template with {{text}}")
    if "{text}" not in sections["user"]:
        raise EvalSetError(f"{path}: the '# User' section must contain {{text}} where the case text goes")
    return Prompt(system=sections.get("system", ""), user_template=sections["user"])


def _prompt_problem(raw: bytes, path: Path) -> None:
    parse_prompt(_text(raw, path), path)


def _schema_problem(raw: bytes, path: Path) -> None:
    _load_schema(raw, path)


def _load_schema(raw: bytes, path: Path) -> dict[str, Any]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    schema = jsonio.loads(_text(raw, path), str(path), EvalSetError, whole_file=True)
    if not isinstance(schema, dict):
        raise EvalSetError(f"{path}: a JSON Schema must be an object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise EvalSetError(f"{path}: not a valid JSON Schema at {where}: {exc.message}") from None
    except RecursionError:
        raise EvalSetError(f"{path}: nested too deeply to be a JSON Schema") from None
    return schema


class _CaseReader:
    """Reads cases.jsonl one line at a time: each bad line is an EvalSetError naming file:line and the
    reason; duplicate ids are found across lines."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.seen: dict[str, int] = {}
        self.count = 0

    def read(self, lineno: int, raw: bytes | str) -> Case | None:
        where = f"{self.path}:{lineno}"
        if isinstance(raw, bytes):
            raw = jsonio.decode(raw.removeprefix(BOM) if lineno == 1 else raw, where, EvalSetError)
        if not raw.strip():
            return None
        data = jsonio.loads(raw, where, EvalSetError)
        try:
            case = Case.model_validate(data)
        except ValidationError as exc:
            raise EvalSetError(f"{where}: {_pydantic_reason(exc)}") from None
        except RecursionError:
            raise EvalSetError(f"{where}: nested too deeply") from None
        if case.id in self.seen:
            raise EvalSetError(f"{where}: duplicate id '{case.id}' (first on line {self.seen[case.id]})")
        self.seen[case.id] = lineno
        problem = check_case(case)
        if problem:
            raise EvalSetError(f"{where}: case '{case.id}': {problem}")
        self.count += 1
        return case


def parse_cases(raw: bytes, path: Path | str = "cases.jsonl") -> list[Case]:
    """Parse and check cases.jsonl; the first problem is an error naming its line."""
    reader = _CaseReader(path)
    cases: list[Case] = []
    with gc_paused():
        # split on newlines only: U+2028 and friends may sit inside a JSON string
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            case = reader.read(lineno, line)
            if case is not None:
                cases.append(case)
    if not cases:
        raise EvalSetError(f"{path}: holds no cases")
    return cases


def check_case(case: Case) -> str | None:
    """The gold must be grounded: names in the text, relationship ends among the gold entities."""
    haystack = case.text.casefold()
    names = set()
    for entity in case.gold.entities:
        if entity.name.casefold() not in haystack:
            return f"gold entity '{entity.name}' does not occur in the text"
        names.add(normalize_name(entity.name))
    for rel in case.gold.relationships:
        for end in (rel.source, rel.target):
            if normalize_name(end) not in names:
                return f"relationship end '{end}' ({rel.relation}) is not a gold entity"
    return None


def _pydantic_reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "literal_error" and loc == "difficulty":
        msg = f"unknown difficulty {err['input']!r}, use one of {', '.join(DIFFICULTIES)}"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field (typo?)"
    return f"{loc}: {msg}" if loc else msg


# ---- stats --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSetStats:
    name: str
    cases: int
    by_difficulty: dict[str, int]
    entities: int
    relationships: int
    relation_labels: dict[str, int]
    cases_without_relationships: int
    text_chars_min: int
    text_chars_median: int
    text_chars_max: int


def stats(evalset: EvalSet) -> EvalSetStats:
    lengths = sorted(len(c.text) for c in evalset.cases)
    labels = Counter(r.relation for c in evalset.cases for r in c.gold.relationships)
    by_diff: Counter[str] = Counter(c.difficulty for c in evalset.cases)
    return EvalSetStats(
        name=evalset.name,
        cases=len(evalset.cases),
        by_difficulty={d: by_diff.get(d, 0) for d in DIFFICULTIES},
        entities=sum(len(c.gold.entities) for c in evalset.cases),
        relationships=sum(len(c.gold.relationships) for c in evalset.cases),
        relation_labels=dict(labels.most_common()),
        cases_without_relationships=sum(1 for c in evalset.cases if not c.gold.relationships),
        text_chars_min=lengths[0],
        text_chars_median=lengths[len(lengths) // 2],
        text_chars_max=lengths[-1],
    )
