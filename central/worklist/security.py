"""Passwords (scrypt), login rate limits, sessions with CSRF tokens, and the HTTP hardening headers of
the worklist's pages. The same approach as the gateway's pages (central never imports gateway), with
users of many tenants: the limit is per user name and for the whole server.

- A password is stored only as a scrypt hash; verifying is slow on purpose (run it off the event loop).
- After `FREE_FAILURES` wrong passwords for one name within `FAILURE_WINDOW_S`, that name is locked for
  a pause that doubles up to `MAX_LOCK_S`; `SERVER_FAILURES` across all names lock every login likewise.
- Sessions live in memory (a restart logs everyone out); each carries a CSRF token that every POST echoes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10

FREE_FAILURES = 5
SERVER_FAILURES = 50
FAILURE_WINDOW_S = 300.0
FIRST_LOCK_S = 30.0
MAX_LOCK_S = 900.0
IDLE_S = 60 * 60.0
MAX_SESSIONS = 2000


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A scrypt hash of `password` with a fresh salt, as one string for the users table."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


# Checked when the user does not exist, so an unknown name takes as long as a wrong password.
_DUMMY = hash_password("not a password", salt=b"\0" * 16)


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches the scrypt hash `stored` (None: an unknown user, always False)."""
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return stored is not None and hmac.compare_digest(got, expected)


@dataclass
class _Limit:
    free: int
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lock_s: float = 0.0


@dataclass
class LoginGuard:
    """Failed-login limits per user name and for the whole server."""

    now: Callable[[], float] = time.monotonic
    window_s: float = FAILURE_WINDOW_S
    _names: dict[str, _Limit] = field(default_factory=dict)
    _server: _Limit = field(default_factory=lambda: _Limit(SERVER_FAILURES))

    def retry_after_s(self, name: str) -> float:
        """Seconds until `name` may try again; 0 when it may try now."""
        limit = self._names.get(name)
        until = max(self._server.locked_until, limit.locked_until if limit else 0.0)
        return max(0.0, until - self.now())

    def failed(self, name: str) -> None:
        if len(self._names) > 10_000:
            self._names.clear()  # a flood of made-up names: the server-wide limit still holds
        for limit in (self._names.setdefault(name, _Limit(FREE_FAILURES)), self._server):
            t = self.now()
            limit.failures.append(t)
            while limit.failures and limit.failures[0] < t - self.window_s:
                limit.failures.popleft()
            if len(limit.failures) >= limit.free:
                limit.lock_s = min(MAX_LOCK_S, limit.lock_s * 2 or FIRST_LOCK_S)
                limit.locked_until = t + limit.lock_s

    def succeeded(self, name: str) -> None:
        self._names.pop(name, None)


@dataclass
class Session:
    """One browser's session: its CSRF token, language, and the user once logged in."""

    id: str
    csrf: str
    language: str
    user: str | None = None
    last_seen: float = 0.0


class Sessions:
    """In-memory sessions; a login gets a new id and CSRF token (one planted before cannot be used)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        s = self._by_id.get(session_id or "")
        if s is None:
            return None
        if self._now() - s.last_seen > IDLE_S:
            del self._by_id[s.id]
            return None
        s.last_seen = self._now()
        self._by_id.move_to_end(s.id)
        return s

    def new(self, language: str, user: str | None = None) -> Session:
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), language, user, self._now())
        self._by_id[s.id] = s
        while len(self._by_id) > MAX_SESSIONS:
            # A flood of anonymous visits must not log the nurses out: the oldest anonymous one goes first.
            anonymous = next((k for k, v in self._by_id.items() if v.user is None and k != s.id), None)
            if anonymous is None:
                self._by_id.popitem(last=False)
            else:
                del self._by_id[anonymous]
        return s

    def login(self, old: Session, user: str) -> Session:
        self._by_id.pop(old.id, None)
        return self.new(old.language, user)

    def end(self, session: Session) -> None:
        self._by_id.pop(session.id, None)


SIGN_ON_ONLY = "!"
"""The password hash of a user who signs on only through the proxy: no password ever matches it."""


@dataclass(frozen=True)
class ProxySignOn:
    """The seam for production single sign-on (OIDC): an authenticating reverse proxy in front of the
    worklist (oauth2-proxy, Keycloak Gatekeeper, a hospital's gateway) does the OIDC login and passes the
    user's name in `header`. The name is believed only from `proxies` (by default the proxy runs on the
    same host); tenant and role still come from the worklist's own users table, so a person known to the
    identity provider but not added here sees nothing."""

    header: str
    proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})

    def name_of(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The signed-on user's name, if this request came through the proxy and carries one."""
        if peer is None or peer not in self.proxies:
            return None
        name = headers.get(self.header, "").strip()
        return name[:64] or None


def csrf_ok(session: Session | None, token: str | None) -> bool:
    """The form's token is this session's (constant-time compare)."""
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
