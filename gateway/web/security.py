"""Login, sessions, CSRF tokens and the HTTP hardening every response gets. Pure except for the clock.

- The technician password is stored only as a scrypt hash (`python -m gateway.web.password`).
- Failed logins are rate limited: after `FREE_FAILURES` wrong passwords within `FAILURE_WINDOW_S`,
  every attempt is refused for a pause that doubles up to `MAX_LOCK_S`, without checking the password.
  An attempt counts from the moment it is let in, not when its (slow) hash is done, so concurrent
  guesses cannot all slip past the check (issue 19.10: 60 concurrent wrong passwords were 0 refused).
  The network shares one limit (a per-address one is easy to dodge on a LAN), and the box itself
  (loopback: its own screen, or an SSH tunnel `ssh -L 8080:127.0.0.1:8080 box`) has its own, which
  nothing on the network can use up: no one on the LAN can lock the technician out of the box for good.
- Sessions live in memory only: a restart logs everyone out. Each carries its own CSRF token, which
  every state-changing request must echo (form field `csrf` or header `X-CSRF-Token`). Technicians'
  sessions are kept apart from visitors', so requests without a cookie cannot push them out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from zoning import Language

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1

FREE_FAILURES = 5
FAILURE_WINDOW_S = 300.0
FIRST_LOCK_S = 30.0
MAX_LOCK_S = 900.0

TECHNICIAN_IDLE_S = 15 * 60.0
VISITOR_IDLE_S = 12 * 3600.0
MAX_SESSIONS = 500  # visitors (the patient's screen, a tablet): the least recently seen goes first
MAX_TECHNICIAN_SESSIONS = 8  # only a newer login pushes out a technician's session


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The scrypt hash of the technician password, as `[web] technician_password_hash` holds it (slow on
    purpose: call it off the event loop)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Slow on purpose (scrypt): call it off the event loop."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


BUSY_RETRY_S = 1.0  # as many attempts in flight as failures still allowed: try again in a moment


@dataclass
class LoginGuard:
    """One login limit. `retry_after_s()` says whether an attempt may start; `begin()` counts it at once
    (as a failure, until `succeeded()` or `failed()` ends it), so the check and the count cannot be
    raced by attempts whose hashes are still running."""

    now: Callable[[], float] = time.monotonic
    free_failures: int = FREE_FAILURES
    window_s: float = FAILURE_WINDOW_S
    first_lock_s: float = FIRST_LOCK_S
    _failures: deque[float] = field(default_factory=deque)
    _locked_until: float = 0.0
    _lock_s: float = 0.0
    _pending: int = 0

    def fresh(self) -> LoginGuard:
        """Another guard with the same limits and nothing counted (the box's own, beside the network's)."""
        return LoginGuard(self.now, self.free_failures, self.window_s, self.first_lock_s)

    def _forget_old(self, t: float) -> None:
        while self._failures and self._failures[0] < t - self.window_s:
            self._failures.popleft()

    def retry_after_s(self) -> float:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        t = self.now()
        locked = self._locked_until - t
        if locked > 0:
            return locked
        self._forget_old(t)
        return BUSY_RETRY_S if len(self._failures) + self._pending >= self.free_failures else 0.0

    def begin(self) -> None:
        """An attempt let in (after `retry_after_s()` said 0): it counts until it ends."""
        self._pending += 1

    def failed(self) -> None:
        """The attempt begun was a wrong password (or was broken off)."""
        self._pending = max(0, self._pending - 1)
        t = self.now()
        self._failures.append(t)
        self._forget_old(t)
        if len(self._failures) >= self.free_failures:
            self._lock_s = min(MAX_LOCK_S, self._lock_s * 2 or self.first_lock_s)
            self._locked_until = t + self._lock_s

    def succeeded(self) -> None:
        """The attempt begun was the right password: the count starts again."""
        self._pending = max(0, self._pending - 1)
        self._failures.clear()
        self._lock_s = 0.0


@dataclass
class Session:
    id: str
    csrf: str
    language: Language
    technician: bool = False
    last_seen: float = 0.0


class Sessions:
    """Sessions in memory, visitors' and technicians' apart: each pool drops its least recently seen
    session when full, so no number of cookie-less requests can end a technician's session."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._visitors: OrderedDict[str, Session] = OrderedDict()
        self._technicians: OrderedDict[str, Session] = OrderedDict()

    def _pool(self, s: Session) -> OrderedDict[str, Session]:
        return self._technicians if s.technician else self._visitors

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle time restarts), or None."""
        key = session_id or ""
        s = self._technicians.get(key) or self._visitors.get(key)
        if s is None:
            return None
        pool = self._pool(s)
        idle = TECHNICIAN_IDLE_S if s.technician else VISITOR_IDLE_S
        if self._now() - s.last_seen > idle:
            del pool[s.id]
            return None
        s.last_seen = self._now()
        pool.move_to_end(s.id)
        return s

    def new(self, language: Language, *, technician: bool = False) -> Session:
        """A new session, with its own CSRF token."""
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), language, technician, self._now())
        pool = self._pool(s)
        pool[s.id] = s
        while len(pool) > (MAX_TECHNICIAN_SESSIONS if technician else MAX_SESSIONS):
            pool.popitem(last=False)
        return s

    def promote(self, old: Session) -> Session:
        """After a login: a new id and token (the one used before the login cannot be planted)."""
        self.end(old)
        return self.new(old.language, technician=True)

    def end(self, session: Session) -> None:
        """Forget the session (logout)."""
        self._pool(session).pop(session.id, None)


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return session is not None and token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
