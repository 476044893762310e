"""Import staff and cases from the case management system's CSV exports (SPEC R2).

The import is an upsert that never deletes: audits already recorded against a case or a
person must stay valid, and a partial export must not close cases it does not mention.
One bad row never costs the good ones: rows are checked first, the bad ones reported with
the physical line they start on, and the good ones written in one transaction, each
change with its audit-log entry (SPEC R13).

Data minimisation comes first: a file with a column that looks like a child's name or
another direct identifier (date of birth, address, NHS number, UPN...) is refused whole,
before any row is checked or stored, and case references that look like names or identifiers are
rejected. Rejection reasons never echo a value that might be a child's identifier.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from qa.framework import Framework
from qa.people import manager_loops
from qa.periods import local_date
from store.audit_log import record
from store.models import Case, Staff, Team

__all__ = [
    "CASE_COLUMNS",
    "PROGRESS_MIN_ROWS",
    "STAFF_COLUMNS",
    "ImportRefused",
    "ImportReport",
    "RowError",
    "case_ref_problem",
    "import_cases",
    "import_staff",
]

STAFF_COLUMNS: Final = ("staff_id", "name", "email", "roles", "team", "manager_id")
CASE_COLUMNS: Final = (
    "case_ref", "team", "social_worker_id", "area_of_planning", "opened_on", "status", "tags",
)  # fmt: skip
_STAFF_OPTIONAL: Final = ("active",)
_CASE_OPTIONAL: Final = ("closed_on",)

#: Keys looked up with one IN (...) query each; kept well under every driver's parameter cap.
_CHUNK: Final = 500
#: Flush pending inserts/updates this often so memory and the progress report stay even.
_FLUSH_EVERY: Final = 500
#: Below this many rows progress would only flash, so none is reported.
PROGRESS_MIN_ROWS: Final = 200

_CASE_REF_RE: Final = re.compile(r"^[A-Za-z0-9/_-]{3,32}$")
_STAFF_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/-]{0,63}$")
_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_ISO_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_LIKE_RE: Final = re.compile(r"^(\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}[/-]\d{1,2}[/-]\d{1,2})$")
_UPN_RE: Final = re.compile(r"^[A-Za-z]\d{11}[0-9A-Za-z]$")
_NHS_RE: Final = re.compile(r"^\d{10}$")

_TRUE: Final = frozenset({"yes", "y", "true", "t", "1"})
_FALSE: Final = frozenset({"no", "n", "false", "f", "0"})

# Headers (normalised: lower case, apostrophes and dots dropped, other runs of
# non-alphanumerics turned into "_") that name a direct identifier of a person.
_IDENTIFIER_HEADERS: Final = frozenset({
    "child", "child_name", "childs_name", "name_of_child", "first_name", "firstname",
    "forename", "forenames", "given_name", "given_names", "middle_name", "middle_names",
    "surname", "last_name", "lastname", "family_name", "full_name", "fullname",
    "preferred_name", "known_as", "alias", "dob", "d_o_b", "date_of_birth", "birth_date",
    "birthdate", "birthday", "address", "postcode", "post_code", "zip", "zip_code",
    "nhs_number", "nhs_no", "nhs", "upn", "unique_pupil_number", "ni_number",
    "national_insurance_number", "ni_no", "initials",
})  # fmt: skip
# Any header containing one of these words is an identifier too ("home_address", "child_dob").
_IDENTIFIER_WORDS: Final = frozenset({
    "dob", "birth", "postcode", "forename", "forenames", "surname", "upn", "nhs", "address",
})  # fmt: skip
# "address" is fine in these (the staff file's e-mail address, say).
_ADDRESS_OK_WORDS: Final = frozenset({"email", "mail", "ip", "web"})
# A "name" header is about staff or an organisation, not a child, when it carries one of these.
_STAFF_NAME_WORDS: Final = frozenset({
    "team", "worker", "sw", "manager", "staff", "practitioner", "auditor", "service", "area",
    "tool", "file", "user", "username",
})  # fmt: skip
# Cases file only: contact details of the child or family have no place there.
_CASE_ONLY_WORDS: Final = frozenset({"phone", "telephone", "mobile", "tel", "email"})


class ImportRefused(Exception):
    """The whole file is refused; the message says why and what to do."""


@dataclass(frozen=True)
class RowError:
    """A rejected row: ``line`` is the physical line it starts on (the header is line 1)."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What one import did, for the CLI and the audit trail."""

    kind: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    #: Teams this import named for the first time (created), by name.
    teams_added: list[str] = field(default_factory=list)
    #: Plausible mistakes worth a look (worded by the caller); never a reason to refuse.
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.kind}: {len(self.added):,} added, {len(self.changed):,} changed, "
            f"{len(self.closed):,} closed, {self.unchanged:,} unchanged, "
            f"{len(self.rejected):,} rejected"
        )

    def details(self) -> str:
        lines = [self.summary()]
        lines.extend(f"line {e.line}: {e.reason}" for e in self.rejected)
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "closed": len(self.closed),
            "unchanged": self.unchanged,
            "rejected": len(self.rejected),
        }


class _RowRejected(Exception):
    """Internal: one row fails a check; collected into RowError, never escapes."""


@dataclass(frozen=True)
class _Record:
    """One data record: where it starts and ends in the file, and its values by column."""

    line: int
    end_line: int
    values: dict[str, str]
    problem: str | None = None  # the row's shape is wrong (too few or too many values)


# --------------------------------------------------------------------------- reading


def _normalise_header(header: str) -> str:
    text = re.sub(r"['\u2019.]", "", header.strip().lower())
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _read_text(source: str | Path | TextIO) -> str:
    """The file's text; anything that is not UTF-8 CSV text is refused with the reason."""
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            raw: bytes | str = path.read_bytes()
        except OSError as err:
            raise ImportRefused(f"cannot read {path}: {err.strerror or err}") from None
    else:
        try:
            raw = source.read()
        except UnicodeDecodeError:
            raise ImportRefused(
                "the file is not UTF-8 text (it may be saved as ANSI/Windows-1252): save it as "
                "'CSV UTF-8 (Comma delimited)' and import that file"
            ) from None
    if isinstance(raw, bytes):
        if raw.startswith(b"PK\x03\x04") or raw.startswith(b"\xd0\xcf\x11\xe0"):
            raise ImportRefused(
                "this is an Excel workbook, not a CSV file: open it in Excel and use "
                "File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)', then import that file"
            )
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ImportRefused(
                "the file is saved as UTF-16 ('Unicode text'), not UTF-8: save it again as "
                "'CSV UTF-8 (Comma delimited)' and import that file"
            )
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise ImportRefused(
                f"the file is not UTF-8 text (first bad byte on line {line}; it may be saved "
                "as ANSI/Windows-1252): save it as 'CSV UTF-8 (Comma delimited)' and import "
                "that file"
            ) from None
    else:
        text = raw.removeprefix("\ufeff")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ImportRefused(
            f"the file holds binary data (a NUL byte on line {line}), so it is not a CSV text "
            "file: export the data as CSV (comma-separated, UTF-8) and import that file"
        )
    return text


def _records(text: str) -> tuple[list[str], list[_Record]]:
    """Header (as written) and data records, each with its physical lines; blank lines skipped."""
    # skipinitialspace: `a, "b, c"` is two values, as a person reading it would expect.
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    header: list[str] | None = None
    records: list[_Record] = []
    columns: list[tuple[int, str]] = []
    width = 0
    before = 0
    try:
        for row in reader:
            start, end = before + 1, reader.line_num
            before = end
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if header is None:
                header = cells
                first: dict[str, int] = {}
                for i, n in enumerate(map(_normalise_header, cells)):
                    if n:
                        first.setdefault(n, i)  # a repeated column: the first one counts
                columns = [(i, n) for n, i in first.items()]
                # Trailing empty header cells (Excel leaves them) need no values below.
                width = max((i + 1 for i, _ in columns), default=0)
                continue
            if len(cells) < width or any(cells[len(header):]):
                span = f" (lines {start}-{end})" if end > start else ""
                records.append(_Record(start, end, {}, (
                    f"the row has {len(cells)} values but the header has {width} "
                    f"columns{span}: check for a missing or extra comma, or an unclosed quote"
                )))
                continue
            records.append(_Record(start, end, {name: cells[i] for i, name in columns}))
    except csv.Error as err:
        hint = " (an unclosed quote?)" if "field larger" in str(err) else ""
        raise ImportRefused(
            f"the file is not valid CSV near line {reader.line_num}: {err}{hint}; export it "
            "again as CSV (comma-separated, UTF-8)"
        ) from None
    if header is None:
        raise ImportRefused(
            "the file is empty: expected a header row and then one row per record; check "
            "the export and try again"
        )
    return header, records


def _identifier_reason(norm: str, kind: str) -> str | None:
    """Why a (normalised) header looks like a direct identifier of a person, or None."""
    if kind == "staff" and norm == "name":
        return None  # the staff member's own name
    if norm in _IDENTIFIER_HEADERS:
        return "it looks like a name or other direct identifier of a person"
    words = set(norm.split("_"))
    hits = words & _IDENTIFIER_WORDS
    if hits == {"address"} and words & _ADDRESS_OK_WORDS and kind == "staff":
        hits = set()  # the staff member's e-mail address
    if hits:
        return "it looks like a date of birth, address or other direct identifier of a person"
    staffish = words & _STAFF_NAME_WORDS
    if "name" in words and not staffish:
        return "it looks like a person's name"
    if kind == "cases" and words & _CASE_ONLY_WORDS and not staffish:
        return "it looks like contact details of the child or family"
    return None


def _check_header(
    header: list[str], kind: str, required: Sequence[str], optional: Sequence[str]
) -> None:
    """Refuse the file for identifier columns, missing or repeated columns."""
    names = [_normalise_header(h) for h in header]
    other, other_cols = ("cases", CASE_COLUMNS) if kind == "staff" else ("staff", STAFF_COLUMNS)
    if not set(required) <= set(names) and set(other_cols) <= set(names):
        # Before the identifier check: the staff file's 'name' column is no child's name.
        raise ImportRefused(
            f"this looks like the {other} file (it has the {other} columns, not the {kind} "
            f"ones): import it as {other}; nothing has been imported"
        )
    for i, (raw, norm) in enumerate(zip(header, names, strict=True), start=1):
        reason = _identifier_reason(norm, kind) if norm else None
        if reason:
            extra = (
                " The staff file needs one 'name' column with the staff member's name."
                if kind == "staff" and "name" in norm.split("_") else ""
            )
            raise ImportRefused(
                f"column {i} '{raw}' is refused: {reason}. The bot never stores a child's "
                "name or identifying details (data minimisation): cases are known only by "
                f"their pseudonymous case reference. Remove the column '{raw}' from the "
                f"export and import the file again; nothing has been imported.{extra}"
            )
    positions: dict[str, int] = {}
    for i, norm in enumerate(names, start=1):
        if norm in positions and (norm in required or norm in optional):
            raise ImportRefused(
                f"the column '{norm}' appears twice (columns {positions[norm]} and {i}): "
                "keep one and import the file again"
            )
        positions.setdefault(norm, i)
    missing = [c for c in required if c not in positions]
    if missing:
        hint = ""
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            sep = "semicolons" if ";" in header[0] else "tabs"
            hint = f" The header seems to be separated by {sep}: export with commas instead."
        found = ", ".join(f"'{h}'" for h in header if h) or "none"
        raise ImportRefused(
            f"the {kind} file is missing the column(s) {', '.join(missing)}. It needs a header "
            f"row with {', '.join(required)} (any order, extra columns ignored); "
            f"found: {found}.{hint}"
        )


def _load(
    source: str | Path | TextIO, kind: str, required: Sequence[str], optional: Sequence[str]
) -> list[_Record]:
    text = _read_text(source)
    header, records = _records(text)
    _check_header(header, kind, required, optional)
    return records


# --------------------------------------------------------------------------- field checks


def _single_line(rec: _Record, columns: Iterable[str]) -> None:
    for col in columns:
        value = rec.values.get(col, "")
        if "\n" in value or "\r" in value:
            raise _RowRejected(
                f"{col} runs over several lines (lines {rec.line}-{rec.end_line}): "
                "check for an unclosed quote (\")"
            )


def _suggest(value: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(valid), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _lookup_key(value: str, options: Mapping[str, Any], label_of: Callable[[Any], str]) -> str | None:
    """A framework key given as the key itself or its label, case and spacing ignored."""
    norm = _normalise_header(value)
    if norm in options:
        return norm
    for key, opt in options.items():
        if label_of(opt).strip().casefold() == value.strip().casefold():
            return key
    return None


def _parse_iso_date(col: str, value: str, today: date) -> date:
    if not _ISO_DATE_RE.match(value):
        raise _RowRejected(f"{col} '{value}' is not a date (YYYY-MM-DD)")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise _RowRejected(f"{col} '{value}' is not a date (YYYY-MM-DD)") from None
    if parsed > today:
        raise _RowRejected(f"{col} '{value}' is in the future (today is {today.isoformat()})")
    return parsed


def _split_list(value: str) -> list[str]:
    out: list[str] = []
    for item in value.split(";"):
        item = " ".join(item.split())
        if item and item not in out:
            out.append(item)
    return out


def _team_name(value: str) -> str:
    return " ".join(value.split())


def _nhs_checksum_ok(digits: str) -> bool:
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def case_ref_problem(value: str) -> str | None:
    """Why a value is not an acceptable pseudonymous case reference, or None.

    The reason never quotes the value: one that fails may be a child's name or identifier.
    """
    rule = ("case_ref must be the pseudonymous case reference from the case management "
            "system: 3-32 letters, digits, '-', '_' or '/', with at least one digit")
    if not value:
        return "case_ref is blank"
    if any(c.isspace() for c in value):
        return f"case_ref contains a space and could be a person's name; {rule}"
    if not _CASE_REF_RE.match(value):
        return f"case_ref is not a valid reference; {rule}"
    if not any(c.isdigit() for c in value):
        return f"case_ref has no digits and could be a person's name; {rule}"
    if _DATE_LIKE_RE.match(value):
        return f"case_ref looks like a date (a date of birth?); {rule}"
    if _NHS_RE.match(value) and _nhs_checksum_ok(value):
        return f"case_ref looks like an NHS number; {rule}"
    if _UPN_RE.match(value):
        return f"case_ref looks like a unique pupil number (UPN); {rule}"
    return None


# --------------------------------------------------------------------------- DB helpers

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


#: Told (rows done, rows in the file) as an import goes; the CLI draws a bar with it.
Progress = Callable[[int, int], None]


async def _ensure_teams(session: AsyncSession, wanted: Iterable[str], actor: str,
                        at: datetime) -> dict[str, Team]:
    """Every team by case-folded name, creating (and logging) the ones named for the first time.

    Names match case-insensitively so "Assessment Team 1" and "assessment team 1" in two
    exports do not become two teams; a new team keeps the spelling first seen.
    """
    teams = {t.name.casefold(): t for t in await session.scalars(select(Team))}
    new: list[Team] = []
    for name in sorted(wanted):
        if name.casefold() not in teams:
            team = Team(name=name)
            session.add(team)
            teams[name.casefold()] = team
            new.append(team)
    if new:
        await session.flush()
        for team in new:
            record(session, at=at, actor=actor, action="team.added", entity="team",
                   entity_id=str(team.id), after={"name": team.name})
    return teams


class _Tally:
    """Counts rows done and tells ``progress`` (if any, and if the file is big enough)."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress if total >= PROGRESS_MIN_ROWS else None

    def add(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, self.total)


def _source_label(source: str | Path | TextIO) -> str:
    if isinstance(source, str | Path):
        return Path(source).name
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) else "stream"


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Before/after of only the fields that differ."""
    keys = [k for k in new if old.get(k) != new[k]]
    return {k: old.get(k) for k in keys}, {k: new[k] for k in keys}


def _same_set_keep_order(old: list[str] | None, new: list[str]) -> list[str]:
    """A reordered list (roles, tags) is not a change: keep the stored order then."""
    return list(old or []) if set(old or []) == set(new) else list(new)


def _log_import(session: AsyncSession, report: ImportReport, source: str | Path | TextIO,
                actor: str, at: datetime) -> None:
    """One entry per import that changed something, so an audit trail shows the file."""
    if report.added or report.changed or report.closed:
        record(session, at=at, actor=actor, action=f"import.{report.kind}", entity="import",
               entity_id=report.kind,
               after={"file": _source_label(source), **report.counts()})


def _reject(report: ImportReport, rec: _Record, err: _RowRejected) -> None:
    report.rejected.append(RowError(rec.line, str(err)))


def _layout_problem(rec: _Record) -> None:
    if rec.problem:
        raise _RowRejected(rec.problem)


# --------------------------------------------------------------------------- staff


@dataclass
class _StaffRow:
    line: int
    staff_id: str
    name: str
    email: str
    roles: list[str]
    team: str | None
    manager_id: str | None
    active: bool | None  # None: not given, so left as it is (new staff start active)


def _parse_staff(rec: _Record, framework: Framework) -> _StaffRow:
    v = rec.values
    _single_line(rec, (*STAFF_COLUMNS, *_STAFF_OPTIONAL))
    problems: list[str] = []
    staff_id = v["staff_id"]
    if not staff_id:
        problems.append("staff_id is blank")
    elif not _STAFF_ID_RE.match(staff_id):
        problems.append(f"staff_id '{staff_id}' is not a valid id (1-64 letters, digits, "
                        "'.', '_', '-', '@' or '/', no spaces)")
    name = " ".join(v["name"].split())
    if not name:
        problems.append("name is blank")
    elif len(name) > 200:
        problems.append("name is longer than 200 characters")
    email = v["email"].lower()
    if not email:
        problems.append("email is blank")
    elif not _EMAIL_RE.match(email) or len(email) > 254:
        problems.append(f"email '{v['email']}' does not look like an email address")
    roles: list[str] = []
    unknown: list[str] = []
    for item in _split_list(v["roles"]):
        key = _lookup_key(item, framework.roles, lambda label: label)
        if key is None:
            unknown.append(item)
        elif key not in roles:
            roles.append(key)
    valid_roles = ", ".join(framework.roles)
    if unknown:
        listed = ", ".join(f"'{u}'{_suggest(_normalise_header(u), framework.roles)}"
                           for u in unknown)
        problems.append(f"roles: {listed} not a role in the framework; valid roles: {valid_roles}")
    elif not roles:
        problems.append(f"roles is blank: give at least one, separated by ';' "
                        f"(valid roles: {valid_roles})")
    team = _team_name(v["team"]) or None
    if team and len(team) > 120:
        problems.append("team is longer than 120 characters")
    manager_id = v["manager_id"] or None
    if manager_id and manager_id == staff_id:
        problems.append("manager_id is the staff member's own id")
    active: bool | None = None
    raw_active = v.get("active", "").lower()
    if raw_active in _TRUE:
        active = True
    elif raw_active in _FALSE:
        active = False
    elif raw_active:
        problems.append(f"active '{v['active']}' is not yes or no (yes, no, true, false, 1, 0)")
    if problems:
        raise _RowRejected("; ".join(problems))
    return _StaffRow(rec.line, staff_id, name, email, roles, team, manager_id, active)


def _staff_view(s: Staff, team_names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "name": s.name,
        "email": s.email,
        "roles": list(s.roles or []),
        "team": team_names.get(s.team_id) if s.team_id is not None else None,
        "manager_id": s.manager_id,
        "active": s.active,
    }


async def import_staff(
    sessions: async_sessionmaker[AsyncSession],
    framework: Framework,
    source: str | Path | TextIO,
    *,
    actor: str,
    at: datetime,
    progress: Progress | None = None,
) -> ImportReport:
    """Upsert staff from a CSV export (a ``str`` source is a file path).

    Staff missing from the file are left as they are, never deleted; ``active=no``
    deactivates (reported as closed). A manager_id must name a staff id on an accepted row
    of the file or one already in the database, so escalations always reach someone.
    """
    records = _load(source, "staff", STAFF_COLUMNS, _STAFF_OPTIONAL)
    report = ImportReport(kind="staff")
    rows: dict[str, _StaffRow] = {}
    email_owner: dict[str, str] = {}
    rejected_ids: dict[str, int] = {}
    for rec in records:
        try:
            _layout_problem(rec)
            row = _parse_staff(rec, framework)
            if row.staff_id in rows:
                raise _RowRejected(f"staff_id '{row.staff_id}' already appears on line "
                                   f"{rows[row.staff_id].line}")
            if row.email in email_owner:
                first = rows[email_owner[row.email]]
                raise _RowRejected(f"email '{row.email}' is already used by staff_id "
                                   f"'{first.staff_id}' on line {first.line}")
        except _RowRejected as err:
            _reject(report, rec, err)
            sid = rec.values.get("staff_id", "")
            if sid and sid not in rows:
                rejected_ids.setdefault(sid, rec.line)
            continue
        rows[row.staff_id] = row
        email_owner[row.email] = row.staff_id

    async with sessions.begin() as session:
        ids = list(rows)
        existing: dict[str, Staff] = {}
        for chunk in _chunks(ids):
            for s in await session.scalars(select(Staff).where(Staff.staff_id.in_(chunk))):
                existing[s.staff_id] = s
        outside = sorted({r.manager_id for r in rows.values() if r.manager_id} - set(ids))
        known_outside: set[str] = set()
        for chunk in _chunks(outside):
            known_outside.update(
                await session.scalars(select(Staff.staff_id).where(Staff.staff_id.in_(chunk))))
        # Staff are linked to Teams users by e-mail, so an address may belong to one active
        # person only: the file may not give someone else's address to a new id.
        taken: dict[str, str] = {}
        for chunk in _chunks(sorted(email_owner)):
            for sid, mail in await session.execute(
                select(Staff.staff_id, func.lower(Staff.email)).where(
                    func.lower(Staff.email).in_(chunk), Staff.active.is_(True))
            ):
                if sid not in rows:
                    taken[mail] = sid

        problems: dict[str, str] = {
            r.staff_id: (f"email '{r.email}' already belongs to staff_id "
                         f"'{taken[r.email]}': fix one of the two")
            for r in rows.values() if r.email in taken
        }
        # A manager chain that loops (A reports to B, B to A) would send escalations round
        # in circles: the file's rows in a loop are refused, naming every line in it.
        chain = {sid: m for sid, m in (await session.execute(
            select(Staff.staff_id, Staff.manager_id))).all()}
        chain.update({r.staff_id: r.manager_id for r in rows.values()
                      if r.staff_id not in problems})
        for loop in manager_loops(chain):
            in_file = [sid for sid in loop if sid in rows and sid not in problems]
            where = ", ".join(f"{sid} (line {rows[sid].line})" if sid in rows else sid
                              for sid in loop)
            for sid in in_file:
                problems[sid] = (f"manager_id '{rows[sid].manager_id}' makes a loop in the line "
                                 f"of management: {where} report to each other in a circle; "
                                 "fix one of their manager_id values")
        # A row whose manager was rejected is rejected too; repeat until nothing changes.
        again = True
        while again:
            again = False
            for r in rows.values():
                m = r.manager_id
                if r.staff_id in problems or not m or m in known_outside:
                    continue
                if m in rows and m not in problems:
                    continue
                if m in rows or m in rejected_ids:
                    line = rows[m].line if m in rows else rejected_ids[m]
                    problems[r.staff_id] = f"manager_id '{m}' is on line {line}, which was rejected"
                else:
                    problems[r.staff_id] = (
                        f"manager_id '{m}' is not a staff id in this file or already imported: "
                        "add the manager's row or leave manager_id blank")
                again = True
        report.rejected.extend(RowError(rows[sid].line, why) for sid, why in problems.items())
        report.rejected.sort(key=lambda e: e.line)
        good = [r for r in rows.values() if r.staff_id not in problems]

        before = {t.casefold() for t in await session.scalars(select(Team.name))}
        teams = await _ensure_teams(session, {r.team for r in good if r.team}, actor, at)
        report.teams_added = sorted(t.name for k, t in teams.items() if k not in before)
        team_names = {t.id: t.name for t in teams.values()}
        tally = _Tally(len(records), progress)
        tally.add(len(records) - len(good))
        for n, r in enumerate(good, start=1):
            team_id = teams[r.team.casefold()].id if r.team else None
            current = existing.get(r.staff_id)
            if current is None:
                staff = Staff(staff_id=r.staff_id, name=r.name, email=r.email, roles=r.roles,
                              team_id=team_id, manager_id=r.manager_id,
                              active=True if r.active is None else r.active, updated_at=at)
                session.add(staff)
                record(session, at=at, actor=actor, action="staff.added", entity="staff",
                       entity_id=r.staff_id, after=_staff_view(staff, team_names))
                report.added.append(r.staff_id)
            else:
                _update_staff(session, current, r, team_id, team_names, actor, at, report)
            tally.add()
            if n % _FLUSH_EVERY == 0:
                await session.flush()
        _log_import(session, report, source, actor, at)
    return report


def _update_staff(session: AsyncSession, current: Staff, r: _StaffRow, team_id: int | None,
                  team_names: Mapping[int, str], actor: str, at: datetime,
                  report: ImportReport) -> None:
    """Bring one existing staff member in line with the file, logging what differs."""
    old = _staff_view(current, team_names)
    new = dict(old, name=r.name, email=r.email,
               roles=_same_set_keep_order(current.roles, r.roles),
               team=team_names.get(team_id) if team_id is not None else None,
               manager_id=r.manager_id)
    if r.active is not None:
        new["active"] = r.active
    before, after = _diff(old, new)
    if not after:
        report.unchanged += 1
        return
    for key, value in after.items():
        if key == "team":
            current.team_id = team_id
        else:
            setattr(current, key, value)
    current.updated_at = at
    if after.get("active") is False:
        action = "staff.deactivated"
        report.closed.append(r.staff_id)
    else:
        action = "staff.changed"
        report.changed.append(r.staff_id)
    record(session, at=at, actor=actor, action=action, entity="staff", entity_id=r.staff_id,
           before=before, after=after)


# --------------------------------------------------------------------------- cases


@dataclass
class _CaseRow:
    line: int
    case_ref: str
    team: str
    social_worker_id: str | None
    area: str
    opened_on: date
    status: str
    closed_on: date | None  # only when the file gives one
    tags: list[str]


def _parse_case(rec: _Record, framework: Framework, today: date) -> _CaseRow:
    v = rec.values
    _single_line(rec, (*CASE_COLUMNS, *_CASE_OPTIONAL))
    case_ref = v["case_ref"]
    bad_ref = case_ref_problem(case_ref)
    if bad_ref:  # alone: nothing else on a row that may identify a child is worth echoing
        raise _RowRejected(bad_ref)
    problems: list[str] = []
    team = _team_name(v["team"])
    if not team:
        problems.append("team is blank")
    elif len(team) > 120:
        problems.append("team is longer than 120 characters")
    sw = v["social_worker_id"] or None
    if sw and len(sw) > 64:
        problems.append("social_worker_id is longer than 64 characters")
    area = _lookup_key(v["area_of_planning"], framework.areas, lambda a: a.label)
    if not v["area_of_planning"]:
        problems.append(f"area_of_planning is blank; valid areas: {', '.join(framework.areas)}")
    elif area is None:
        hint = _suggest(_normalise_header(v["area_of_planning"]), framework.areas)
        problems.append(f"area_of_planning '{v['area_of_planning']}' is not an area of planning "
                        f"in the framework{hint}; valid areas: {', '.join(framework.areas)}")
    opened_on: date | None = None
    closed_on: date | None = None
    for col in ("opened_on", "closed_on"):
        raw = v.get(col, "")
        if col == "opened_on" and not raw:
            problems.append("opened_on is blank")
            continue
        if raw:
            try:
                parsed = _parse_iso_date(col, raw, today)
            except _RowRejected as err:
                problems.append(str(err))
                continue
            if col == "opened_on":
                opened_on = parsed
            else:
                closed_on = parsed
    status = v["status"].lower()
    if status not in ("open", "closed"):
        problems.append(f"status '{v['status']}' is not open or closed")
    elif status == "open" and closed_on is not None:
        problems.append("closed_on is given but status is open")
    if opened_on and closed_on and closed_on < opened_on:
        problems.append(f"closed_on {closed_on.isoformat()} is before opened_on "
                        f"{opened_on.isoformat()}")
    tags = [t.lower() for t in _split_list(v["tags"])]
    tags = list(dict.fromkeys(tags))
    if any(len(t) > 64 for t in tags):
        problems.append("a tag is longer than 64 characters")
    if problems:
        raise _RowRejected("; ".join(problems))
    assert area is not None and opened_on is not None
    return _CaseRow(rec.line, case_ref, team, sw, area, opened_on, status, closed_on, tags)


def _case_view(c: Case, team_names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "team": team_names.get(c.team_id),
        "social_worker_id": c.social_worker_id,
        "area": c.area,
        "opened_on": c.opened_on.isoformat(),
        "status": c.status,
        "closed_on": c.closed_on.isoformat() if c.closed_on else None,
        "tags": list(c.tags or []),
    }


async def import_cases(
    sessions: async_sessionmaker[AsyncSession],
    framework: Framework,
    source: str | Path | TextIO,
    *,
    actor: str,
    at: datetime,
    progress: Progress | None = None,
) -> ImportReport:
    """Upsert cases from a CSV export (a ``str`` source is a file path).

    Cases absent from the file are left exactly as they are, since exports are often
    partial; only ``status=closed`` closes a case (closed_on from the optional column,
    else today). A social_worker_id must name a staff id already imported.
    """
    records = _load(source, "cases", CASE_COLUMNS, _CASE_OPTIONAL)
    today = local_date(at, framework.zone)
    report = ImportReport(kind="cases")
    rows: dict[str, _CaseRow] = {}
    for rec in records:
        try:
            _layout_problem(rec)
            row = _parse_case(rec, framework, today)
            if row.case_ref in rows:
                raise _RowRejected(f"case_ref '{row.case_ref}' already appears on line "
                                   f"{rows[row.case_ref].line}")
        except _RowRejected as err:
            _reject(report, rec, err)
            continue
        rows[row.case_ref] = row

    async with sessions.begin() as session:
        refs = list(rows)
        existing: dict[str, Case] = {}
        for chunk in _chunks(refs):
            for c in await session.scalars(select(Case).where(Case.case_ref.in_(chunk))):
                existing[c.case_ref] = c
        workers = sorted({r.social_worker_id for r in rows.values() if r.social_worker_id})
        known: set[str] = set()
        for chunk in _chunks(workers):
            known.update(
                await session.scalars(select(Staff.staff_id).where(Staff.staff_id.in_(chunk))))
        good: list[_CaseRow] = []
        for r in rows.values():
            if r.social_worker_id and r.social_worker_id not in known:
                report.rejected.append(RowError(r.line, (
                    f"social_worker_id '{r.social_worker_id}' is not a known staff id: "
                    "import the staff file first, or leave it blank for an unallocated case")))
            else:
                good.append(r)
        report.rejected.sort(key=lambda e: e.line)

        before = {t.casefold() for t in await session.scalars(select(Team.name))}
        teams = await _ensure_teams(session, {r.team for r in good}, actor, at)
        report.teams_added = sorted(t.name for k, t in teams.items() if k not in before)
        team_names = {t.id: t.name for t in teams.values()}
        tally = _Tally(len(records), progress)
        tally.add(len(records) - len(good))
        for n, r in enumerate(good, start=1):
            team_id = teams[r.team.casefold()].id
            current = existing.get(r.case_ref)
            if current is None:
                closed_on = (r.closed_on or today) if r.status == "closed" else None
                case = Case(case_ref=r.case_ref, team_id=team_id, social_worker_id=r.social_worker_id,
                            area=r.area, opened_on=r.opened_on, status=r.status,
                            closed_on=closed_on, tags=r.tags, updated_at=at)
                session.add(case)
                record(session, at=at, actor=actor, action="case.added", entity="case",
                       entity_id=r.case_ref, after=_case_view(case, team_names))
                report.added.append(r.case_ref)
            else:
                _update_case(session, current, r, team_id, team_names, today, actor, at, report)
            tally.add()
            if n % _FLUSH_EVERY == 0:
                await session.flush()
        _log_import(session, report, source, actor, at)
    return report


def _update_case(session: AsyncSession, current: Case, r: _CaseRow, team_id: int,
                 team_names: Mapping[int, str], today: date, actor: str, at: datetime,
                 report: ImportReport) -> None:
    """Bring one existing case in line with the file, logging what differs."""
    old = _case_view(current, team_names)
    if r.status == "open":
        closed_on = None
    elif r.closed_on is not None:
        closed_on = r.closed_on
    else:  # closed without a date: keep the date it closed on, or today when closing now
        closed_on = current.closed_on if current.status == "closed" and current.closed_on else today
    new = dict(old, team=team_names[team_id], social_worker_id=r.social_worker_id, area=r.area,
               opened_on=r.opened_on.isoformat(), status=r.status,
               closed_on=closed_on.isoformat() if closed_on else None,
               tags=_same_set_keep_order(current.tags, r.tags))
    before, after = _diff(old, new)
    if not after:
        report.unchanged += 1
        return
    current.team_id = team_id
    current.social_worker_id = r.social_worker_id
    current.area = r.area
    current.opened_on = r.opened_on
    current.status = r.status
    current.closed_on = closed_on
    if "tags" in after:
        current.tags = list(r.tags)
    current.updated_at = at
    if after.get("status") == "closed":
        action = "case.closed"
        report.closed.append(r.case_ref)
    else:
        action = "case.reopened" if after.get("status") == "open" else "case.changed"
        report.changed.append(r.case_ref)
    record(session, at=at, actor=actor, action=action, entity="case", entity_id=r.case_ref,
           before=before, after=after)
