"""Reading and checking the framework file: TOML in, a :class:`~qa.framework.Framework` out.

A bad file must be refused at start with the line and the reason, so validation is strict:
unknown keys are errors, and every error names the dotted key and the line it is written on.
tomllib gives no positions, so :class:`_Locator` scans the source text for them. The defaults
for every optional setting live here, since they are what a file that leaves a setting out
means. No I/O beyond reading the file itself.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qa.calendar import REGIONS
from qa.framework import (
    DEFAULT_GRADES,
    DEFAULT_MODERATORS,
    DEFAULT_REMEDIAL_ROLES,
    DEFAULT_ROLES,
    OWNER,
    Area,
    CalendarConfig,
    Domain,
    Escalation,
    Framework,
    Grade,
    Moderation,
    Retention,
    Schedule,
    Theme,
    Tool,
)
from qa.periods import month_names

logger = logging.getLogger(__name__)

__all__ = [
    "CALENDAR_REGIONS",
    "DEFAULT_THEMES",
    "FRAMEWORKS_DIR",
    "FrameworkError",
    "bundled_framework_path",
    "describe",
    "format_key",
    "load_framework",
    "parse_framework",
]

FRAMEWORKS_DIR: Final = Path(__file__).resolve().parent / "frameworks"

#: Working-day calendars the bot knows (bank holidays differ by nation).
CALENDAR_REGIONS: Final = frozenset(REGIONS)

_DEFAULT_QUOTAS: Final = {
    "team_manager": 1,
    "advanced_practitioner": 1,
    "head_of_service": 1,
    "iro": 1,
    "cp_chair": 1,
}
_DEFAULT_QA_ROLES: Final = ("qa_lead", "principal_social_worker")
_DEFAULT_GOOD_OR_BETTER: Final = ("outstanding", "good")
_DEFAULT_ACTIONS_REQUIRED: Final = ("requires_improvement", "inadequate")
_DEFAULT_LADDER: Final = (OWNER, "team_manager", "service_manager", "assistant_director")
_DEFAULT_REMEDIAL_DAYS: Final = {"inadequate": 7, "requires_improvement": 14}
_DEFAULT_REAUDIT_MONTHS: Final = {"inadequate": 8, "requires_improvement": 12}
_DEFAULT_ALWAYS_MODERATE: Final = ("inadequate",)
#: The practice themes a file gets when it lists none, drawn from the source frameworks:
#: Haringey's quarterly themes (direct work, supervision, recording), Hillingdon's and
#: Lambeth's child's voice and drift and delay, and the commonest presenting needs.
DEFAULT_THEMES: Final = (
    Theme("direct_work", "Direct work with the child",
          ("direct work", "life story", "seen alone", "time with the child", "play work")),
    Theme("supervision", "Supervision", ("supervision", "reflective discussion")),
    Theme("recording", "Recording and chronology",
          ("recording", "chronology", "case summary", "genogram", "case notes",
           "not recorded", "out of date")),
    Theme("childs_voice", "The child's voice",
          ("voice of the child", "child's voice", "wishes and feelings", "lived experience",
           "child's views")),
    Theme("drift_and_delay", "Drift and delay", ("drift", "delay", "timescale", "not progressed")),
    Theme("management_oversight", "Management oversight",
          ("management oversight", "management decision", "manager's oversight")),
    Theme("multi_agency", "Multi-agency working",
          ("multi-agency", "partner agencies", "information sharing", "core group")),
    Theme("planning", "Planning", ("contingency plan", "smart plan", "plan is not", "planning")),
    Theme("domestic_abuse", "Domestic abuse",
          ("domestic abuse", "domestic violence", "coercive control")),
    Theme("neglect", "Neglect", ("neglect", "home conditions", "basic care")),
)


_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_TIME_RE: Final = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOURS_RE: Final = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)$")
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POS_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END_RE: Final = re.compile(r"\s*\(at end of document\)\s*$")

# A dotted key as a tuple: strings for table keys, ints for array indexes.
KeyPath = tuple[str | int, ...]


# --------------------------------------------------------------------------- errors


class FrameworkError(Exception):
    """A framework file that cannot be used, with where and why, for the person fixing it."""

    def __init__(self, file: str, line: int | None, key: str, reason: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the error picklable (multiprocessing, logging handlers) despite the custom init.
        return (type(self), (self.file, self.line, self.key, self.reason))


# --------------------------------------------------------------------------- locator


def format_key(path: KeyPath) -> str:
    """Render a key path the way a reader would write it: ``tools.x.domains[2].questions``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY_RE.fullmatch(part) else json.dumps(part)
            out += f".{text}" if out else text
    return out


class _Locator:
    """Finds the line each key, table and array element is written on.

    A lenient scanner for text tomllib has already accepted: it follows table headers
    (counting ``[[array]]`` entries), dotted keys, inline tables and multi-line arrays.
    It only records positions; values come from tomllib.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self._lines: dict[KeyPath, int] = {}
        self._explicit: set[KeyPath] = set()
        self._aot: dict[KeyPath, int] = {}
        try:
            self._scan()
        except (IndexError, ValueError, tomllib.TOMLDecodeError):
            # Positions are a courtesy; a scanner slip must never hide the real error.
            logger.debug("framework locator stopped early at line %d", self._line)

    def line_for(self, path: KeyPath) -> int | None:
        """Line of the key, else of the nearest enclosing key or table that is written."""
        p = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return None

    # -- recording

    def _record(self, path: KeyPath, line: int, *, explicit: bool) -> None:
        if explicit:
            if path not in self._explicit:
                self._lines[path] = line
                self._explicit.add(path)
        else:
            self._lines.setdefault(path, line)

    def _record_prefixes(self, path: KeyPath, line: int) -> None:
        for i in range(1, len(path)):
            self._record(path[:i], line, explicit=False)

    # -- scanning

    def _peek(self, s: str) -> bool:
        return self._text.startswith(s, self._pos)

    def _skip_blank(self, *, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            c = text[self._pos]
            if c in " \t\r":
                self._pos += 1
            elif c == "\n" and newlines:
                self._line += 1
                self._pos += 1
            elif c == "#" and newlines:
                while self._pos < len(text) and text[self._pos] != "\n":
                    self._pos += 1
            else:
                return

    def _scan(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(self._text):
                return
            line = self._line
            if self._peek("["):
                aot = self._peek("[[")
                self._pos += 2 if aot else 1
                parts = self._key()
                self._skip_blank(newlines=False)
                self._pos += 2 if aot else 1
                table = self._resolve_header(parts, aot=aot)
                self._record_prefixes(table, line)
                self._record(table, line, explicit=True)
            else:
                self._assignment(table)

    def _resolve_header(self, parts: list[str], *, aot: bool) -> KeyPath:
        resolved: KeyPath = ()
        for i, part in enumerate(parts):
            resolved = (*resolved, part)
            if aot and i == len(parts) - 1:
                index = self._aot.get(resolved, 0)
                self._aot[resolved] = index + 1
                resolved = (*resolved, index)
            elif resolved in self._aot:
                resolved = (*resolved, self._aot[resolved] - 1)
        return resolved

    def _assignment(self, table: KeyPath) -> None:
        line = self._line
        path = (*table, *self._key())
        self._skip_blank(newlines=False)
        if not self._peek("="):
            raise ValueError("expected '='")
        self._pos += 1
        self._record_prefixes(path, line)
        self._record(path, line, explicit=True)
        self._value(path)

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            if self._peek('"'):
                start = self._pos
                self._skip_basic_string()
                raw = self._text[start : self._pos]
                parts.append(tomllib.loads(f"k = {raw}")["k"])
            elif self._peek("'"):
                end = self._text.index("'", self._pos + 1)
                parts.append(self._text[self._pos + 1 : end])
                self._pos = end + 1
            else:
                m = _BARE_KEY_RE.match(self._text, self._pos)
                if not m:
                    raise ValueError("expected a key")
                parts.append(m.group())
                self._pos = m.end()
            self._skip_blank(newlines=False)
            if self._peek("."):
                self._pos += 1
                continue
            return parts

    def _value(self, path: KeyPath) -> None:
        self._skip_blank(newlines=False)
        if self._peek("["):
            self._pos += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek("]"):
                    self._pos += 1
                    return
                element = (*path, index)
                self._record(element, self._line, explicit=True)
                self._value(element)
                self._skip_blank(newlines=True)
                if self._peek(","):
                    self._pos += 1
                index += 1
        elif self._peek("{"):
            self._pos += 1
            while True:
                self._skip_blank(newlines=True)
                if self._peek("}"):
                    self._pos += 1
                    return
                self._assignment(path)
                self._skip_blank(newlines=True)
                if self._peek(","):
                    self._pos += 1
        elif self._peek('"""') or self._peek("'''"):
            self._skip_multiline_string(self._text[self._pos : self._pos + 3])
        elif self._peek('"'):
            self._skip_basic_string()
        elif self._peek("'"):
            self._pos = self._text.index("'", self._pos + 1) + 1
        else:
            text = self._text
            while self._pos < len(text) and text[self._pos] not in ",]}\n#":
                self._pos += 1

    def _skip_basic_string(self) -> None:
        self._pos += 1
        text = self._text
        while text[self._pos] != '"':
            self._pos += 2 if text[self._pos] == "\\" else 1
        self._pos += 1

    def _skip_multiline_string(self, delim: str) -> None:
        text = self._text
        self._pos += 3
        while not self._peek(delim):
            if delim == '"""' and text[self._pos] == "\\":
                if text[self._pos + 1] == "\n":
                    self._line += 1
                self._pos += 2
                continue
            if text[self._pos] == "\n":
                self._line += 1
            self._pos += 1
        # Up to two quote characters may sit just before the closing delimiter.
        quote = delim[0]
        run = 0
        while self._pos + run < len(text) and text[self._pos + run] == quote and run < 5:
            run += 1
        self._pos += run


# --------------------------------------------------------------------------- validation


def _kind(value: object) -> str:
    """Plain-English name of a TOML value's type, for error messages read by QA leads."""
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    if isinstance(value, int):
        return f"a whole number ({value})"
    if isinstance(value, float):
        return f"a decimal number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})" if len(value) <= 40 else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    return type(value).__name__


class _Validator:
    """Turns the parsed TOML into a Framework, raising the first problem with its position."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.locator = _Locator(text)

    # -- error helpers

    def fail(self, path: KeyPath, reason: str) -> FrameworkError:
        return FrameworkError(self.source, self.locator.line_for(path), format_key(path), reason)

    def expect(self, path: KeyPath, value: object, wanted: str) -> FrameworkError:
        return self.fail(path, f"expected {wanted}, got {_kind(value)}")

    def check_keys(self, table: Mapping[str, Any], path: KeyPath, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
                )
                raise self.fail((*path, key), f"unknown key{hint}")

    # -- typed getters

    def table(
        self, parent: Mapping[str, Any], key: str, path: KeyPath, *, required: bool = False
    ) -> dict[str, Any] | None:
        if key not in parent:
            if required:
                raise self.fail((*path, key), "required table is missing")
            return None
        value = parent[key]
        if not isinstance(value, dict):
            raise self.expect((*path, key), value, "a table")
        return value

    def text(
        self, parent: Mapping[str, Any], key: str, path: KeyPath, default: str | None = None
    ) -> str:
        if key not in parent:
            if default is None:
                raise self.fail((*path, key), "required key is missing")
            return default
        value = parent[key]
        if not isinstance(value, str):
            raise self.expect((*path, key), value, "text in quotes")
        if not value.strip():
            raise self.fail((*path, key), "must not be empty")
        return value.strip()

    def integer(
        self,
        parent: Mapping[str, Any],
        key: str,
        path: KeyPath,
        default: int | None,
        *,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        if key not in parent:
            if default is None:
                raise self.fail((*path, key), "required key is missing")
            return default
        return self.int_value((*path, key), parent[key], minimum=minimum, maximum=maximum)

    def int_value(
        self, path: KeyPath, value: object, *, minimum: int, maximum: int | None = None
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.expect(path, value, "a whole number")
        if value < minimum:
            what = "negative" if value < 0 and minimum >= 0 else "too small"
            raise self.fail(path, f"{value} is {what}; must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise self.fail(path, f"{value} is too large; must be at most {maximum}")
        return value

    def boolean(self, parent: Mapping[str, Any], key: str, path: KeyPath, default: bool) -> bool:
        if key not in parent:
            return default
        value = parent[key]
        if not isinstance(value, bool):
            raise self.expect((*path, key), value, "true or false")
        return value

    def time_of_day(
        self, parent: Mapping[str, Any], key: str, path: KeyPath, default: time
    ) -> time:
        if key not in parent:
            return default
        value = parent[key]
        if isinstance(value, time):
            return value
        if isinstance(value, str):
            m = _TIME_RE.match(value.strip())
            if m:
                return time(int(m.group(1)), int(m.group(2)))
            raise self.fail(
                (*path, key),
                f'{value!r} is not a time of day; write "HH:MM" (24-hour), e.g. "09:30"',
            )
        raise self.expect((*path, key), value, 'a time such as "09:30"')

    def list_of(self, parent: Mapping[str, Any], key: str, path: KeyPath) -> list[Any] | None:
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, list):
            raise self.expect((*path, key), value, "a list in square brackets")
        return value

    def ident(self, path: KeyPath, value: object, what: str) -> str:
        if not isinstance(value, str):
            raise self.expect(path, value, f"a {what} key in quotes")
        if not _KEY_RE.match(value):
            raise self.fail(
                path, f"{value!r} is not a valid {what} key; use lower-case letters, digits and _"
            )
        return value

    def key_list(
        self,
        parent: Mapping[str, Any],
        key: str,
        path: KeyPath,
        default: Iterable[str],
        known: Mapping[str, Any] | frozenset[str],
        what: str,
        *,
        extra: frozenset[str] = frozenset(),
    ) -> tuple[str, ...]:
        """A list of references (grade or role keys) that must all exist in ``known``."""
        items = self.list_of(parent, key, path)
        if items is None:
            values = tuple(default)
            missing = [v for v in values if v not in known and v not in extra]
            if missing:
                raise self.fail(
                    (*path, key),
                    f"required: the default {list(values)} names {what}s that are not defined "
                    f"({', '.join(missing)})",
                )
            return values
        seen: list[str] = []
        for i, item in enumerate(items):
            item_path = (*path, key, i)
            if not isinstance(item, str):
                raise self.expect(item_path, item, f"a {what} key in quotes")
            if item not in known and item not in extra:
                raise self.fail(item_path, self._unknown(item, what, [*known, *sorted(extra)]))
            if item in seen:
                raise self.fail(item_path, f"{item!r} is listed twice")
            seen.append(item)
        return tuple(seen)

    def keyed_ints(
        self,
        parent: Mapping[str, Any],
        key: str,
        path: KeyPath,
        default: Mapping[str, int],
        known: Mapping[str, Any],
        what: str,
        *,
        minimum: int,
        maximum: int | None = None,
    ) -> dict[str, int]:
        """A table of ``<grade or role key> = number``."""
        table = self.table(parent, key, path)
        if table is None:
            missing = [k for k in default if k not in known]
            if missing:
                raise self.fail(
                    (*path, key),
                    f"required: the default names {what}s that are not defined "
                    f"({', '.join(missing)})",
                )
            return dict(default)
        out: dict[str, int] = {}
        for name, value in table.items():
            entry = (*path, key, name)
            if name not in known:
                raise self.fail(entry, self._unknown(name, what, list(known)))
            out[name] = self.int_value(entry, value, minimum=minimum, maximum=maximum)
        return out

    @staticmethod
    def _unknown(name: str, what: str, known: list[str]) -> str:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known {what}s: {', '.join(known)}"
        return f"{name!r} is not a known {what}; {hint}"

    # -- sections

    def framework(self, data: dict[str, Any]) -> Framework:
        self.check_keys(
            data,
            (),
            (
                "authority", "timezone", "grades", "roles", "auditing", "areas", "tools",
                "escalation", "reaudit_months", "moderation", "calendar", "schedule",
                "themes", "retention",
            ),
        )  # fmt: skip
        authority = self.text(data, "authority", ())
        timezone = self.timezone(data)
        grades, good, needs_actions = self.grades(data)
        grade_keys = {g.key: g for g in grades}
        roles = self.roles(data)
        auditing = self.table(data, "auditing", ()) or {}
        tools = self.tools(data)
        areas = self.areas(data, tools)
        aud = self.auditing(auditing, roles)
        escalation = self.escalation(data, roles, grade_keys)
        reaudit = self.keyed_ints(
            data, "reaudit_months", (), _DEFAULT_REAUDIT_MONTHS, grade_keys, "grade",
            minimum=1, maximum=60,
        )  # fmt: skip
        return Framework(
            authority=authority,
            timezone=timezone,
            grades=grades,
            good_or_better=good,
            actions_required=needs_actions,
            roles=MappingProxyType(roles),
            auditor_quotas=MappingProxyType(aud["quotas"]),
            qa_roles=frozenset(aud["qa_roles"]),
            areas=MappingProxyType(areas),
            tools=MappingProxyType(tools),
            blackout_months=frozenset(aud["blackout_months"]),
            look_back_months=aud["look_back_months"],
            repeat_window_months=aud["repeat_window_months"],
            deadline_working_days=aud["deadline_working_days"],
            reminder_working_days_before=aud["reminder_working_days_before"],
            max_actions=aud["max_actions"],
            escalation=escalation,
            reaudit_months=MappingProxyType(reaudit),
            moderation=self.moderation(data, grade_keys, roles, aud["qa_roles"]),
            calendar=self.calendar(data),
            schedule=self.schedule(data),
            source=self.source,
            themes=self.themes(data),
            retention=self.retention(data),
        )

    def timezone(self, data: Mapping[str, Any]) -> str:
        name = self.text(data, "timezone", (), "Europe/London")
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise self.fail(
                ("timezone",), f'{name!r} is not a known timezone; e.g. "Europe/London"'
            ) from None
        return name

    def grades(
        self, data: Mapping[str, Any]
    ) -> tuple[tuple[Grade, ...], frozenset[str], frozenset[str]]:
        path: KeyPath = ("grades",)
        section = self.table(data, "grades", ()) or {}
        self.check_keys(section, path, ("scale", "good_or_better", "actions_required"))
        scale = self.list_of(section, "scale", path)
        if scale is None:
            grades = tuple(Grade(k, label, i) for i, (k, label) in enumerate(DEFAULT_GRADES))
        else:
            if len(scale) < 2:
                raise self.fail((*path, "scale"), "a grade scale needs at least two grades")
            built: list[Grade] = []
            for i, entry in enumerate(scale):
                gpath = (*path, "scale", i)
                if not isinstance(entry, dict):
                    raise self.expect(gpath, entry, "a table with key and label")
                self.check_keys(entry, gpath, ("key", "label", "description"))
                if "key" not in entry:
                    raise self.fail((*gpath, "key"), "required key is missing")
                key = self.ident((*gpath, "key"), entry["key"], "grade")
                if any(g.key == key for g in built):
                    raise self.fail((*gpath, "key"), f"grade {key!r} is defined twice")
                label = self.text(entry, "label", gpath)
                description = self.text(entry, "description", gpath, "")
                built.append(Grade(key, label, i, description))
            grades = tuple(built)
        known = {g.key: g for g in grades}
        good = self.key_list(
            section, "good_or_better", path, _DEFAULT_GOOD_OR_BETTER, known, "grade"
        )
        if not good:
            raise self.fail(
                (*path, "good_or_better"), "at least one grade must count as good or better"
            )
        if set(good) != {g.key for g in grades[: len(good)]}:
            raise self.fail(
                (*path, "good_or_better"),
                "must be the best grades at the top of the scale "
                f"(the scale runs {', '.join(known)})",
            )
        if len(good) == len(grades):
            raise self.fail((*path, "good_or_better"), "cannot include every grade on the scale")
        actions = self.key_list(
            section, "actions_required", path, _DEFAULT_ACTIONS_REQUIRED, known, "grade"
        )
        return grades, frozenset(good), frozenset(actions)

    def roles(self, data: Mapping[str, Any]) -> dict[str, str]:
        roles = dict(DEFAULT_ROLES)
        section = self.table(data, "roles", ())
        for key, label in (section or {}).items():
            path: KeyPath = ("roles", key)
            self.ident(path, key, "role")
            if key == OWNER:
                raise self.fail(path, f"{OWNER!r} is reserved for the action owner in the ladder")
            if not isinstance(label, str):
                raise self.expect(path, label, "the role's label in quotes")
            if not label.strip():
                raise self.fail(path, "must not be empty")
            roles[key] = label.strip()
        return roles

    def auditing(self, section: Mapping[str, Any], roles: Mapping[str, str]) -> dict[str, Any]:
        path: KeyPath = ("auditing",)
        self.check_keys(
            section,
            path,
            (
                "quotas", "qa_roles", "blackout_months", "look_back_months",
                "repeat_window_months", "deadline_working_days", "reminder_working_days_before",
                "max_actions",
            ),
        )  # fmt: skip
        quotas = self.keyed_ints(
            section, "quotas", path, _DEFAULT_QUOTAS, roles, "role", minimum=0, maximum=50
        )
        if not any(quotas.values()):
            raise self.fail(
                (*path, "quotas"), "no role audits any cases; give at least one role a quota"
            )
        qa_roles = self.key_list(section, "qa_roles", path, _DEFAULT_QA_ROLES, roles, "role")
        if not qa_roles:
            raise self.fail(
                (*path, "qa_roles"), "name at least one QA role (they configure and moderate)"
            )
        blackout: list[int] = []
        for i, month in enumerate(self.list_of(section, "blackout_months", path) or []):
            mpath = (*path, "blackout_months", i)
            if isinstance(month, bool) or not isinstance(month, int):
                raise self.expect(mpath, month, "a month number 1-12")
            if not 1 <= month <= 12:
                raise self.fail(mpath, f"{month} is not a month; use 1 (January) to 12 (December)")
            if month in blackout:
                raise self.fail(mpath, f"month {month} is listed twice")
            blackout.append(month)
        if len(blackout) == 12:
            raise self.fail(
                (*path, "blackout_months"), "every month is blacked out; no audits would run"
            )
        deadline = self.integer(section, "deadline_working_days", path, 15, minimum=1, maximum=60)
        reminder = self.integer(section, "reminder_working_days_before", path, 3, minimum=0)
        if reminder >= deadline:
            raise self.fail(
                (*path, "reminder_working_days_before"),
                f"the reminder ({reminder}) must come before the deadline ({deadline} working days)",
            )
        return {
            "quotas": quotas,
            "qa_roles": qa_roles,
            "blackout_months": blackout,
            "look_back_months": self.integer(
                section, "look_back_months", path, 6, minimum=1, maximum=60
            ),
            "repeat_window_months": self.integer(
                section, "repeat_window_months", path, 6, minimum=0, maximum=60
            ),
            "deadline_working_days": deadline,
            "reminder_working_days_before": reminder,
            "max_actions": self.integer(section, "max_actions", path, 5, minimum=1, maximum=50),
        }

    def tools(self, data: Mapping[str, Any]) -> dict[str, Tool]:
        section = self.table(data, "tools", (), required=True)
        assert section is not None  # required=True raised otherwise
        if not section:
            raise self.fail(("tools",), "define at least one audit tool")
        tools: dict[str, Tool] = {}
        for key, body in section.items():
            path: KeyPath = ("tools", key)
            self.ident(path, key, "tool")
            if not isinstance(body, dict):
                raise self.expect(path, body, "a table")
            self.check_keys(body, path, ("label", "domains"))
            label = self.text(body, "label", path)
            domains_raw = self.list_of(body, "domains", path)
            if not domains_raw:
                raise self.fail((*path, "domains"), "the tool is empty; add at least one domain")
            domains: list[Domain] = []
            for i, entry in enumerate(domains_raw):
                domains.append(self.domain((*path, "domains", i), entry, domains))
            tools[key] = Tool(key, label, tuple(domains))
        return tools

    def domain(self, path: KeyPath, entry: object, earlier: list[Domain]) -> Domain:
        if not isinstance(entry, dict):
            raise self.expect(path, entry, "a table with key, title and questions")
        self.check_keys(entry, path, ("key", "title", "questions"))
        if "key" not in entry:
            raise self.fail((*path, "key"), "required key is missing")
        key = self.ident((*path, "key"), entry["key"], "domain")
        if any(d.key == key for d in earlier):
            raise self.fail((*path, "key"), f"domain {key!r} appears twice in this tool")
        title = self.text(entry, "title", path)
        questions = self.list_of(entry, "questions", path)
        if not questions:
            raise self.fail((*path, "questions"), "give at least one guiding question")
        out: list[str] = []
        for i, q in enumerate(questions):
            qpath = (*path, "questions", i)
            if not isinstance(q, str):
                raise self.expect(qpath, q, "a question in quotes")
            if not q.strip():
                raise self.fail(qpath, "question is empty")
            out.append(" ".join(q.split()))
        return Domain(key, title, tuple(out))

    def areas(self, data: Mapping[str, Any], tools: Mapping[str, Tool]) -> dict[str, Area]:
        section = self.table(data, "areas", (), required=True)
        assert section is not None
        if not section:
            raise self.fail(("areas",), "define at least one area of planning")
        areas: dict[str, Area] = {}
        for key, body in section.items():
            path: KeyPath = ("areas", key)
            self.ident(path, key, "area")
            if not isinstance(body, dict):
                raise self.expect(path, body, "a table")
            self.check_keys(body, path, ("label", "tool", "monthly_count"))
            label = self.text(body, "label", path)
            tool = self.text(body, "tool", path)
            if tool not in tools:
                raise self.fail((*path, "tool"), self._unknown(tool, "tool", list(tools)))
            count = (
                self.integer(body, "monthly_count", path, None, minimum=0, maximum=10_000)
                if "monthly_count" in body
                else None
            )
            areas[key] = Area(key, label, tool, count)
        return areas

    def escalation(
        self, data: Mapping[str, Any], roles: Mapping[str, str], grades: Mapping[str, Grade]
    ) -> Escalation:
        path: KeyPath = ("escalation",)
        section = self.table(data, "escalation", ()) or {}
        self.check_keys(
            section,
            path,
            (
                "ladder", "step_days", "remedial_days", "remedial_roles",
                "safeguarding_ack_hours", "action_reminder_working_days", "part_b_working_days",
            ),
        )  # fmt: skip
        ladder = self.key_list(
            section, "ladder", path, _DEFAULT_LADDER, roles, "role", extra=frozenset({OWNER})
        )
        if not ladder:
            raise self.fail((*path, "ladder"), "the ladder needs at least one step")
        remedial_roles = self.key_list(
            section, "remedial_roles", path, DEFAULT_REMEDIAL_ROLES, roles, "role"
        )
        remedial_days = self.keyed_ints(
            section, "remedial_days", path, _DEFAULT_REMEDIAL_DAYS, grades, "grade",
            minimum=1, maximum=365,
        )  # fmt: skip
        return Escalation(
            ladder=ladder,
            step_days=self.integer(section, "step_days", path, 7, minimum=1, maximum=90),
            remedial_days=MappingProxyType(remedial_days),
            safeguarding_ack_hours=self.integer(
                section, "safeguarding_ack_hours", path, 4, minimum=1, maximum=168
            ),
            action_reminder_working_days=self.integer(
                section, "action_reminder_working_days", path, 2, minimum=0, maximum=30
            ),
            remedial_roles=remedial_roles,
            part_b_working_days=self.integer(
                section, "part_b_working_days", path, 10, minimum=1, maximum=60
            ),
        )

    def moderation(self, data: Mapping[str, Any], grades: Mapping[str, Grade],
                   roles: Mapping[str, str], qa_roles: Iterable[str]) -> Moderation:
        path: KeyPath = ("moderation",)
        section = self.table(data, "moderation", ()) or {}
        self.check_keys(section, path, ("rate", "always", "moderators", "working_days"))
        rate: float = 0.10
        if "rate" in section:
            value = section["rate"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.expect((*path, "rate"), value, "a fraction such as 0.10")
            if not 0.0 <= value <= 1.0:
                raise self.fail((*path, "rate"), f"{value} is outside 0 to 1; write 10% as 0.10")
            rate = float(value)
        always = self.key_list(section, "always", path, _DEFAULT_ALWAYS_MODERATE, grades, "grade")
        # By default the QA team and whichever of the usual moderating roles the file has.
        default = tuple(dict.fromkeys([*qa_roles, *(r for r in DEFAULT_MODERATORS if r in roles)]))
        moderators = self.key_list(section, "moderators", path, default, roles, "role")
        if not moderators:
            raise self.fail((*path, "moderators"), "name at least one role that moderates")
        days = self.integer(section, "working_days", path, 10, minimum=1, maximum=60)
        return Moderation(rate, frozenset(always), moderators, days)

    def calendar(self, data: Mapping[str, Any]) -> CalendarConfig:
        path: KeyPath = ("calendar",)
        section = self.table(data, "calendar", ()) or {}
        self.check_keys(section, path, ("region", "extra_closures", "working_hours"))
        region = self.text(section, "region", path, "england-and-wales")
        if region not in CALENDAR_REGIONS:
            raise self.fail(
                (*path, "region"),
                f"{region!r} is not a known region; use one of {', '.join(sorted(CALENDAR_REGIONS))}",
            )
        closures: list[date] = []
        for i, value in enumerate(self.list_of(section, "extra_closures", path) or []):
            dpath = (*path, "extra_closures", i)
            day: date
            if isinstance(value, datetime):
                raise self.fail(dpath, "give a date without a time, e.g. 2025-12-24")
            if isinstance(value, date):
                day = value
            elif isinstance(value, str):
                try:
                    if not _DATE_RE.match(value):
                        raise ValueError(value)
                    day = date.fromisoformat(value)
                except ValueError:
                    raise self.fail(
                        dpath, f"{value!r} is not a valid date; write YYYY-MM-DD, e.g. 2025-12-24"
                    ) from None
            else:
                raise self.expect(dpath, value, "a date such as 2025-12-24")
            if day in closures:
                raise self.fail(dpath, f"{day.isoformat()} is listed twice")
            closures.append(day)
        day_starts, day_ends = time(9, 0), time(17, 0)
        if "working_hours" in section:
            raw = section["working_hours"]
            hours_path = (*path, "working_hours")
            m = _HOURS_RE.match(raw.strip()) if isinstance(raw, str) else None
            if not m:
                raise self.fail(hours_path, f'{raw!r} is not a span of hours; write "09:00-17:00"')
            day_starts = time(int(m.group(1)), int(m.group(2)))
            day_ends = time(int(m.group(3)), int(m.group(4)))
            if day_ends <= day_starts:
                raise self.fail(hours_path, "the working day must end after it starts")
        return CalendarConfig(region, tuple(sorted(closures)), day_starts, day_ends)

    def themes(self, data: Mapping[str, Any]) -> tuple[Theme, ...]:
        """``[themes.<key>]`` tables with a label and key words; none given: the defaults."""
        section = self.table(data, "themes", ())
        if section is None:
            return DEFAULT_THEMES
        themes: list[Theme] = []
        for key, body in section.items():
            path: KeyPath = ("themes", key)
            self.ident(path, key, "theme")
            if not isinstance(body, dict):
                raise self.expect(path, body, "a table with label and keywords")
            self.check_keys(body, path, ("label", "keywords"))
            label = self.text(body, "label", path)
            words = self.list_of(body, "keywords", path)
            if not words:
                raise self.fail((*path, "keywords"), "give at least one key word or phrase")
            seen: list[str] = []
            for i, word in enumerate(words):
                wpath = (*path, "keywords", i)
                if not isinstance(word, str):
                    raise self.expect(wpath, word, "a word or phrase in quotes")
                norm = " ".join(word.lower().split())
                if not norm:
                    raise self.fail(wpath, "key word is empty")
                if norm in seen:
                    raise self.fail(wpath, f"{word!r} is listed twice")
                seen.append(norm)
            themes.append(Theme(key, label, tuple(seen)))
        return tuple(themes)

    def retention(self, data: Mapping[str, Any]) -> Retention:
        path: KeyPath = ("retention",)
        section = self.table(data, "retention", ()) or {}
        self.check_keys(section, path, ("closed_case_years", "outbox_content_days",
                                        "audit_log_years"))
        return Retention(
            closed_case_years=self.integer(section, "closed_case_years", path, 7, minimum=1,
                                           maximum=100),
            outbox_content_days=self.integer(section, "outbox_content_days", path, 7,
                                             minimum=1, maximum=365),
            audit_log_years=self.integer(section, "audit_log_years", path, 7, minimum=1,
                                         maximum=100),
        )

    def schedule(self, data: Mapping[str, Any]) -> Schedule:
        path: KeyPath = ("schedule",)
        section = self.table(data, "schedule", ()) or {}
        self.check_keys(
            section,
            path,
            (
                "allocation_time", "allocation_working_day", "daily_time", "digest_day",
                "digest_time", "quarterly_digest",
            ),
        )  # fmt: skip
        return Schedule(
            allocation_time=self.time_of_day(section, "allocation_time", path, time(9, 0)),
            daily_time=self.time_of_day(section, "daily_time", path, time(9, 30)),
            digest_day=self.integer(section, "digest_day", path, 1, minimum=1, maximum=28),
            digest_time=self.time_of_day(section, "digest_time", path, time(10, 0)),
            quarterly_digest=self.boolean(section, "quarterly_digest", path, True),
            allocation_working_day=self.integer(
                section, "allocation_working_day", path, 1, minimum=1, maximum=10
            ),
        )


# --------------------------------------------------------------------------- public API


def _syntax_error(source: str, text: str, err: tomllib.TOMLDecodeError) -> FrameworkError:
    """Move tomllib's '(at line N, column M)' into FrameworkError.line."""
    message = str(err)
    m = _TOML_POS_RE.search(message)
    if m:
        reason = f"{message[: m.start()]} (column {m.group(2)})"
        return FrameworkError(source, int(m.group(1)), "syntax", reason)
    m_end = _TOML_END_RE.search(message)
    if m_end:
        last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        return FrameworkError(
            source, last_line, "syntax", f"{message[: m_end.start()]} (at end of file)"
        )
    return FrameworkError(source, None, "syntax", message)


def parse_framework(text: str, source: str = "<string>") -> Framework:
    """Parse and validate framework TOML text; ``source`` is used in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _syntax_error(source, text, err) from None
    return _Validator(source, text).framework(data)


def load_framework(path: str | Path) -> Framework:
    """Read and validate a framework file; any problem raises FrameworkError."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise FrameworkError(
            source, None, "file", f"cannot read the file: {err.strerror or err}"
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise FrameworkError(
            source, line, "file", "not valid UTF-8 text; save the file as UTF-8"
        ) from None
    fw = parse_framework(text, source)
    logger.info(
        "loaded framework for %s from %s: %d areas, %d tools",
        fw.authority, source, len(fw.areas), len(fw.tools),
    )  # fmt: skip
    return fw


def bundled_framework_path(name: str = "lambeth_like") -> Path:
    """Path of an example framework shipped in qa/frameworks (``.toml`` optional)."""
    stem = name.removesuffix(".toml")
    if not stem or Path(stem).name != stem or stem.startswith("."):
        raise ValueError(f"bundled framework name must be a plain file name, got {name!r}")
    path = FRAMEWORKS_DIR / f"{stem}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in FRAMEWORKS_DIR.glob("*.toml")))
        raise FileNotFoundError(f"no bundled framework {name!r}; available: {known}")
    return path


def _fmt_time(t: time) -> str:
    return t.strftime("%H:%M")


def describe(fw: Framework) -> str:
    """Short human summary, so a QA lead can check what the bot understood from the file."""
    lines = [f"Authority: {fw.authority} (timezone {fw.timezone})", f"Source: {fw.source}"]

    def tag(g: Grade) -> str:
        notes = []
        if g.key in fw.good_or_better:
            notes.append("good or better")
        if g.key in fw.actions_required:
            notes.append("needs actions")
        return f"{g.label} [{', '.join(notes)}]" if notes else g.label

    lines.append("Grades (best first): " + ", ".join(tag(g) for g in fw.grades))
    lines.append("Areas of planning:")
    for area in fw.areas.values():
        tool = fw.tools[area.tool]
        count = (
            f"{area.monthly_count} a month" if area.monthly_count is not None else "no fixed count"
        )
        lines.append(
            f"  {area.key}: {area.label} -> tool {tool.key} ({len(tool.domains)} domains), {count}"
        )
    lines.append("Audit tools:")
    for tool in fw.tools.values():
        questions = sum(len(d.questions) for d in tool.domains)
        lines.append(
            f"  {tool.key}: {tool.label}, {len(tool.domains)} domains, {questions} questions"
        )
    quotas = ", ".join(f"{fw.roles[r]} {q}" for r, q in fw.auditor_quotas.items() if q)
    lines.append(f"Auditors (cases a month): {quotas}")
    lines.append("QA team: " + ", ".join(fw.roles[r] for r in sorted(fw.qa_roles)))
    months = ", ".join(month_names(fw.blackout_months)) or "none"
    lines.append(f"Blackout months: {months}")
    lines.append(
        f"Look-back {fw.look_back_months} months; no repeat audit within "
        f"{fw.repeat_window_months} months; deadline {fw.deadline_working_days} working days, "
        f"reminder {fw.reminder_working_days_before} before; at most {fw.max_actions} actions"
    )
    esc = fw.escalation
    ladder = " -> ".join(esc.ladder)
    remedial = ", ".join(f"{fw.grade(g).label} {d} days" for g, d in esc.remedial_days.items())
    lines.append(
        f"Escalation: {ladder}, every {esc.step_days} days; remedial action ({', '.join(esc.remedial_roles)}): "
        f"{remedial or 'none'}; safeguarding acknowledgement within {esc.safeguarding_ack_hours} "
        f"working hours; Part B within {esc.part_b_working_days} working days"
    )
    reaudit = ", ".join(
        f"{fw.grade(g).label} within {m} months" for g, m in fw.reaudit_months.items()
    )
    lines.append(f"Re-audit: {reaudit or 'none'}")
    always = ", ".join(
        fw.grade(g).label for g in sorted(fw.moderation.always, key=lambda k: fw.grade(k).rank)
    )
    mod = fw.moderation
    lines.append(f"Moderation: {mod.rate:.0%} sample; always: {always or 'none'}; by "
                 f"{', '.join(mod.moderators)} within {mod.working_days} working days")
    lines.append(
        f"Calendar: {fw.calendar.region} bank holidays + {len(fw.calendar.extra_closures)} extra "
        f"closures; working hours {_fmt_time(fw.calendar.day_starts)}-"
        f"{_fmt_time(fw.calendar.day_ends)}"
    )
    lines.append("Themes: " + (", ".join(f"{t.label} ({len(t.keywords)} key words)"
                                         for t in fw.themes) or "none"))
    r = fw.retention
    lines.append(f"Retention: closed cases {r.closed_case_years} years; message content "
                 f"{r.outbox_content_days} days after sending; other log entries "
                 f"{r.audit_log_years} years")
    s = fw.schedule
    lines.append(
        f"Schedule: allocation {_fmt_time(s.allocation_time)} on working day {s.allocation_working_day} "
        f"of the month; daily jobs {_fmt_time(s.daily_time)}; monthly digest on day {s.digest_day} at "
        f"{_fmt_time(s.digest_time)}; quarterly digest {'on' if s.quarterly_digest else 'off'}"
    )
    return "\n".join(lines)
