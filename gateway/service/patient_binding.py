"""The stored data belongs to one patient: a kit handed to the next patient must be wiped first.

The outbox holds the patient's history (the trends and the schedule are judged against it) and readings
not yet delivered. Beside it, `patient.binding` names, as a hash, the pseudonym they belong to. Start-up
with another pseudonym beside an existing outbox is refused until the kit is wiped: the new patient
would otherwise be judged against the previous patient's history (75 kg red against 60 kg), and the
previous patient's sealed data would stay in a stranger's home. Refusing (not starting empty) keeps
the hand-over step visible while the technician is still there, and deletes nothing by itself: the
previous patient's undelivered readings can still be sent by starting with the old pseudonym.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from gateway.settings import ConfigError

log = logging.getLogger(__name__)

BINDING_FILE = "patient.binding"


def _fingerprint(patient: str) -> str:
    return hashlib.sha256(f"dho-patient-binding/v1|{patient}".encode()).hexdigest()


def check_patient_binding(data_dir: Path, outbox: Path, patient: str) -> None:
    """Refuse (ConfigError) an outbox that holds another patient's data; bind a new or wiped one."""
    binding = data_dir / BINDING_FILE
    mine = _fingerprint(patient)
    try:
        bound = binding.read_text(encoding="ascii").strip() if outbox.exists() else None
    except FileNotFoundError:
        bound = None  # an outbox from before bindings existed: it is this patient's, as configured
    except OSError as exc:
        raise ConfigError(f"{binding}: cannot be read: {exc.strerror}") from None
    if bound is not None and bound != mine:
        raise ConfigError(
            f"{outbox}: holds another patient's readings and history, and gateway.patient has changed: "
            "a kit handed to a new patient must be wiped first (`dho-gateway wipe --config FILE --yes`, "
            "after the previous patient's readings are delivered)")
    if bound is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = binding.with_suffix(".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only, like all of data_dir
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(mine + "\n")
            os.replace(temporary, binding)
        except OSError as exc:
            raise ConfigError(f"{binding}: cannot be written: {exc.strerror}") from None
        log.info("stored data bound to the configured patient")
