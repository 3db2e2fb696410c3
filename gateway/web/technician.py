"""The technician's page as data: devices, outbox, broker, plan in force, faults, what is nearby. It
asks the gateway through its interfaces (`GatewayPort`) only."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from gateway.ble import Nearby
from gateway.web.live import LiveState
from gateway.web.ports import GatewayPort
from gateway.web.texts import KIND_NAMES, ZONE_WORDS, pick, ui
from zoning import Language


@dataclass
class ScanState:
    at: datetime | None = None
    note: str = ""
    heard: list[Nearby] = field(default_factory=list)  # the health devices the last pairing scan heard


class DeviceView(BaseModel):
    address: str
    kind: str
    model: str | None
    serial: str | None
    last_seen: datetime | None
    battery: int | None
    pairing: str
    clock_offset_s: float | None
    last_reading: datetime | None
    last_zone: str | None


class NearbyView(BaseModel):
    address: str
    what: str


class ServiceView(BaseModel):
    devices: list[DeviceView]
    outbox_depth: int
    oldest_unsent_s: float | None
    used_percent: int
    quarantined: int
    held_in_memory: int
    broker_connected: bool
    last_ack: datetime | None
    plan: str
    plan_version: int
    plan_signers: list[str]
    enrolled: str
    faults: list[str]
    nearby: list[NearbyView]
    nearby_note: str
    last_scan: datetime | None
    counts: dict[str, int]


def nearby(gw: GatewayPort) -> tuple[list[NearbyView], str]:
    """What is known about devices nearby, and a note on where that comes from: the addresses heard that
    are not provisioned (by the pipeline and the device source), then the devices the source itself lists
    (a simulated home lists the devices it simulates)."""
    source = gw.source
    heard: Counter[str] = Counter(gw.pipeline.unprovisioned)
    heard.update(source.unprovisioned_heard())
    found = [NearbyView(address=a, what=f"not provisioned, heard {n} time(s)") for a, n in heard.most_common(20)]
    listed = source.listed_devices()
    if listed:
        found += [NearbyView(address=a, what=w) for a, w in listed]
        return found, "the device source reports these devices"
    return found, "the device source listens all the time; these are the devices it heard that are not provisioned"


async def service_view(gw: GatewayPort, live: LiveState, scan: ScanState) -> ServiceView:
    facts = await asyncio.to_thread(gw.service_facts)
    status = {d.id: d for d in facts.devices}
    devices = []
    for d in gw.settings.devices:
        st = status.get(d.serial or d.address) or status.get(d.address)
        offset = gw.pipeline.clock_offsets.get(d.address)
        last = live.devices.get(d.address)
        devices.append(DeviceView(
            address=d.address, kind=d.kind.value, model=d.model, serial=d.serial,
            last_seen=st.last_seen if st else None, battery=st.battery if st else None,
            pairing=PAIRING_LOST if st and st.needs_pairing else (
                PAIRING_OK if st and st.last_seen else PAIRING_UNSEEN),
            clock_offset_s=None if offset is None else round(offset.total_seconds(), 1),
            last_reading=last.at if last else None, last_zone=last.zone.value if last else None))
    plan = gw.pipeline.plan
    found, note = nearby(gw)
    found = [NearbyView(address=n.address, what=f"{n.kind} {n.name or '(no name)'}, {n.rssi} dBm"
                        + (f" ({n.profile})" if n.profile else "")) for n in scan.heard] + found
    return ServiceView(
        devices=devices, outbox_depth=facts.outbox_depth, oldest_unsent_s=facts.oldest_unsent_s,
        used_percent=facts.used_percent, quarantined=facts.quarantined, held_in_memory=facts.held,
        broker_connected=gw.broker_connected, last_ack=gw.last_ack_at, plan=plan.id, plan_version=plan.version,
        plan_signers=[], enrolled=plan.enrolled.isoformat(),
        faults=facts.faults, nearby=found, nearby_note=scan.note or note,
        last_scan=scan.at, counts=dict(gw.pipeline.counts))


# The API's words for a device's pairing (stable: clients read them), and the page's words for each.
PAIRING_OK, PAIRING_LOST, PAIRING_UNSEEN = "ok", "lost: put it in pairing mode", "not seen yet"
_PAIRING_TEXT = {PAIRING_OK: "pairing_ok", PAIRING_LOST: "pairing_lost", PAIRING_UNSEEN: "pairing_unseen"}


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return str(timedelta(seconds=round(seconds)))


def _local(when: datetime | None, tz: ZoneInfo) -> str:
    return "—" if when is None else f"{when.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"  # the zone said: CET or CEST


def service_view_text(v: ServiceView, language: Language, tz: ZoneInfo) -> dict[str, Any]:
    """The technician page is in English terms where the technician's tools are (device models, MQTT);
    the few words around them follow the session's language."""
    return {
        "v": v,
        "devices": [{
            "d": d, "kind": pick(KIND_NAMES.get(d.kind, (d.kind, d.kind)), language),
            "last_seen": _local(d.last_seen, tz), "battery": "—" if d.battery is None else f"{d.battery} %",
            "low_battery": d.battery is not None and d.battery < 20,
            "pairing": ui(_PAIRING_TEXT[d.pairing], language),
            "clock": "—" if d.clock_offset_s is None else f"{d.clock_offset_s:+.1f} s",
            "last_reading": _local(d.last_reading, tz),
            "last_zone": pick(ZONE_WORDS[d.last_zone], language) if d.last_zone else "—",
        } for d in v.devices],
        "oldest": _ago(v.oldest_unsent_s),
        "last_ack": _local(v.last_ack, tz),
        "last_scan": _local(v.last_scan, tz),
        "zone": str(tz),
    }

