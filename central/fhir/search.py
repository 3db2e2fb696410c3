"""FHIR search parameters, parsed without I/O: `date` with its prefixes and precisions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DATE = re.compile(r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<value>\d{4}(-\d{2}(-\d{2}(T.+)?)?)?)$")


class SearchError(ValueError):
    """A search parameter the client must correct (a 400 with an OperationOutcome)."""


def _interval(value: str) -> tuple[datetime, datetime]:
    """The time a FHIR date value covers: [start, end)."""
    if len(value) == 4:
        start = datetime(int(value), 1, 1, tzinfo=UTC)
        return start, start.replace(year=start.year + 1)
    if len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        start = datetime(year, month, 1, tzinfo=UTC)
        return start, (start.replace(year=year + 1, month=1) if month == 12 else start.replace(month=month + 1))
    if len(value) == 10:
        start = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return start, start + timedelta(days=1)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise SearchError(f"date={value}: a time needs its UTC offset (e.g. Z or +01:00)")
    return moment, moment + timedelta(microseconds=1)


def date_bounds(params: list[str]) -> list[tuple[str, datetime]]:
    """`date` parameters -> (op, time) conditions on the effective time, op in ge/lt."""
    bounds: list[tuple[str, datetime]] = []
    for param in params:
        match = _DATE.match(param)
        if not match:
            raise SearchError(f"date={param}: expected [ge|gt|le|lt|eq]YYYY[-MM[-DD[Thh:mm:ss+zz:zz]]]")
        prefix = match["prefix"] or "eq"
        try:
            start, end = _interval(match["value"])
        except ValueError as exc:
            raise SearchError(f"date={param}: {exc}") from None
        if prefix == "ge":
            bounds.append(("ge", start))
        elif prefix == "gt":
            bounds.append(("ge", end))
        elif prefix == "le":
            bounds.append(("lt", end))
        elif prefix == "lt":
            bounds.append(("lt", start))
        elif prefix == "eq":
            bounds += [("ge", start), ("lt", end)]
        else:
            raise SearchError(f"date={param}: the prefix {prefix!r} is not supported here (ge, gt, le, lt, eq)")
    return bounds
