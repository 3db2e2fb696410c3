"""The `dho-gateway` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gateway import __version__
from gateway.errors import GatewayError
from gateway.service.health import stuck_fault
from gateway.settings import ConfigError, Settings, check_data_dir, load_settings
from gateway.storage import KeyFileError, OutboxUnavailable, SealedOutbox, data_dir_lock

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dho-gateway",
        description="Home gateway for digital home follow-up: reads BLE health devices, zones every "
        "reading green/yellow/red, keeps it sealed on disk, and syncs it over MQTT.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run the whole loop on this machine with simulated devices",
        description="Simulated blood pressure monitor -> zoning -> sealed outbox -> MQTT -> reference "
        "central receiver -> ack. Uses an embedded broker unless --broker names one. One line is "
        "printed per acknowledged reading.",
    )
    demo.add_argument("--broker", type=_broker, metavar="HOST:PORT", help="use this MQTT broker (plain TCP)")
    demo.add_argument("--mqtt-protocol", choices=["5", "3.1.1"], default="5",
                      help="MQTT version for --broker (default 5)")
    demo.add_argument("--readings", type=int, metavar="N", help="stop after N acknowledged readings")
    demo.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                      help="time between simulated measurements (default 1)")
    demo.add_argument("--data-dir", type=Path, metavar="DIR", help="keep the outbox, key and central store here "
                      "(default: a temporary directory removed on exit)")

    run = commands.add_parser("run", help="run the gateway service", description="Run the gateway with a "
                              "configuration file (see config/gateway.example.toml).")
    run.add_argument("--config", type=Path, required=True, metavar="PATH", help="gateway TOML file")

    status = commands.add_parser(
        "status", help="show the outbox and configuration state",
        description="Readings waiting for the central service's ack, the oldest one's age, quarantined "
        "records, and the provisioned devices. Reads and authenticates the whole outbox file: any damage "
        "is a FAULT line naming `outbox salvage` (exit 1). Safe while the service runs.",
    )
    status.add_argument("--config", type=Path, required=True, metavar="PATH", help="gateway TOML file")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    wipe = commands.add_parser(
        "wipe", help="crypto-erase this kit before it is reissued",
        description="Destroy the outbox's key material, then its files. Readings not yet acknowledged by "
        "the central service are lost for good: check `status` first. Stop the service before wiping.",
    )
    wipe.add_argument("--config", type=Path, required=True, metavar="PATH", help="gateway TOML file")
    wipe.add_argument("--yes", action="store_true", help="really wipe (without it, only say what would go)")

    outbox = commands.add_parser("outbox", help="repair the sealed outbox",
                                 description="Repair commands for the sealed outbox (README: Operations).")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    salvage = outbox_commands.add_parser(
        "salvage", help="copy every readable record of a damaged outbox into a new one",
        description="Stop the gateway first. Reads every page of the outbox file and its WAL, keeps each "
        "record that authenticates under its key, renames the damaged files (nothing is deleted) and "
        "writes a new outbox with the records found.",
    )
    salvage.add_argument("--config", type=Path, required=True, metavar="PATH", help="gateway TOML file")

    simulate = commands.add_parser(
        "simulate", help="run simulated BLE devices through the gateway (technicians, CI)",
        description="Simulated Bluetooth LE devices (bumble, in process, no hardware) measured through the "
        "gateway's real path: bleak's API, the sessions, zoning and a throw-away sealed outbox. Nothing is "
        "sent anywhere. `list` shows the devices and scenarios; `scenario NAME` plays days of readings and "
        "checks each zone against the scenario's expectation (exit 1 on a mismatch); `device KIND` runs one "
        "device with ordinary readings.",
    )
    simulate.add_argument("what", choices=["list", "scenario", "device"])
    simulate.add_argument("name", nargs="?", help="scenario name, or device kind")
    simulate.add_argument("--readings", type=int, default=3, help="with `device`: how many (default 3)")
    simulate.add_argument("--language", choices=["nb", "en"], default="en", help="advice language")

    commands.add_parser("version", help="print the version")

    from gateway.kit import add_commands as add_kit_commands

    add_kit_commands(commands)

    schemas = commands.add_parser("schemas", help="write the wire protocol's JSON Schemas",
                                  description="Generate JSON Schemas from the wire models.")
    schemas.add_argument("--out", type=Path, default=Path("docs/schemas"), metavar="DIR")
    return parser


def _demo(args: argparse.Namespace) -> int:
    async def go(data_dir: Path) -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # a clean stop, as Ctrl-C
        try:
            result = await run_demo(
                data_dir=data_dir, broker=args.broker, protocol=args.mqtt_protocol,
                readings=args.readings, interval_s=args.interval,
            )
        except asyncio.CancelledError:
            print("dho-gateway: stopped", file=sys.stderr)
            return
        first = f"{result.first_ack_s:.2f} s" if result.first_ack_s is not None else "never"
        print(f"demo: {result.acknowledged} reading(s) acknowledged; first acknowledged {first} after start")

    from gateway.demo import run_demo  # demo-only imports stay out of `run` and `status`

    if args.data_dir:
        if args.data_dir.exists() and not args.data_dir.is_dir():
            raise ConfigError(f"--data-dir {args.data_dir}: is a file, not a directory")
        try:
            args.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"--data-dir {args.data_dir}: cannot create it: {exc.strerror or exc}") from None
        asyncio.run(go(args.data_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="dho-demo-") as tmp:
            asyncio.run(go(Path(tmp)))
    return 0


def _run(settings: Settings) -> int:
    from gateway.service.device_sources import DeviceSource, open_device_source
    from gateway.service.runtime import Gateway

    source: DeviceSource
    if settings.device_source == "bluez":
        from gateway.ble import BleDeviceSource, connect_bluez

        source = BleDeviceSource(settings.devices, timezone=settings.gateway.timezone, platform=connect_bluez)
    else:
        source = open_device_source(settings.device_source)
    gateway = Gateway(settings, source)

    async def serve() -> None:
        # systemd stops services with SIGTERM: end as cleanly as Ctrl-C does.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await gateway.run()

    try:
        with data_dir_lock(settings.gateway.data_dir, "starting another `run`"):
            asyncio.run(serve())
    except BaseExceptionGroup as group:
        # A storage or key problem found while running (a damaged outbox): the same one line as at start-up.
        found: BaseException | None = group.subgroup(GatewayError)
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        if found is None:
            raise
        raise found from None
    print("dho-gateway: stopped", file=sys.stderr)
    return 0


def _status(settings: Settings, as_json: bool) -> int:
    from gateway.storage import key_source_for

    g = settings.gateway
    kek = key_source_for(g)
    if not kek.present():
        if g.outbox_path.exists():
            kek.load(create=False)  # an outbox without its key: raises, saying the key is missing
        raise KeyFileError(f"no {kek.describe()}: the gateway has not run yet with this configuration")
    info: dict[str, object] = {"gateway": g.id, "tenant": g.tenant}
    outbox_faults = _outbox_status(settings, kek.load(create=False), info)
    info.update({
        "devices": [{"address": d.address, "kind": d.kind.value, "model": d.model} for d in settings.devices],
        "broker": f"{settings.mqtt.host}:{settings.mqtt.port}",
        "tls": not settings.mqtt.insecure_dev,
        "profile": settings.zoning.profile,
    })
    faults = outbox_faults + _start_up_faults(settings) + _refusal_faults(settings)
    if as_json:
        info["faults"] = faults
        print(json.dumps(info, indent=2))
        return 1 if faults else 0
    _print_status(settings, info)
    for fault in faults:
        print(f"FAULT: {fault}")
    return 1 if faults else 0


def _outbox_status(settings: Settings, kek: bytes, info: dict[str, object]) -> list[str]:
    """The outbox's part of the status into `info`, and its faults: every damage the whole-file check
    finds (issue 19.4), or the one line saying why the file cannot be opened at all. Never raises for
    damage: a damaged outbox is a FAULT line, and `outbox salvage` the fix."""
    from gateway.storage import OutboxDamaged

    info.update({"outbox_depth": None, "oldest_unacknowledged_s": None, "quarantined": None, "plan_version": None})
    try:
        outbox = SealedOutbox(settings.gateway.outbox_path, kek)
    except OutboxDamaged as exc:
        return [f"{exc}: the service will not start"]
    faults: list[str] = []
    try:
        age = outbox.oldest_pending_age_s()
        info.update({
            "outbox_depth": outbox.depth() if outbox.depth_is_complete() else None,
            "oldest_unacknowledged_s": None if age is None else round(age),
            "quarantined": outbox.quarantined(),
            "plan_version": _kept_plan_version(outbox),
        })
        depth = info["outbox_depth"]
        stuck = stuck_fault(depth if isinstance(depth, int) else 0, age)
        if stuck is not None:
            faults.append(stuck)
    except OutboxUnavailable as exc:
        faults.append(str(exc))
    finally:
        try:
            faults += outbox.check()
        finally:
            outbox.close()
    return list(dict.fromkeys(faults))


def _print_status(settings: Settings, info: dict[str, object]) -> None:
    print(f"gateway {info['gateway']} (tenant {info['tenant']}), version {__version__}")
    if info["quarantined"] is None:
        print("outbox: cannot be read (see FAULT)")
    elif info["outbox_depth"] is None:
        print("outbox: the readings waiting cannot all be counted (see FAULT)")
    else:
        oldest = info["oldest_unacknowledged_s"]
        print(f"outbox: {info['outbox_depth']} reading(s) waiting for the central service"
              + (f", oldest {oldest} s" if oldest is not None else ""))
    if info["quarantined"] is not None:
        print(f"quarantined records: {info['quarantined']}")
    print(f"broker: {info['broker']} ({'mutual TLS' if info['tls'] else 'NO TLS (insecure_dev)'})")
    print(f"profile: {info['profile']}" + (f", signed plan v{info['plan_version']} in force" if info["plan_version"]
                                           else " (no signed plan yet)"))
    for d in settings.devices:
        print(f"device: {d.address} {d.kind.value} {d.model or ''}".rstrip())


def _refusal_faults(settings: Settings) -> list[str]:
    """The central service's refusal the running gateway heard last (protocol 1.1), if it is in force."""
    from gateway.uplink import CENTRAL_REFUSAL_FILE, read_refusal_fault

    fault = read_refusal_fault(settings.gateway.data_dir / CENTRAL_REFUSAL_FILE)
    return [fault] if fault else []


def _start_up_faults(settings: Settings) -> list[str]:
    """What would stop `run` at start that `status` can see without starting it (issue 19.2: a kit whose
    trust store cannot be checked passed `status` with exit 0 and never started)."""
    from gateway.plans import check_provisioned_trust

    try:
        check_provisioned_trust(settings.plans, settings.gateway.tenant)
    except ConfigError as exc:
        return [f"{exc}: the service will not start"]
    return []


def _salvage(settings: Settings) -> int:
    from gateway.storage import key_source_for, salvage

    g = settings.gateway
    if not g.outbox_path.exists():
        raise KeyFileError(f"no outbox at {g.outbox_path}: nothing to salvage")
    try:
        with data_dir_lock(g.data_dir, "a salvage"):
            done = salvage(g.outbox_path, key_source_for(g).load(create=False))
    except OSError as exc:
        raise KeyFileError(f"cannot salvage {g.outbox_path}: {exc}; nothing was moved") from None
    print(f"salvaged {done.readings} reading(s) waiting for the central service, {done.events} event(s) and "
          f"{done.history} history entr{'y' if done.history == 1 else 'ies'} into a new {g.outbox_path}")
    print(f"the damaged file is kept as {done.moved_to} (remove it once the gateway runs again)")
    return 0


def _kept_plan_version(outbox: SealedOutbox) -> int | None:
    """The version of the signed plan kept on the box (what `run` judges by), or None."""
    from gateway.plans import PLAN_DOCUMENT

    kept = outbox.latest_document(PLAN_DOCUMENT)
    return None if kept is None else kept[0]


def _wipe(settings: Settings, really: bool) -> int:
    from gateway.storage import crypto_erase, key_source_for

    g = settings.gateway
    kek = key_source_for(g)
    if not really:
        print(f"would destroy the data keys in {g.outbox_path}, the {kek.describe()}, and the outbox files "
              "(with -wal, -shm); run again with --yes")
        return 0
    with data_dir_lock(g.data_dir, "a wipe"):
        destroyed = crypto_erase(g.outbox_path, kek)
    for path in destroyed:
        print(f"destroyed {path}")
    print("wiped: no key able to open this kit's readings remains")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gateway.demo import load_simulation, run_scenario

    simulation = load_simulation()
    if args.what == "list":
        print("devices:   " + ", ".join(simulation.device_kinds))
        for name in simulation.scenario_names():
            print(f"scenario:  {name:<30} {simulation.scenario(name).description}")
        return 0
    if args.name is None:
        raise ConfigError(f"simulate {args.what}: name a {'scenario' if args.what == 'scenario' else 'device kind'}")
    try:
        scenario = (simulation.scenario(args.name) if args.what == "scenario"
                    else simulation.single_device(args.name, args.readings))
    except KeyError as exc:
        raise ConfigError(f"simulate: {exc.args[0]}") from None
    print(f"{scenario.name}: {scenario.description} (profile {scenario.profile})")
    with tempfile.TemporaryDirectory(prefix="dho-simulate-") as tmp:
        result = asyncio.run(run_scenario(scenario, simulation, Path(tmp), language=args.language))
    for problem in result.mismatches:
        print(f"MISMATCH: {problem}")
    print(f"simulate: {len(result.outcomes)} reading(s) through the gateway, {len(result.mismatches)} mismatch(es)")
    return 1 if result.mismatches else 0


def _schemas(out: Path) -> int:
    from protocol import WIRE_MODELS

    out.mkdir(parents=True, exist_ok=True)
    for name, model in WIRE_MODELS.items():
        schema = model.model_json_schema(mode="serialization")
        (out / f"{name}.schema.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        print(out / f"{name}.schema.json")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO if args.command == "run" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        match args.command:
            case "version":
                print(__version__)
                return 0
            case "demo":
                return _demo(args)
            case "schemas":
                return _schemas(args.out)
            case "simulate":
                return _simulate(args)
            case "run":
                settings = load_settings(args.config)
                check_data_dir(args.config, settings.gateway, create=True)
                return _run(settings)
            case "status":
                settings = load_settings(args.config)
                check_data_dir(args.config, settings.gateway, create=False)
                return _status(settings, args.json)
            case "outbox":
                return _salvage(load_settings(args.config))
            case "wipe":
                return _wipe(load_settings(args.config), args.yes)
            case "kit":
                from gateway.kit import run as run_kit

                return run_kit(args)
    except (GatewayError, OutboxUnavailable) as exc:
        print(f"dho-gateway: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        # A folder the command cannot write or read (provisioning into /etc without root, a read-only card):
        # one line naming the path, never a traceback (-v shows it). Every step is safe to run again.
        if args.verbose:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"dho-gateway: error: {where}{exc.strerror or exc}; fix that and run the command again", file=sys.stderr)
        return EXIT_USAGE
    except EOFError:
        print("dho-gateway: error: no answer at the prompt (end of input); nothing more was changed", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dho-gateway: stopped", file=sys.stderr)
        # The service and the demo stop this way on purpose; a kit step or a wipe was broken off.
        return 0 if args.command in ("run", "demo") else EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
