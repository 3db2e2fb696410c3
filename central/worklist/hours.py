"""Service hours per tenant: when the follow-up service is staffed (default weekdays 09:00–15:00,
Europe/Oslo). Outside them the worklist says so, and what the patient was told: the red notice on the
box (in an emergency the patient calls the GP, the out-of-hours service 116 117, or 113). Pure: the
clock is passed in.

Written as `mon-fri 09:00-15:00 Europe/Oslo` (the zone is optional); per tenant in a TOML file:

    [tenants.oslo-kommune]
    hours = "mon-fri 08:00-15:30 Europe/Oslo"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.errors import CentralError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT = "mon-fri 09:00-15:00 Europe/Oslo"


@dataclass(frozen=True)
class ServiceHours:
    """When a tenant's follow-up service is staffed: weekdays (0 = Monday), start and end, a time zone."""

    days: frozenset[int] = frozenset(range(5))
    start: time = time(9)
    end: time = time(15)
    timezone: str = "Europe/Oslo"

    @classmethod
    def parse(cls, text: str) -> ServiceHours:
        """`mon-fri 09:00-15:00 [Zone/Name]`; a CentralError in one line when it is not that."""
        parts = text.split()
        try:
            if len(parts) not in (2, 3):
                raise ValueError("expected: DAYS HH:MM-HH:MM [ZONE]")
            first, _, last = parts[0].lower().partition("-")
            for day in (first, last or first):
                if day not in DAYS:
                    raise ValueError(f"unknown day {day!r} (one of {', '.join(DAYS)})")
            a, b = DAYS.index(first), DAYS.index(last or first)
            days = frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7), *range(0, b + 1)])
            start_text, end_text = parts[1].split("-")
            start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
            if end <= start:
                raise ValueError("the hours end before they start")
            zone = parts[2] if len(parts) == 3 else "Europe/Oslo"
            ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise CentralError(f"service hours {text!r}: {exc}") from None
        return cls(days, start, end, zone)

    def is_open(self, now: datetime) -> bool:
        """Whether the service is staffed at `now` (an aware time)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime) -> datetime:
        """When the service next opens after `now` (local time of the tenant)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        for ahead in range(8):
            day = (local + timedelta(days=ahead)).date()
            opening = datetime.combine(day, self.start, tzinfo=ZoneInfo(self.timezone))
            if day.weekday() in self.days and opening > local:
                return opening
        return local  # pragma: no cover - days is never empty

    def describe(self) -> str:
        days = sorted(self.days)
        span = DAYS[days[0]] if len(days) == 1 else f"{DAYS[days[0]]}-{DAYS[days[-1]]}"
        return f"{span} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


@dataclass(frozen=True)
class TenantHours:
    """Service hours of each tenant, with a default for tenants not named."""

    default: ServiceHours = field(default_factory=ServiceHours)
    tenants: dict[str, ServiceHours] = field(default_factory=dict)

    def of(self, tenant: str) -> ServiceHours:
        return self.tenants.get(tenant, self.default)

    @classmethod
    def load(cls, path: Path | None, default: str = DEFAULT) -> TenantHours:
        """From a TOML file (`[tenants.NAME] hours = "..."`), or just the default."""
        base = ServiceHours.parse(default)
        if path is None:
            return cls(base)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CentralError(f"{path}: {exc}") from None
        tenants = {name: ServiceHours.parse(str(v.get("hours", default)))
                   for name, v in data.get("tenants", {}).items() if isinstance(v, dict)}
        return cls(base, tenants)
