"""Themes raised and emerging phrases in what auditors wrote (SPEC R12).

Counting themes is the pure matcher in ``qa/themes.py``. Emerging phrases come from YAKE
(``yake`` on PyPI: a maintained, unsupervised keyword extractor that runs here with its own
stop-word lists and no model, so no text ever leaves the machine and nothing is downloaded
at run time), run over the worries and "what needs to be better" answers of a period.

What auditors write can name a child. A phrase goes to a channel only when:

* every word of it also occurs in lower case somewhere in the period's text (names are
  capitalised; a word never seen in lower case is treated as a name and dropped);
* no word is a digit string or part of a staff member's name;
* it is used in the audits of at least 5 different cases (the small-number rule again);
* it is not already one of the framework's themes (those are counted apart).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from qa.digest import Phrase
from qa.disclosure import SMALL_MAX
from qa.framework import Theme
from qa.themes import normalise, themes_raised

__all__ = ["MAX_PHRASES", "emerging_phrases"]

MAX_PHRASES: Final = 5
_CANDIDATES: Final = 40
_WORD_RE: Final = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_MIN_WORD: Final = 3


def _lower_words(texts: Iterable[str]) -> set[str]:
    """Words seen in lower case anywhere (a name is capitalised wherever it is written)."""
    return {w for t in texts for w in _WORD_RE.findall(t) if w.islower()}


def emerging_phrases(texts_by_case: Mapping[str, str], themes: Iterable[Theme], *,
                     names: Iterable[str] = (), limit: int = MAX_PHRASES) -> tuple[Phrase, ...]:
    """The phrases most characteristic of the period's worries, safe for a channel."""
    texts = [t for t in texts_by_case.values() if t.strip()]
    if len(texts_by_case) <= SMALL_MAX:
        return ()
    import yake  # imported here: only the digest needs it, and it pulls in numpy

    themes = tuple(themes)
    lower = _lower_words(texts)
    banned = {part.lower() for n in names for part in _WORD_RE.findall(n)}
    extractor = yake.KeywordExtractor(lan="en", n=3, top=_CANDIDATES, dedup_lim=0.8)
    corpus = "\n\n".join(texts)
    normalised = {ref: normalise(t) for ref, t in texts_by_case.items()}
    found: list[Phrase] = []
    seen: set[str] = set()
    for candidate, _score in extractor.extract_keywords(corpus):
        words = _WORD_RE.findall(candidate)
        if not words or " ".join(words) != " ".join(candidate.split()):
            continue  # digits or punctuation in it
        key = normalise(candidate)
        if key in seen or any(len(w) < _MIN_WORD and len(words) == 1 for w in words):
            continue
        if any(w.lower() not in lower for w in words):
            continue
        if any(w.lower() in banned for w in words) or themes_raised(key, themes):
            continue
        pattern = re.compile(r"(?<![\w'])" + re.escape(key) + r"(?![\w'])")
        cases = sum(1 for t in normalised.values() if pattern.search(t))
        if cases <= SMALL_MAX:
            continue
        seen.add(key)
        found.append(Phrase(key, cases))
        if len(found) >= limit:
            break
    return tuple(found)
