"""Console sessions: a signed cookie, its CSRF token, and sign-out.

The cookie holds ``{sid, sub, exp}`` and an HMAC-SHA256 of it under the session secret; nothing
is stored server-side but the ids of signed-out sessions (until their ``exp``), so a restart
forgets those -- and a process with a random secret (none configured) forgets every session.
The CSRF token of a session is derived from its id under the same secret (a synchronizer token
nobody can compute without the secret), so forms carry it and no store is needed. Pure: the
clock is a parameter, for the tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

__all__ = ("LOGIN_NONCE_TTL_S", "ConsoleSession", "Cookies", "SessionCodec")

LOGIN_NONCE_TTL_S = 1800
"""How long a login form stays usable (its double-submit cookie's lifetime)."""
_MAX_COOKIE = 1024
_MAX_SIGNED_OUT = 10_000


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    subject: str
    expires_at: float


class _Payload(msgspec.Struct, forbid_unknown_fields=True):
    sid: str
    sub: str
    exp: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, ttl_s: int, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("the session secret must be at least 32 bytes")
        self._key = secret
        self.ttl_s = ttl_s
        self._clock = clock
        self._signed_out: dict[str, float] = {}  # sid -> exp: refused until then

    def _mac(self, purpose: str, data: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}|{data}".encode(), hashlib.sha256).digest())

    def issue(self, subject: str, *, credential_exp: float | None = None) -> tuple[str, ConsoleSession]:
        """A new session for ``subject``: its cookie value and itself. It ends after the TTL, or
        when the credential it was opened with expires, whichever is first."""
        now = self._clock()
        exp = now + self.ttl_s if credential_exp is None else min(now + self.ttl_s, credential_exp)
        session = ConsoleSession(secrets.token_urlsafe(16), subject, exp)
        body = _b64(msgspec.json.encode(_Payload(session.sid, subject, exp)))
        return f"{body}.{self._mac('session', body)}", session

    def read(self, cookie: str | None) -> ConsoleSession | None:
        """The session a cookie value carries, when it is ours, unexpired and not signed out."""
        if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac("session", body).encode()):
            return None
        try:
            payload = msgspec.json.decode(_unb64(body), type=_Payload)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            return None
        if payload.exp <= self._clock() or payload.sid in self._signed_out:
            return None
        return ConsoleSession(payload.sid, payload.sub, payload.exp)

    def sign_out(self, session: ConsoleSession) -> None:
        """Refuse this session from now on (in this process; its cookie is cleared too)."""
        now = self._clock()
        self._signed_out = {sid: exp for sid, exp in self._signed_out.items() if exp > now}
        if len(self._signed_out) >= _MAX_SIGNED_OUT:  # bounded: the oldest sign-outs go first
            self._signed_out.pop(next(iter(self._signed_out)))
        self._signed_out[session.sid] = session.expires_at

    def csrf_token(self, session: ConsoleSession) -> str:
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: ConsoleSession, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf_token(session).encode())

    # The login form has no session yet: a double-submit nonce (cookie) and its MAC (form field).
    @staticmethod
    def login_nonce() -> str:
        return secrets.token_urlsafe(16)

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_ok(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(nonce) > 64:
            return False
        return hmac.compare_digest(str(token).encode(), self.login_token(nonce).encode())


@dataclass(frozen=True, slots=True)
class Cookies:
    """The console's two cookies: HttpOnly, SameSite=Strict, and Secure (with the ``__Host-``
    prefix, which browsers only accept on a secure, host-only, ``Path=/`` cookie) unless the
    process runs with ``ENV=local`` over plain HTTP."""

    secure: bool

    @property
    def session(self) -> str:
        return "__Host-exchange-console" if self.secure else "exchange-console"

    @property
    def login(self) -> str:
        return "__Host-exchange-console-login" if self.secure else "exchange-console-login"
