"""Gateway configuration: one TOML file, validated; `DHO_SECTION__KEY` environment variables override it,
except the gateway's identity (id, tenant, patient) and what decides how a patient is judged (`[zoning]`,
`[plans]`): those come only from the file."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from drivers import MeasurementKind, named_quirks
from gateway.errors import GatewayError
from protocol import BrokerSettings

log = logging.getLogger(__name__)

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # safe inside an MQTT topic level: no / + # or spaces
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


class ConfigError(GatewayError):
    """One line a technician can act on: file, key, reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewaySection(_Section):
    id: str = Field(pattern=_ID, description="gateway id; the CN of its client certificate")
    tenant: str = Field(pattern=_ID, description="municipality or health trust")
    patient: str = Field(pattern=_ID, description="pseudonymous patient id from provisioning")
    data_dir: Path = Path("/var/lib/dho-gateway")
    key_source: Literal["file", "systemd-credential"] = Field(
        default="file", description="where the outbox key-encryption key comes from"
    )
    key_file: Path | None = Field(default=None, description="outbox key; default data_dir/outbox.key")
    key_credential: str = Field(default="dho-outbox-kek", pattern=_ID, description="systemd credential name")
    key_credential_store: Path = Field(
        default=Path("/etc/credstore.encrypted/dho-outbox-kek"),
        description="the encrypted credential the unit loads; a wipe destroys it",
    )
    timezone: str = "Europe/Oslo"
    clock_tolerance_s: float = Field(
        default=300, gt=0, description="device clocks further off than this are marked device_unsynced"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Oslo)") from None
        return value

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.sqlite3"

    @property
    def key_path(self) -> Path:
        return self.key_file or self.data_dir / "outbox.key"


class SyncSection(_Section):
    batch_size: int = Field(default=50, ge=1, le=1000)
    # Kept within Mosquitto's default max_inflight_messages (20): above it QoS>0 traffic stalls.
    window: int = Field(default=8, ge=1, le=20)
    ack_timeout_s: float = Field(default=30, gt=0)
    status_interval_s: float = Field(default=300, gt=0)
    # After the central refuses readings (protocol 1.1) they wait this long before they are sent again, doubling.
    refusal_pause_s: float = Field(default=30, gt=0)
    refusal_pause_max_s: float = Field(default=1800, gt=0)


class OutboxSection(_Section):
    max_size_mb: int = Field(
        default=256, ge=1, description="the outbox file never grows past this; what happens then: README"
    )
    alert_percent: int = Field(default=80, ge=1, le=99, description="status fault and event from this fill level")

    @property
    def max_bytes(self) -> int:
        return self.max_size_mb * 1024 * 1024


class ZoningSection(_Section):
    profile: str = Field(
        default="standard-blood-pressure",
        description="a shipped standard profile, by name (pinned by content hash); a patient's own thresholds "
        "arrive only as a signed plan",
    )

    @field_validator("profile")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if not re.match(_ID, value) or value.endswith((".toml", ".json")):
            raise ValueError(f"{value!r} is not a shipped profile's name: profiles are never read from a file "
                             "(a patient's own thresholds arrive as a signed plan)")
        return value
    enrolled: date | None = Field(
        default=None, description="enrolment date (the 14 daily days count from it); default: the first reading"
    )
    language: Literal["nb", "en"] = Field(default="nb", description="language of the advice shown to the patient")


class PlansSection(_Section):
    trust_store: Path | None = Field(
        default=None, description="the tenant's trust store as provisioned (a root-signed envelope, JSON)"
    )
    root_key: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9+/]{43}=$",
        description="the tenant's root public key (Ed25519, base64) that signs trust stores",
    )


class WebSection(_Section):
    """The patient's and the technician's pages (docs/web.md). Loopback only unless `lan = true`."""

    enabled: bool = Field(default=True, description="serve the pages from the gateway process")
    host: str = Field(default="127.0.0.1", description="address to listen on; a LAN address needs lan = true")
    port: int = Field(default=8080, ge=0, le=65535, description="0: any free port (tests)")
    lan: bool = Field(default=False, description="open the pages to the home network: every page then needs login")
    technician_password_hash: str | None = Field(
        default=None, description="scrypt hash of the technician password: python -m gateway.web.password"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names the pages answer to besides IP addresses, localhost and this box's own name "
        "(and NAME.local); any other Host header is refused (DNS rebinding)",
    )

    @model_validator(mode="after")
    def _safe_by_default(self) -> WebSection:
        from ipaddress import ip_address

        try:
            loopback = self.host == "localhost" or ip_address(self.host).is_loopback
        except ValueError:
            raise ValueError(f"host {self.host!r} is not an IP address (127.0.0.1; with lan = true 0.0.0.0)") from None
        if not loopback and not self.lan:
            raise ValueError(f"host {self.host} is not loopback: set lan = true to open the pages to the network")
        if self.lan and not self.technician_password_hash:
            raise ValueError("lan = true needs technician_password_hash: pages on the network need a login")
        if self.technician_password_hash is not None and not self.technician_password_hash.startswith("scrypt$"):
            raise ValueError("technician_password_hash is not a scrypt hash (make one: python -m gateway.web.password)")
        return self


class DeviceSection(_Section):
    address: str
    kind: MeasurementKind
    model: str | None = None
    serial: str | None = None
    profile: str | None = Field(
        default=None, description="the device's quirks by name (drivers/vendors), e.g. and-ua-651ble; not zoning"
    )
    user: int | None = Field(
        default=None, ge=0, le=254, description="the patient's user slot on a shared (multi-user) device"
    )
    passkey: int | None = Field(
        default=None, ge=0, le=999999, description="pairing passkey, for a device that asks for one"
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in named_quirks():
            raise ValueError(f"no device profile {value!r} (known: {', '.join(sorted(named_quirks()))})")
        return value

    @field_validator("address")
    @classmethod
    def _mac(cls, value: str) -> str:
        value = value.upper()
        if not _ADDRESS.match(value):
            raise ValueError(f"{value!r} is not a Bluetooth address like F0:12:34:56:78:9A")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DHO_", env_nested_delimiter="__", extra="forbid")

    gateway: GatewaySection
    mqtt: BrokerSettings
    sync: SyncSection = SyncSection()
    outbox: OutboxSection = OutboxSection()
    zoning: ZoningSection = ZoningSection()
    plans: PlansSection = PlansSection()
    web: WebSection = WebSection()
    device_source: str = Field(default="bluez", description="where measurements come from")
    devices: list[DeviceSection] = Field(default_factory=list, description="devices provisioned for the patient")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (init values carry the file's contents), except for identity
        # and FILE_ONLY sections.
        return (_Environment(settings_cls), init_settings)


# Thresholds and the keys that sign them must not change with a process's environment (issue 9.9).
FILE_ONLY = ("zoning", "plans")
# Who this box is and whose readings it takes: only from the provisioned file, never from the environment,
# where a stray or planted variable would send one patient's readings under another's name.
IDENTITY_KEYS = ("id", "tenant", "patient")


class _Environment(EnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        gateway = values.get("gateway")
        named = sorted(key for key in IDENTITY_KEYS if isinstance(gateway, dict) and key in gateway)
        if named:
            variable = f"DHO_GATEWAY__{named[0].upper()}"
            raise ConfigError(f"{variable}: the gateway's id, tenant and patient come only from the configuration "
                              "file, never from the environment; unset it")
        for section in FILE_ONLY:
            if section in values:
                log.warning("DHO_%s__* environment variables are ignored: [%s] comes only from the configuration "
                            "file", section.upper(), section)
                del values[section]
        return values


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def environment_override(*key: str | int) -> str | None:
    """The `DHO_SECTION__KEY` variable that set this key (or the whole section above it), if one did."""
    present = {name.upper(): name for name in os.environ if name.upper().startswith("DHO_")}
    for depth in range(len(key), 0, -1):
        found = present.get("DHO_" + "__".join(str(part) for part in key[:depth]).upper())
        if found is not None:
            return found
    return None


def origin(config: Path, *key: str) -> str:
    """Who to blame for a key's value: the environment variable that overrode it, else the file."""
    variable = environment_override(*key)
    return f"environment variable {variable}" if variable else str(config)


def check_data_dir(config: Path, g: GatewaySection, *, create: bool) -> None:
    """`data_dir` must be a directory this process can write; with `create`, make it (owner-only).
    Any problem is one ConfigError line naming who set it, the key, the path and the reason."""
    where = f"{origin(config, 'gateway', 'data_dir')}: gateway.data_dir"
    path = g.data_dir
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: {path} is a file, not a directory")
    if not create:
        return
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot create {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {path} is not writable by this user")


def load_settings(path: Path) -> Settings:
    """Read and validate the file; any problem becomes one ConfigError line naming file, key and reason."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        variable = environment_override(*exc.errors()[0]["loc"])
        blamed = f"environment variable {variable}" if variable else str(path)
        raise ConfigError(f"{blamed}: {describe_validation_error(exc)}") from None


def build_settings(data: dict[str, Any]) -> Settings:
    """Settings from a dict (the demo's built-in defaults), with the same error shape as a file."""
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"settings: {describe_validation_error(exc)}") from None
