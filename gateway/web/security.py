"""Login, sessions, CSRF tokens and the HTTP hardening every response gets. Pure except for the clock.

- The technician password is stored only as a scrypt hash (`python -m gateway.web.password`).
- Failed logins are rate limited for the whole box: after `FREE_FAILURES` wrong passwords within
  `FAILURE_WINDOW_S`, every attempt is refused for a pause that doubles up to `MAX_LOCK_S`, without
  checking the password. A kiosk box has one technician; a per-address limit is easy to dodge on a LAN.
- Sessions live in memory only: a restart logs everyone out. Each carries its own CSRF token, which
  every state-changing request must echo (form field `csrf` or header `X-CSRF-Token`).
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
MAX_SESSIONS = 500


def hash_password(password: str, *, salt: bytes | None = None) -> str:
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


@dataclass
class LoginGuard:
    now: Callable[[], float] = time.monotonic
    free_failures: int = FREE_FAILURES
    window_s: float = FAILURE_WINDOW_S
    first_lock_s: float = FIRST_LOCK_S
    _failures: deque[float] = field(default_factory=deque)
    _locked_until: float = 0.0
    _lock_s: float = 0.0

    def retry_after_s(self) -> float:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        return max(0.0, self._locked_until - self.now())

    def failed(self) -> None:
        t = self.now()
        self._failures.append(t)
        while self._failures and self._failures[0] < t - self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.free_failures:
            self._lock_s = min(MAX_LOCK_S, self._lock_s * 2 or self.first_lock_s)
            self._locked_until = t + self._lock_s

    def succeeded(self) -> None:
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
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        s = self._by_id.get(session_id or "")
        if s is None:
            return None
        idle = TECHNICIAN_IDLE_S if s.technician else VISITOR_IDLE_S
        if self._now() - s.last_seen > idle:
            del self._by_id[s.id]
            return None
        s.last_seen = self._now()
        self._by_id.move_to_end(s.id)
        return s

    def new(self, language: Language, *, technician: bool = False) -> Session:
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), language, technician, self._now())
        self._by_id[s.id] = s
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return s

    def promote(self, old: Session) -> Session:
        """After a login: a new id and token (the one used before the login cannot be planted)."""
        self._by_id.pop(old.id, None)
        return self.new(old.language, technician=True)

    def end(self, session: Session) -> None:
        self._by_id.pop(session.id, None)


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
