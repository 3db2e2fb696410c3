"""FHIR search parameters, parsed without I/O: what an Observation search asks for, or why it is refused.

Supported (and nothing else; `/metadata` lists exactly these): `patient` / `subject` (also with
`:identifier`, `<tenant's patient system>|<pseudonym>`), `code`
(`[system]|code`), `date` and `_lastUpdated` (prefixes eq, ge, gt, le, lt, sa, eb), `identifier`
(`[system]|value`), `_count`, `_sort` (`date`, `-date`), `_cursor` (the opaque keyset cursor of a
`next` link) and `_format` (JSON only). A date or time without a UTC offset is read in the server's
zone, Europe/Oslo: `date=2026-11-24` is that Norwegian day, not a UTC day.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from central.fhir import codes

SERVER_ZONE = ZoneInfo("Europe/Oslo")
DEFAULT_COUNT = 100
MAX_COUNT = 1000

_DATE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<value>\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?)$"
)
_PREFIXES = "eq, ge, gt, le, lt, sa, eb"
# Search parameters an Observation search understands (with their modifiers, none).
OBSERVATION_PARAMETERS = ("patient", "subject", "patient:identifier", "subject:identifier", "code", "date",
                          "identifier", "_lastUpdated", "_count", "_sort", "_cursor", "_format")
_SINGLE = frozenset({"_count", "_sort", "_cursor", "_format"})
_JSON_FORMATS = {"json", "application/json", "application/fhir+json"}


class SearchError(ValueError):
    """A search the client must correct: a 400 with an OperationOutcome (`code` is its issue type)."""

    def __init__(self, text: str, code: str = "invalid") -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: the last (effective, id) it returned, in its sort order."""

    effective: datetime
    id: str
    descending: bool

    def encode(self) -> str:
        """The opaque text a `next` link carries."""
        raw = json.dumps([self.effective.astimezone(UTC).isoformat(), self.id, int(self.descending)])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor of a `next` link, or a SearchError for anything this server did not make."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            when = datetime.fromisoformat(raw[0])
            if when.tzinfo is None or not isinstance(raw[1], str):
                raise ValueError(text)
            return cls(when, raw[1], bool(raw[2]))
        except (ValueError, TypeError, IndexError, KeyError, binascii.Error):
            raise SearchError("_cursor: not a cursor this server made (take the `next` link as it is)") from None


@dataclass
class ObservationSearch:
    """One Observation search, scoped to the caller's tenant. Each list entry is ANDed; the values in a
    set are ORed (FHIR's repeated parameter and comma)."""

    tenant: str
    patients: list[set[str]] = field(default_factory=list)  # pseudonyms (or hashed Patient ids) in the tenant
    codes: list[set[str]] = field(default_factory=list)  # MDC codes as stored
    dates: list[tuple[str, datetime]] = field(default_factory=list)  # (ge|lt, instant)
    last_updated: list[tuple[str, datetime]] = field(default_factory=list)
    identifiers: list[set[str]] = field(default_factory=list)  # deduplication identifier values
    count: int = DEFAULT_COUNT
    descending: bool = False
    cursor: Cursor | None = None


@dataclass
class Parsed:
    search: ObservationSearch
    kept: list[tuple[str, str]]  # the parameters used, for the `self` and `next` links (without _cursor)
    ignored: list[str]  # parameter names not understood (lenient handling)
    cursor: str | None = None  # the `_cursor` as given


def _local(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=SERVER_ZONE) if moment.tzinfo is None else moment


def _interval(value: str) -> tuple[datetime, datetime]:
    """The time a FHIR date value covers, [start, end): its precision decides the width."""
    if len(value) == 4:
        start = datetime(int(value), 1, 1, tzinfo=SERVER_ZONE)
        return start, start.replace(year=start.year + 1)
    if len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        start = datetime(year, month, 1, tzinfo=SERVER_ZONE)
        return start, (start.replace(year=year + 1, month=1) if month == 12 else start.replace(month=month + 1))
    if len(value) == 10:
        start = datetime.fromisoformat(value).replace(tzinfo=SERVER_ZONE)
        return start, (start + timedelta(days=1)).replace(tzinfo=SERVER_ZONE)  # wall-clock day (23 h, 25 h)
    moment = _local(value)
    clock = value[11:].split("Z")[0].split("+")[0].split("-")[0]
    width = {5: timedelta(minutes=1), 8: timedelta(seconds=1)}.get(len(clock), timedelta(microseconds=1))
    return moment, moment + width


def date_bounds(name: str, params: list[str]) -> list[tuple[str, datetime]]:
    """`date` (or `_lastUpdated`) parameters -> (op, instant) conditions, op in ge/lt, in UTC."""
    bounds: list[tuple[str, datetime]] = []
    for param in params:
        match = _DATE.match(param)
        if not match:
            raise SearchError(f"{name}={param}: expected [{_PREFIXES.replace(', ', '|')}]YYYY[-MM[-DD[Thh:mm[:ss]"
                              "[+zz:zz|Z]]]] (no offset: Europe/Oslo)")
        prefix = match["prefix"] or "eq"
        try:
            start, end = (t.astimezone(UTC) for t in _interval(match["value"]))
        except ValueError as exc:
            raise SearchError(f"{name}={param}: {exc}") from None
        if prefix == "ge":
            bounds.append(("ge", start))
        elif prefix in ("gt", "sa"):
            bounds.append(("ge", end))
        elif prefix == "le":
            bounds.append(("lt", end))
        elif prefix in ("lt", "eb"):
            bounds.append(("lt", start))
        elif prefix == "eq":
            bounds += [("ge", start), ("lt", end)]
        else:
            raise SearchError(f"{name}={param}: the prefix {prefix!r} is not supported ({_PREFIXES})", "not-supported")
    return bounds


def _token(name: str, value: str) -> tuple[str | None, str]:
    """`[system]|code` -> (system or None for any, code); an empty system (`|code`) is no system."""
    if "|" not in value:
        return None, value
    system, _, code = value.partition("|")
    if not code:
        raise SearchError(f"{name}={value}: a code after the | is needed")
    return system, code


def mdc_codes(value: str) -> set[str]:
    """A `code` parameter (comma-separated `[system]|code`) -> the MDC codes it names (LOINC translated;
    a code of any other system matches nothing)."""
    found: set[str] = set()
    for item in value.split(","):
        system, code = _token("code", item)
        if system in (None, codes.MDC):
            found.add(code)
        if system in (None, codes.LOINC):
            found |= {str(c.mdc) for c in codes.OBSERVATION_CODES if c.loinc == code}
    return found


def patient_values(value: str, tenant: str) -> set[str]:
    """`patient` / `subject` (`Patient/<id>` or `<id>`, comma-separated) -> the pseudonyms it can mean in the
    caller's tenant. `<tenant>.<pseudonym>` of another tenant matches nothing (it is read as a
    pseudonym of the caller's own tenant, which it is not)."""
    found: set[str] = set()
    for item in value.split(","):
        ref = item.removeprefix("Patient/")
        if not ref or "/" in ref:
            raise SearchError(f"patient={item}: expected Patient/<id> or <id>")
        found.add(ref)
        head, dot, rest = ref.partition(".")
        if dot and head == tenant and rest:
            found.add(rest)
    return found


def patient_identifiers(value: str, tenant: str) -> set[str]:
    """`patient:identifier=<system>|<pseudonym>` (comma-separated): the pseudonyms, when the system is the
    caller's tenant's patient system (or none is given); another tenant's system matches nothing."""
    found: set[str] = set()
    for item in value.split(","):
        system, pseudonym = _token("patient:identifier", item)
        if system in (None, codes.patient_system(tenant)):
            found.add(pseudonym)
    return found


def _identifiers(value: str) -> set[str]:
    found: set[str] = set()
    for item in value.split(","):
        system, code = _token("identifier", item)
        if system in (None, codes.DEDUP_SYSTEM):
            found.add(code)
    return found


def _count(value: str) -> int:
    if not value.isdigit():
        raise SearchError(f"_count={value}: expected a whole number ≥ 0")
    return min(int(value), MAX_COUNT)


def _sort(value: str) -> bool:
    if value not in ("date", "-date"):
        raise SearchError(f"_sort={value}: only date and -date are supported", "not-supported")
    return value == "-date"


def _apply(search: ObservationSearch, name: str, value: str) -> None:
    if name in ("patient", "subject"):
        search.patients.append(patient_values(value, search.tenant))
    elif name in ("patient:identifier", "subject:identifier"):
        search.patients.append(patient_identifiers(value, search.tenant))
    elif name == "code":
        search.codes.append(mdc_codes(value))
    elif name == "date":
        search.dates += date_bounds(name, [value])
    elif name == "_lastUpdated":
        search.last_updated += date_bounds(name, [value])
    elif name == "identifier":
        search.identifiers.append(_identifiers(value))
    elif name == "_count":
        search.count = _count(value)
    elif name == "_sort":
        search.descending = _sort(value)
    elif name == "_cursor":
        search.cursor = Cursor.decode(value)
    elif name == "_format" and value not in _JSON_FORMATS:
        raise SearchError(f"_format={value}: this server speaks JSON only", "not-supported")


def parse_observation_search(items: list[tuple[str, str]], tenant: str, *, strict: bool) -> Parsed:
    """Query items -> the search. Unknown parameters (or any with a modifier) are refused under
    `Prefer: handling=strict` and otherwise ignored and left out of the links."""
    search = ObservationSearch(tenant=tenant)
    kept: list[tuple[str, str]] = []
    ignored: list[str] = []
    seen: set[str] = set()
    cursor: str | None = None
    for name, value in items:
        if name not in OBSERVATION_PARAMETERS:
            if strict:
                raise SearchError(f"the search parameter {name!r} is not supported here; supported: "
                                  f"{', '.join(OBSERVATION_PARAMETERS)}", "not-supported")
            ignored.append(name)
            continue
        if name in _SINGLE and name in seen:
            raise SearchError(f"{name} is given more than once")
        seen.add(name)
        _apply(search, name, value)
        if name == "_cursor":
            cursor = value
        else:
            kept.append((name, value))
    if search.cursor is not None and search.cursor.descending != search.descending:
        raise SearchError("_cursor: it belongs to the other _sort order")
    return Parsed(search, kept, ignored, cursor)
