"""One interface for the normalizer: tokenize in this process, or over HTTP.

Which one is chosen by the composition root: in-process when the tokenizer role runs
in the same process, ``TOKENIZER_URL`` otherwise. ``tokens`` gives a record's seed token and its
linkage tokens under every key of the ring (ADR 0006), so the keys stay with the tokenizer role.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
import msgspec
from jose import jwt

from exchange.errors import TokenizerUnavailable
from exchange.linkage import Field, KeyTokens, key_tokens, linkage_fields, present
from exchange.linkage import PatientIdentifiers as LinkageIdentifiers
from exchange.ops.tracing import inject_headers
from exchange.settings import AuthSettings
from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers, canonical_dob, patient_token

__all__ = ("HttpTokenizer", "InProcessTokenizer", "TokenSet", "Tokenizer")


@dataclass(frozen=True, slots=True)
class TokenSet:
    """Everything the normalizer keeps of a patient: the seed token, the linkage tokens, and which
    fields the record has (the names of the fields, never their values)."""

    patient_token: str
    linkage: tuple[KeyTokens, ...]  # one block a key of the ring
    fields: frozenset[Field]


def token_set(key: bytes, ring: tuple[tuple[str, bytes], ...], ids: PatientIdentifiers) -> TokenSet:
    """The pure computation behind both clients and the ``/tokenize/linkage`` route."""
    seed = patient_token(key, ids)  # validates the identifiers first: InvalidIdentifiers
    try:
        born = dt.date.fromisoformat(canonical_dob(ids.dob))
    except ValueError:  # year 0000: a date to Go's parser and the seed token, none to Python's
        raise InvalidIdentifiers("dob", "must be a date from year 0001") from None
    fields = linkage_fields(LinkageIdentifiers(ids.given_name, ids.family_name, born, ids.ssn))
    return TokenSet(seed, tuple(key_tokens(key_id, linkage_key, fields) for key_id, linkage_key in ring),
                    present(fields))


class Tokenizer(Protocol):
    key_id: str

    async def tokenize(self, ids: PatientIdentifiers) -> str:
        """Raises ``InvalidIdentifiers`` (permanent) or ``TokenizerUnavailable`` (transient)."""
        ...

    async def tokens(self, ids: PatientIdentifiers) -> TokenSet:
        """The seed token and the linkage tokens; raises as ``tokenize`` does."""
        ...

    async def ping(self) -> None:
        """Returns when ``tokenize`` would work; raises ``TokenizerUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...


# What a probe tokenizes: a made-up person, so the probe takes the path a record takes
# (the route, the bearer token and its scope) and no one's identifiers leave the process.
_PROBE = PatientIdentifiers(given_name="probe", family_name="probe", dob="2000-01-01")


class InProcessTokenizer:
    def __init__(self, key: bytes, key_id: str, linkage_ring: tuple[tuple[str, bytes], ...]) -> None:
        self._key = key
        self.key_id = key_id
        self._ring = linkage_ring

    async def tokenize(self, ids: PatientIdentifiers) -> str:
        return patient_token(self._key, ids)

    async def tokens(self, ids: PatientIdentifiers) -> TokenSet:
        return token_set(self._key, self._ring, ids)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _TokenResponse(msgspec.Struct):
    patient_token: str


class _Keyed(msgspec.Struct):
    key_id: str
    recipe: str
    token: str


class _TokenSetResponse(msgspec.Struct):
    patient_token: str
    linkage_tokens: list[_Keyed]
    fields: list[str]


def _blocks(tokens: list[_Keyed]) -> tuple[KeyTokens, ...]:
    """The route's flat list of tokens as one block a key id, in the order the keys came."""
    per_key: dict[str, tuple[list[str], list[bytes]]] = {}
    for t in tokens:
        recipes, digests = per_key.setdefault(t.key_id, ([], []))
        recipes.append(t.recipe)
        digests.append(bytes.fromhex(t.token))
    return tuple(KeyTokens(key_id, tuple(recipes), tuple(digests)) for key_id, (recipes, digests) in per_key.items())


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
        self._set_decoder = msgspec.json.Decoder(_TokenSetResponse)

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
        body = await self._post("/tokenize", ids)
        try:
            return self._decoder.decode(body).patient_token
        except msgspec.DecodeError:
            raise TokenizerUnavailable("tokenizer returned an invalid body") from None

    async def tokens(self, ids: PatientIdentifiers) -> TokenSet:
        body = await self._post("/tokenize/linkage", ids)
        try:
            got = self._set_decoder.decode(body)
        except msgspec.DecodeError:
            raise TokenizerUnavailable("tokenizer returned an invalid body") from None
        try:
            linkage = _blocks(got.linkage_tokens)
        except ValueError:
            raise TokenizerUnavailable("tokenizer returned an invalid body") from None
        try:
            fields = frozenset(Field(f) for f in got.fields)
        except ValueError:
            raise TokenizerUnavailable("tokenizer returned an invalid body") from None
        return TokenSet(got.patient_token, linkage, fields)

    async def _post(self, path: str, ids: PatientIdentifiers) -> bytes:
        """The answer's body; raises ``InvalidIdentifiers`` on a 400, ``TokenizerUnavailable`` else."""
        body = {"given_name": ids.given_name, "family_name": ids.family_name, "dob": ids.dob}
        if ids.ssn is not None:
            body["ssn"] = ids.ssn
        try:
            response = await self._client.post(
                path, json=body, headers=inject_headers({"Authorization": f"Bearer {self._bearer()}"})
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
        return response.content

    async def ping(self) -> None:
        """A whole tokenize call (not ``/healthz``): a tokenizer that is up but refuses our token is
        as unusable as one that is down."""
        try:
            await self.tokens(_PROBE)
        except InvalidIdentifiers:
            raise TokenizerUnavailable("tokenizer refused the probe identifiers") from None

    async def close(self) -> None:
        await self._client.aclose()
