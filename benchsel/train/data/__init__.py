"""Training data, one module per concern: the example form (examples), reading common formats
(formats), checks before training: invalid targets, duplicates, leakage, the split (checks), and rendering
with the base's chat template (render). The names are re-exported here."""

from __future__ import annotations

from benchsel.train.data.checks import (
    LEAK_CONTAINMENT,
    NEAR_DUPLICATE_JACCARD,
    SHINGLE_WORDS,
    DataReport,
    Dropped,
    LeakageError,
    PreparedData,
    find_leaks,
    near_duplicates,
    prepare,
    shingles,
    split,
)
from benchsel.train.data.examples import (
    FORMATS,
    Example,
    Format,
    Message,
    assistant_message,
    case_example,
    compact_json,
    example_from_messages,
    write_jsonl,
)
from benchsel.train.data.formats import (
    detect_format,
    load_examples,
)
from benchsel.train.data.render import (
    IGNORE_INDEX,
    render_for_training,
)

__all__ = [
    "DataReport",
    "Dropped",
    "Example",
    "FORMATS",
    "Format",
    "IGNORE_INDEX",
    "LEAK_CONTAINMENT",
    "LeakageError",
    "Message",
    "NEAR_DUPLICATE_JACCARD",
    "PreparedData",
    "SHINGLE_WORDS",
    "assistant_message",
    "case_example",
    "compact_json",
    "detect_format",
    "example_from_messages",
    "find_leaks",
    "load_examples",
    "near_duplicates",
    "prepare",
    "render_for_training",
    "shingles",
    "split",
    "write_jsonl",
]
