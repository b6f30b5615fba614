"""One interface for the normalizer: tokenize in this process, or over HTTP.

Which one is chosen by the composition root: in-process when the tokenizer role runs
in the same process, ``TOKENIZER_URL`` otherwise.
"""

from __future__ import annotations

import time
from typing import Protocol

import httpx
import msgspec
from jose import jwt

from exchange.errors import TokenizerUnavailable
from exchange.ops.tracing import inject_headers
from exchange.settings import AuthSettings
from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers, patient_token

__all__ = ("HttpTokenizer", "InProcessTokenizer", "Tokenizer")


class Tokenizer(Protocol):
    key_id: str

    async def tokenize(self, ids: PatientIdentifiers) -> str:
        """Raises ``InvalidIdentifiers`` (permanent) or ``TokenizerUnavailable`` (transient)."""
        ...

    async def ping(self) -> None:
        """Returns when ``tokenize`` would work; raises ``TokenizerUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...


# What a probe tokenizes: a made-up person, so the probe takes the path a record takes
# (the route, the bearer token and its scope) and no one's identifiers leave the process.
_PROBE = PatientIdentifiers(given_name="probe", family_name="probe", dob="2000-01-01")


class InProcessTokenizer:
    def __init__(self, key: bytes, key_id: str) -> None:
        self._key = key
        self.key_id = key_id

    async def tokenize(self, ids: PatientIdentifiers) -> str:
        return patient_token(self._key, ids)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _TokenResponse(msgspec.Struct):
    patient_token: str


class HttpTokenizer:
    """Calls ``POST {TOKENIZER_URL}/tokenize``; authenticates with a short-lived service JWT
    (or ``Bearer dev`` when ENV=local)."""

    def __init__(self, base_url: str, key_id: str, auth: AuthSettings, *, use_dev_token: bool,
                 timeout_s: float = 2.0) -> None:
        self.key_id = key_id
        self._auth = auth
        self._use_dev = use_dev_token
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._token: tuple[str, float] | None = None
        self._decoder = msgspec.json.Decoder(_TokenResponse)

    def _bearer(self) -> str:
        if self._use_dev:
            return "dev"
        now = time.time()
        if self._token is None or self._token[1] - now < 60:
            exp = now + 600
            claims = {"iss": self._auth.issuer, "aud": self._auth.audience, "sub": "svc:normalizer",
                      "scope": "tokenize", "iat": int(now), "exp": int(exp)}
            self._token = (jwt.encode(claims, self._auth.jwt_secret.reveal(), algorithm="HS256"), exp)
        return self._token[0]

    async def tokenize(self, ids: PatientIdentifiers) -> str:
        body = {"given_name": ids.given_name, "family_name": ids.family_name, "dob": ids.dob}
        if ids.ssn is not None:
            body["ssn"] = ids.ssn
        try:
            response = await self._client.post(
                "/tokenize", json=body, headers=inject_headers({"Authorization": f"Bearer {self._bearer()}"})
            )
        except httpx.HTTPError as exc:
            raise TokenizerUnavailable(f"tokenizer unreachable ({type(exc).__name__})") from None
        if response.status_code == 400:
            field = "identifiers"
            try:
                errors = msgspec.json.decode(response.content).get("errors") or []
                field = str(errors[0]["field"]) if errors else field
            except (msgspec.DecodeError, AttributeError, KeyError, IndexError, TypeError):
                pass
            raise InvalidIdentifiers(field, "rejected by the tokenizer")
        if response.status_code != 200:
            # Conservative on purpose (the original: "tokenizer non-200").
            raise TokenizerUnavailable(f"tokenizer non-200 ({response.status_code})")
        try:
            return self._decoder.decode(response.content).patient_token
        except msgspec.DecodeError:
            raise TokenizerUnavailable("tokenizer returned an invalid body") from None

    async def ping(self) -> None:
        """A whole tokenize call (not ``/healthz``): a tokenizer that is up but refuses our token is
        as unusable as one that is down."""
        try:
            await self.tokenize(_PROBE)
        except InvalidIdentifiers:
            raise TokenizerUnavailable("tokenizer refused the probe identifiers") from None

    async def close(self) -> None:
        await self._client.aclose()
