"""Bearer-token authentication: python-jose, hardened.

python-jose has had algorithm-confusion and JWE-bomb CVEs and accepts
``algorithms=None``. So, before the library sees a token we: cap its size, require
exactly three base64url segments (a JWS, never a JWE), parse the header ourselves and
accept only ``{"alg": "HS256", "typ": "JWT"?}`` with no ``kid``/``jku``/``jwk``/``x5u``
(keys are never looked up from the token), then verify with an explicit
``algorithms=["HS256"]`` and exact ``iss``/``aud`` matches and required ``exp``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from jose import jwt
from jose.exceptions import JOSEError

from exchange.errors import Forbidden, Unauthorized
from exchange.settings import AuthSettings

__all__ = ("MAX_TOKEN_BYTES", "SCOPES", "Principal", "TokenVerifier")

MAX_TOKEN_BYTES = 4096
MAX_LIFETIME_S = 366 * 24 * 3600  # an `exp` further out is a token that never expires: refused
SCOPES = frozenset({"ingest:write", "tokenize", "read", "admin"})
_ALLOWED_HEADER_KEYS = frozenset({"alg", "typ"})
_DEV_TOKEN = "dev"  # noqa: S105 - the documented local-only shortcut, refused outside ENV=local


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``subject`` scopes idempotency keys; ``scopes`` gate routes."""

    subject: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"token lacks the required scope {scope}")


def _b64decode(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


class TokenVerifier:
    def __init__(self, settings: AuthSettings, *, allow_dev_token: bool, cache_size: int = 1024) -> None:
        self._settings = settings
        self._allow_dev = allow_dev_token
        # Verified tokens -> (principal, exp): a client sends the same token on every request,
        # and re-verifying it each time was a measurable share of the ingest path. Only
        # successes are cached, and an entry is honoured only until the token's exp.
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_size = cache_size

    def authenticate(self, authorization: str | None) -> Principal:
        """Check an ``Authorization`` header value; raises :class:`Unauthorized`."""
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        # Bytes: compare_digest raises TypeError on a non-ASCII str (a latin-1 header byte).
        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), _DEV_TOKEN.encode()):
            if self._allow_dev:
                return Principal(subject="dev", scopes=SCOPES)
            raise Unauthorized("the dev token is accepted only when ENV=local")
        return self._verify_jwt(token)

    def authenticate_until(self, authorization: str | None) -> tuple[Principal, float | None]:
        """``authenticate``, and until when the token holds (its ``exp``; None for the dev token):
        a session opened with a token must not outlive it."""
        principal = self.authenticate(authorization)
        cached = self._cache.get((authorization or "").partition(" ")[2].strip())
        return principal, (cached[1] if cached is not None else None)

    def _verify_jwt(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, exp = cached
            if exp + self._settings.leeway_seconds >= time.time():
                return principal
            del self._cache[token]
        principal, exp = self._verify_uncached(token)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))  # oldest insertion first
        self._cache[token] = (principal, exp)
        return principal

    def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("token too large")
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise Unauthorized("malformed token")
        try:
            header = msgspec.json.decode(_b64decode(parts[0]))
        except (binascii.Error, UnicodeError, ValueError, msgspec.DecodeError):
            raise Unauthorized("malformed token header") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise Unauthorized("token algorithm not allowed")
        if set(header) - _ALLOWED_HEADER_KEYS or header.get("typ", "JWT") != "JWT":
            raise Unauthorized("token header not allowed")
        s = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                s.jwt_secret.reveal(),
                algorithms=["HS256"],
                audience=s.audience,
                issuer=s.issuer,
                options={
                    "require_exp": True,
                    "require_iss": True,
                    "require_aud": True,
                    "require_sub": True,
                    "leeway": s.leeway_seconds,
                },
            )
        except (JOSEError, TypeError, ValueError, OverflowError):
            # python-jose lets int() errors escape for non-numeric/infinite exp, nbf or iat claims.
            raise Unauthorized("invalid token") from None
        # python-jose accepts a list-valued iss/aud containing ours; we require exact strings.
        if claims.get("iss") != s.issuer or claims.get("aud") != s.audience:
            raise Unauthorized("invalid token issuer or audience")
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp > time.time() + MAX_LIFETIME_S:
            raise Unauthorized("token lifetime too long")
        if not isinstance(exp, (int, float)) or exp + s.leeway_seconds < time.time():
            raise Unauthorized("invalid token")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 200:
            raise Unauthorized("invalid token subject")
        return Principal(subject=subject, scopes=_scopes(claims)), float(exp)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scopes", ""))
    if isinstance(raw, str):
        names = raw.split()
    elif isinstance(raw, list):
        names = [s for s in raw if isinstance(s, str)]
    else:
        names = []
    return frozenset(names) & SCOPES
