"""`kit pair`: scan, list the health devices nearby, pair the chosen ones, and add them to the kit.

A chosen device is refused — and nothing is written, no bond left behind — when it advertises no
health service, when its signal is too weak to be in this room (a neighbour's), when its serial is not
on the kit's packing list (`--serial`), or when a shared scale's user slot is not given. Passkeys go to
the BlueZ pairing agent (gateway/ble), which answers BlueZ only for the devices chosen here.

The radio is the configured device source's (`pairing_radio_for`): BlueZ with `device_source = "bluez"`,
the simulated home's own radio with `"simulated-home"` (no BlueZ, no D-Bus). The scan is the one the
technician page's "Start a pairing scan" runs (gateway.ble.pairing_scan).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bleak.exc import BleakError

from drivers import quirks_for
from gateway.ble import BleBackends, BluezRadio, PairingRadio, backends_of
from gateway.kit import config_file
from gateway.kit.radio import DeviceFacts, Nearby, forget_bond, read_device_facts, scan
from gateway.settings import ConfigError, Settings, load_settings

Platform = Callable[[dict[str, int | None]], Awaitable[Any]]  # registers the pairing agent (connect_bluez)
Ask = Callable[[str], str]
MIN_RSSI = -80  # dBm; a device in the same room as the box is far above it


class PairError(ConfigError):
    """Pairing refused; the configuration is unchanged and no bond was left."""


@dataclass
class PairRequest:
    addresses: list[str] = field(default_factory=list)  # empty: ask which
    passkeys: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)  # shared scale address -> the patient's slot
    serials: set[str] = field(default_factory=set)  # the kit's packing list; empty: not checked
    min_rssi: int = MIN_RSSI
    scan_s: float = 10.0


@dataclass
class Paired:
    nearby: Nearby
    facts: DeviceFacts | None
    user: int | None
    passkey: int | None


def health_table(nearby: list[Nearby]) -> list[str]:
    health = [n for n in nearby if n.kind is not None]
    lines = [f"{i:>2}. {n.kind:<17} {n.name or '(no name)':<22} {n.address}  {n.rssi:>4} dBm"
             + (f"  ({n.profile})" if n.profile else "") for i, n in enumerate(health, 1)]
    others = len(nearby) - len(health)
    if others:
        lines.append(f"    and {others} other device(s) that are not health devices (not listed, cannot be paired)")
    return lines or ["no health device heard: wake the devices (take a measurement) and scan again"]


def _choose(nearby: list[Nearby], request: PairRequest, ask: Ask | None) -> list[str]:
    if request.addresses:
        return [a.upper() for a in request.addresses]
    if ask is None:
        raise PairError("name the devices to pair (--device ADDRESS)")
    health = [n for n in nearby if n.kind is not None]
    answer = ask("pair which? numbers or addresses, comma separated: ")
    chosen = []
    for part in (p.strip() for p in answer.split(",") if p.strip()):
        if part.isdigit() and 1 <= int(part) <= len(health):
            chosen.append(health[int(part) - 1].address)
        else:
            chosen.append(part.upper())
    return chosen


def refusals(chosen: list[str], nearby: Mapping[str, Nearby], min_rssi: int) -> list[str]:
    """Why each chosen device may not be paired (empty: all may)."""
    problems = []
    for address in chosen:
        found = nearby.get(address)
        if found is None:
            problems.append(f"{address} was not heard: wake it (take a measurement, or put it in pairing mode) "
                            "and run pair again")
        elif found.kind is None:
            problems.append(f"{address} ({found.name or 'no name'}) is not a health device (it advertises no health "
                            "service): refused")
        elif found.rssi < min_rssi:
            problems.append(f"{address} ({found.name or 'no name'}) is heard at {found.rssi} dBm, too weak to be in "
                            "this room: a neighbour's? Bring the kit's device next to the box; refused")
    return problems


async def pairing_radio_for(settings: Settings) -> PairingRadio:
    """The radio the configured device source pairs through: BlueZ, or the source's own (found by entry
    point: the gateway never imports the simulators). `PairError` when the source has none."""
    name = settings.device_source
    if name == "bluez":
        return BluezRadio()
    from gateway.service import open_device_source

    source = open_device_source(name)
    radio: PairingRadio | None = None
    if source.scans_on_request:
        try:
            radio = await source.pairing_radio()
        except ImportError as exc:
            raise PairError(f"device_source = {name}: its radio cannot load ({exc}): pip install "
                            "'dho-gateway[sim]'; nothing paired") from None
    if radio is None:
        raise PairError(f"device_source = {name} has no radio to pair devices through; nothing paired")
    return radio


async def pair_with_source(config: Path, request: PairRequest, *, ask: Ask | None = None,
                           out: Callable[[str], None] = print) -> list[Paired]:
    """`kit pair`: `pair_devices` through the radio of the device source `config` names."""
    radio = await pairing_radio_for(load_settings(config))
    return await pair_devices(config, request, backends=backends_of(radio), platform=radio.answer_pairing, ask=ask,
                              out=out)


async def pair_devices(config: Path, request: PairRequest, *, backends: BleBackends | None = None,
                       platform: Platform | None = None, ask: Ask | None = None,
                       out: Callable[[str], None] = print) -> list[Paired]:
    """Scan, pair the chosen health devices and add them to the configuration file `config`.

    Raises `PairError` (one line for the technician) when a chosen device is refused or pairing fails;
    then the configuration is unchanged and no bond made here is left behind. Devices this kit already
    has are kept as they are. Returns the devices added, in the order chosen.
    """
    settings = load_settings(config)
    data = config_file.read(config)
    known = {d.address for d in settings.devices}
    nearby, chosen = await _scan_and_choose(known, request, backends, ask, out)
    passkeys = _passkeys(chosen, nearby, request, ask)
    if platform is not None:
        try:
            await platform({**{d.address: d.passkey for d in settings.devices}, **passkeys})
        except Exception as exc:  # the pairing agent could not be registered with BlueZ
            raise PairError(f"cannot register the pairing agent with BlueZ: {exc}; nothing paired") from None
    paired: list[Paired] = []
    try:
        for address in chosen:
            await _pair_one(nearby[address], passkeys[address], request, paired, backends=backends, ask=ask,
                            tz=settings.gateway.timezone, out=out)
    except BaseException:
        for p in paired:  # nothing half-done: no bond stays with a device that was not added
            await forget_bond(p.nearby.address, backends)
        raise
    _add_to_config(config, data, paired, out)
    return paired


async def _scan_and_choose(known: set[str], request: PairRequest, backends: BleBackends | None, ask: Ask | None,
                           out: Callable[[str], None]) -> tuple[dict[str, Nearby], list[str]]:
    """Scan, show the health devices heard, and return them by address with the new ones chosen.

    Raises `PairError` when the scan fails or a chosen device is refused (`refusals`).
    """
    try:
        found = await scan(backends, request.scan_s)
    except Exception as exc:  # no adapter, BlueZ not running, no system bus: one line, nothing changed
        raise PairError(f"cannot scan: {exc or type(exc).__name__}: is Bluetooth on (bluetoothctl show)?") from None
    for line in health_table(found):
        out(line)
    nearby = {n.address: n for n in found}
    chosen: list[str] = []
    for address in _choose(found, request, ask):
        if address in known:
            out(f"{address}: already paired with this kit; kept as it is")
        elif address not in chosen:
            chosen.append(address)
    problems = refusals(chosen, nearby, request.min_rssi)
    if problems:
        raise PairError("; ".join(problems) + "; nothing paired")
    return nearby, chosen


def _passkeys(chosen: list[str], nearby: Mapping[str, Nearby], request: PairRequest,
              ask: Ask | None) -> dict[str, int | None]:
    """The passkey of each chosen device: given on the command line, typed when asked, or None (none shown)."""
    passkeys: dict[str, int | None] = {}
    for address in chosen:
        n = nearby[address]
        key = request.passkeys.get(address)
        if key is None and ask is not None and quirks_for(n.kind or "", n.profile).requires_pairing:
            typed = ask(f"passkey for {address} ({n.name}), Enter if it shows none: ").strip()
            key = int(typed) if typed.isdigit() else None
        passkeys[address] = key
    return passkeys


async def _pair_one(n: Nearby, passkey: int | None, request: PairRequest, paired: list[Paired], *,
                    backends: BleBackends | None, ask: Ask | None, tz: str, out: Callable[[str], None]) -> None:
    """Connect (and pair, with a passkey), read the device's facts and append it to `paired`.

    It is appended before connecting, so that its bond is forgotten too if anything fails. Raises
    `PairError` when pairing fails, its serial is not on the packing list, or a shared scale's slot is
    not known. A device that only advertises its values is appended without connecting.
    """
    address = n.address
    assert n.kind is not None
    if n.advertised_only:
        paired.append(Paired(n, None, None, None))
        return
    out(f"{address}: connecting{' and pairing' if passkey is not None else ''} ...")
    paired.append(Paired(n, None, None, passkey))  # its bond goes too if anything fails
    try:
        facts = await read_device_facts(address, n.kind, n.profile, backends, tz, set_clock=True,
                                        pair=passkey is not None)
    except (BleakError, TimeoutError, OSError) as exc:
        hint = " (the wrong passkey?)" if passkey is not None else ""
        raise PairError(f"{address}: pairing failed{hint}: {exc}; nothing paired") from None
    paired[-1].facts = facts
    if request.serials and facts.serial not in request.serials:
        raise PairError(f"{address} has serial {facts.serial!r}, not one of this kit's "
                        f"({', '.join(sorted(request.serials))}): a neighbour's? refused")
    if facts.multiple_users:
        paired[-1].user = _user_slot(address, request, ask)


def _user_slot(address: str, request: PairRequest, ask: Ask | None) -> int:
    """The patient's user slot on a shared scale: given (`--user`) or typed; `PairError` when neither."""
    user = request.users.get(address)
    if user is None and ask is not None:
        typed = ask(f"{address} is a shared scale: which user slot is the patient's? ").strip()
        user = int(typed) if typed.isdigit() else None
    if user is None:
        raise PairError(f"{address} is a shared scale: say which user slot is the patient's "
                        f"(--user {address}=N); refused")
    return user


def _add_to_config(config: Path, data: dict[str, Any], paired: list[Paired], out: Callable[[str], None]) -> None:
    """Append the paired devices to the configuration `data`, say what each is, and write `config` (if any)."""
    devices = list(data.get("devices", []))
    for p in paired:
        entry: dict[str, Any] = {"address": p.nearby.address, "kind": p.nearby.kind}
        if p.facts is not None:
            entry.update({"model": p.facts.model, "serial": p.facts.serial})
        entry.update({"profile": p.nearby.profile, "user": p.user, "passkey": p.passkey})
        devices.append({k: v for k, v in entry.items() if v is not None})
        facts = p.facts
        detail = ("advertises its values" if facts is None else
                  f"model {facts.model}, serial {facts.serial}, battery {facts.battery} %, clock "
                  f"{'set' if facts.clock_set else 'not settable'}"
                  + (f" (was {facts.clock_offset_s:+.0f} s off)" if facts.clock_offset_s is not None else ""))
        out(f"{p.nearby.address}: paired, {p.nearby.kind}, {detail}" + (f", user slot {p.user}" if p.user else ""))
    data["devices"] = devices
    if paired:
        config_file.write(config, data)
