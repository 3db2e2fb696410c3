"""`kit reissue`: make a returned kit ready for the next patient, with nothing of the last one left.

Steps, in this order, each safe to run again:
1. **wipe**: crypto-erase (data keys, then the KEK, then the outbox files: gateway/storage), then every
   other file in data_dir, and the configuration backups that name the old patient;
2. **bonds**: the BlueZ bonds with the old patient's devices are removed (only BlueZ keeps bonds: with
   another device source, the simulated home, there are none and the step says so), and the devices leave
   the configuration (`kit pair` adds them again for the new patient, clocks and user slot included);
3. **identity**: a new patient pseudonym and enrolment date in the configuration;
4. **KEK**: a new outbox key (file or systemd credential).

A journal beside the configuration (`<config>.reissue`, written atomically before step 1) holds the new
pseudonym and the steps done. A power cut anywhere leaves it behind; running `reissue` again finishes
from there with the same new pseudonym. The new id is written only after the wipe: the kit is never
the old patient's data under a new patient's id.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from gateway.ble import BleBackends
from gateway.kit import config_file
from gateway.kit.provision import create_kek, new_pseudonym, write_registration
from gateway.kit.radio import forget_bond
from gateway.settings import ConfigError, load_settings
from gateway.storage import LOCK_NAME, crypto_erase, data_dir_lock, key_source_for, overwrite_and_remove

STEPS = ("wipe", "bonds", "identity", "kek")


class ReissueError(ConfigError):
    """Reissue refused before it began; nothing changed."""


@dataclass
class Journal:
    path: Path
    old_patient: str
    new_patient: str
    old_devices: list[str]
    started: str
    done: list[str] = field(default_factory=list)

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({k: v for k, v in self.__dict__.items() if k != "path"}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        try:
            return cls(path, **json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ReissueError(f"{path}: the reissue journal is damaged ({exc}); look at it, then remove it "
                               "and run reissue again") from None


@dataclass
class Reissued:
    old_patient: str
    new_patient: str
    resumed: bool
    destroyed: list[Path]
    bonds_removed: list[str]


def journal_path(config: Path) -> Path:
    return config.with_name(config.name + ".reissue")


def _wipe(config: Path) -> list[Path]:
    settings = load_settings(config)
    g = settings.gateway
    destroyed = crypto_erase(g.outbox_path, key_source_for(g))
    if g.data_dir.exists():
        # Whatever else the gateway kept for this patient (plans, queues, logs of its own): overwritten, removed.
        for path in sorted(g.data_dir.rglob("*"), reverse=True):
            if path == g.data_dir / LOCK_NAME:
                continue  # held by this reissue; it holds a process id, nothing of the patient's
            if path.is_file() or path.is_symlink():
                overwrite_and_remove(path) if path.is_file() else path.unlink()
                destroyed.append(path)
            elif path.is_dir():
                path.rmdir()
    for backup in config.parent.glob(config.name + ".bak-*"):
        overwrite_and_remove(backup)  # earlier configurations name the old patient and devices
        destroyed.append(backup)
    return destroyed


async def _bonds(config: Path, journal: Journal, unpair: Callable[[str, BleBackends | None], Awaitable[None]],
                 backends: BleBackends | None, out: Callable[[str], None]) -> list[str]:
    """Step 2: the old devices' BlueZ bonds removed, and the devices taken out of the configuration.

    Only BlueZ keeps bonds: with another device source (the simulated home) there are none to remove, and
    the step says so and goes on. Returns the addresses whose bonds were removed.
    """
    source = load_settings(config).device_source
    removed: list[str] = []
    if source == "bluez":
        for address in journal.old_devices:
            await unpair(address, backends)
            removed.append(address)
    data = config_file.read(config)
    data["devices"] = []
    config_file.write(config, data)
    for backup in config.parent.glob(config.name + ".bak-*"):
        overwrite_and_remove(backup)
    if source == "bluez":
        out(f"bonds: removed for {len(removed)} device(s); pair the devices again for the new patient")
    else:
        out(f"bonds: device_source = {source} keeps no BlueZ bonds: none to remove; {len(journal.old_devices)} "
            "device(s) taken out of the configuration: pair them again for the new patient")
    return removed


def service_running(unit: str = "dho-gateway") -> bool:
    """Whether systemd runs the gateway now (False where systemd is not the init system)."""
    tool = shutil.which("systemctl")
    if tool is None or not Path("/run/systemd/system").exists():
        return False
    result = subprocess.run([tool, "is-active", "--quiet", unit], check=False, timeout=30)  # noqa: S603
    return result.returncode == 0


def _begin(config: Path, patient: str | None, running: Callable[[], bool]) -> Journal:
    """Checks before anything changes, then the journal (with the new pseudonym) on disk."""
    if running():
        # It holds the old key and patient in memory and would keep writing readings under them.
        raise ReissueError("the gateway service is running: `systemctl stop dho-gateway` first; nothing changed")
    settings = load_settings(config)
    if config.resolve().is_relative_to(settings.gateway.data_dir.resolve()):
        raise ReissueError(f"{config} is inside data_dir {settings.gateway.data_dir}, which a reissue empties: "
                           "keep the configuration outside it (/etc/dho-gateway); nothing changed")
    new = patient or new_pseudonym()
    if new == settings.gateway.patient:
        raise ReissueError(f"the new patient pseudonym must differ from the old one ({new}); nothing changed")
    journal = Journal(journal_path(config), settings.gateway.patient, new, [d.address for d in settings.devices],
                      datetime.now(UTC).isoformat())
    journal.save()
    return journal


async def reissue(config: Path, *, patient: str | None = None, backends: BleBackends | None = None,
                  with_key: str = "auto", unpair: Callable[[str, BleBackends | None], Awaitable[None]] = forget_bond,
                  running: Callable[[], bool] = service_running, out: Callable[[str], None] = print) -> Reissued:
    # The running gateway holds the data directory; a reissue beside it would delete files it keeps writing.
    with data_dir_lock(load_settings(config).gateway.data_dir, "a reissue"):
        path = journal_path(config)
        journal = Journal.load(path)
        resumed = journal is not None
        if journal is None:
            journal = _begin(config, patient, running)
        else:
            out(f"resuming the reissue begun {journal.started} (done: {', '.join(journal.done) or 'nothing'})")
        destroyed: list[Path] = []
        removed: list[str] = []
        for step in STEPS:
            if step in journal.done:
                continue
            if step == "wipe":
                destroyed = _wipe(config)
                out(f"wipe: {len(destroyed)} file(s) destroyed; no key able to open the old readings remains")
            elif step == "bonds":
                removed = await _bonds(config, journal, unpair, backends, out)
            elif step == "identity":
                data = config_file.read(config)
                data["gateway"] = {**data["gateway"], "patient": journal.new_patient}
                data["zoning"] = {**data.get("zoning", {}), "enrolled": date.today()}
                config_file.write(config, data)
                for backup in config.parent.glob(config.name + ".bak-*"):
                    overwrite_and_remove(backup)
                registration = write_registration(config, reissue=True)
                out(f"identity: new patient pseudonym {journal.new_patient}; the central service must be told: "
                    f"dho-central gateways register --db URL {registration}")
            elif step == "kek":
                g = load_settings(config).gateway
                if not g.outbox_path.exists():
                    # A KEK left from an interrupted run of this step is fine to replace: nothing is sealed with it.
                    key_source_for(g).destroy()
                create_kek(g.key_source, g.key_path, g.key_credential, g.key_credential_store, with_key)
                out("KEK: a new outbox key")
            journal.done.append(step)
            journal.save()
        path.unlink()
        return Reissued(journal.old_patient, journal.new_patient, resumed, destroyed, removed)
