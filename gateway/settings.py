"""Gateway configuration: one TOML file, validated; `DHO_SECTION__KEY` environment variables override it."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from drivers import MeasurementKind, named_quirks
from gateway.errors import GatewayError
from sync.connection import BrokerSettings

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
        description="a shipped profile name, or the path of a profile TOML file",
    )
    enrolled: date | None = Field(
        default=None, description="enrolment date (the 14 daily days count from it); default: the first reading"
    )
    language: Literal["nb", "en"] = Field(default="nb", description="language of the advice shown to the patient")


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
        # The environment wins over the file (init values carry the file's contents).
        return (env_settings, init_settings)


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


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
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None


def build_settings(data: dict[str, Any]) -> Settings:
    """Settings from a dict (the demo's built-in defaults), with the same error shape as a file."""
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"settings: {describe_validation_error(exc)}") from None
