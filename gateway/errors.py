"""The gateway's one error root: every problem a technician can act on is a `GatewayError`.

The command line maps that one type to one line on stderr and exit code 2. The tree (every subclass in
gateway/, kept complete by tests/test_error_tree.py):

* GatewayError                  gateway/errors.py: the message is one actionable line
  + ConfigError                 gateway/settings.py: the configuration file, the key, the reason
    - PairError                 gateway/kit/pair.py: pairing refused; configuration unchanged, no bond left
    - ProvisionError            gateway/kit/provision.py: provisioning refused; nothing changed
    - ReissueError              gateway/kit/reissue.py: reissue refused before it began; nothing changed
  + KeyFileError                gateway/storage/keys.py: the outbox key is missing or unusable
  + StoreError                  gateway/storage/connection.py: the outbox cannot be opened as it is; nothing deleted
    - OutboxDamaged             gateway/storage/connection.py: too damaged to open at all; names `outbox salvage`
  + DataDirBusy                 gateway/storage/lock.py: another process holds the data directory; nothing changed
  + BluetoothUnavailable        gateway/ble/source.py: no BlueZ or no adapter; said once, then retried
  + DemoError                   gateway/demo/broker.py: the demo cannot run here (no broker reachable)
  + PasswordRefused             gateway/web/password.py: the password typed cannot be used (too short, the two differ)

Not under it, on purpose:

- `OutboxUnavailable` (gateway/storage): the outbox cannot be written or read just now (disk full, I/O
  error). A passing fault the pipeline and the uplink ride out; the command line catches it beside
  `GatewayError`.
- `PlanRejected` (gateway/plans): never leaves the plan keeper, which turns it into a `plan_rejected` event.
- `DecodeError`, `SessionError` (drivers): drivers/ may not import the gateway. The pipeline counts a
  value that does not decode as rejected; the BLE source logs a failed session and tries again later.
"""

from __future__ import annotations

__all__ = ["GatewayError"]


class GatewayError(RuntimeError):
    """A problem with the kit's configuration, keys or stored data; the message is one actionable line."""
