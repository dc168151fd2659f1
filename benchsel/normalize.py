"""Names and relation labels in the form gold and predictions are compared in: eval-set validation,
importers and scoring all normalise the same way."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["normalize_name", "normalize_relation", "normalize_text"]

_SPACE = re.compile(r"\s+")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_EDGE_PUNCT = "\"'`“”‘’«».,;:!?()[]{}<>*_"
_NON_WORD = re.compile(r"[\W_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@lru_cache(maxsize=65536)
def normalize_name(name: str) -> str:
    """Casefold, collapse whitespace, strip surrounding quotes/punctuation and a leading article."""
    text = unicodedata.normalize("NFKC", name)
    text = _SPACE.sub(" ", text).strip().strip(_EDGE_PUNCT).strip()
    text = _ARTICLE.sub("", text).strip(_EDGE_PUNCT).strip()
    return text.casefold()


@lru_cache(maxsize=16384)
def normalize_relation(label: str) -> str:
    """``deployed on``, ``deployedOn``, ``deployed-on`` -> ``DEPLOYED_ON``."""
    text = unicodedata.normalize("NFKC", label).strip()
    text = _CAMEL.sub("_", text)
    return _NON_WORD.sub("_", text).strip("_").upper()


_TEXT_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """A whole text as its casefolded words, for comparing texts (duplicates, leakage)."""
    return " ".join(_TEXT_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))
