"""Which practice themes an auditor's words raise (SPEC R12, Haringey's quarterly themes).

Pure: a theme is raised by an answer when one of its key words or phrases occurs in it as a
whole word, ignoring capitals, with a common ending allowed on the last word ("delay"
matches "delays" and "delayed", never "relay"). Only the worries and "what needs to be
better" answers are read: themes are what practice needs to work on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

from qa.form_rules import BETTER, WORRIES
from qa.framework import Theme

__all__ = ["THEME_FIELDS", "normalise", "theme_text", "themes_raised"]

#: The answers themes are counted in.
THEME_FIELDS: Final = (WORRIES, BETTER)
_ENDINGS: Final = r"(?:s|es|ed|ing|ful)?"


def normalise(text: str) -> str:
    """Lower case, one kind of apostrophe and hyphen, single spaces."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2010", "-")
    return " ".join(text.lower().split())


@lru_cache(maxsize=64)
def _pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted((re.escape(normalise(k)) for k in keywords), key=len, reverse=True)
    return re.compile(r"(?<![\w'])(?:" + "|".join(alternatives) + ")" + _ENDINGS + r"(?![\w'])")


def theme_text(answers: Mapping[str, Any] | None) -> str:
    """The worries and "what needs to be better" answers of one audit, as one text."""
    if not answers:
        return ""
    parts = [answers.get(k) for k in THEME_FIELDS]
    return "\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def themes_raised(text: str, themes: Iterable[Theme]) -> frozenset[str]:
    """The keys of the themes whose key words occur in ``text``."""
    if not text:
        return frozenset()
    norm = normalise(text)
    return frozenset(t.key for t in themes if t.keywords and _pattern(t.keywords).search(norm))
