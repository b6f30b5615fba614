"""One interface for the normalizer: tokenize in this process, or over HTTP.

Which one is chosen by the composition root: in-process when the tokenizer role runs
in the same process, ``TOKENIZER_URL`` otherwise. ``tokens`` gives a record's seed token and its
linkage tokens under every key of the ring (ADR 0006), so the keys stay with the tokenizer role.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import msgspec
from jose import jwt

from exchange.errors import TokenizerUnavailable
from exchange.linkage import TOKEN_BYTES, Field, KeyTokens, key_tokens, linkage_fields, present
from exchange.linkage import PatientIdentifiers as LinkageIdentifiers
from exchange.ops.tracing import inject_headers
from exchange.runtime.batcher import Batcher
from exchange.settings import AuthSettings
from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers, canonical_dob, patient_token

__all__ = ("MAX_BATCH", "HttpTokenizer", "InProcessTokenizer", "TokenSet", "Tokenizer")

# Records a normalizer sends in one /tokenize/batch call (the route takes up to 500).
MAX_BATCH = 256


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

    async def tokens_many(self, ids: Sequence[PatientIdentifiers]) -> list[TokenSet | InvalidIdentifiers]:
        """``tokens`` of each, in order; an item's ``InvalidIdentifiers`` is its answer, not raised.
        Raises ``TokenizerUnavailable`` for the whole call."""
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

    async def tokens_many(self, ids: Sequence[PatientIdentifiers]) -> list[TokenSet | InvalidIdentifiers]:
        answers: list[TokenSet | InvalidIdentifiers] = []
        for one in ids:
            try:
                answers.append(token_set(self._key, self._ring, one))
            except InvalidIdentifiers as exc:
                answers.append(exc)
        return answers

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _TokenResponse(msgspec.Struct):
    patient_token: str


class _ItemProblem(msgspec.Struct):
    field: str
    problem: str


class _KeyTokensIn(msgspec.Struct):
    key_id: str
    recipes: list[str]
    tokens: str


class _BatchResult(msgspec.Struct):
    patient_token: str | None = None
    linkage: list[_KeyTokensIn] | None = None
    fields: list[str] | None = None
    error: _ItemProblem | None = None


class _BatchResponse(msgspec.Struct):
    results: list[_BatchResult]


def _from_batch(result: _BatchResult) -> TokenSet | InvalidIdentifiers:
    """One batch answer as the in-process tokenizer gives it; ValueError when it is malformed."""
    if result.error is not None:
        return InvalidIdentifiers(result.error.field, result.error.problem)
    if result.patient_token is None or result.linkage is None or result.fields is None:
        raise ValueError("incomplete result")
    blocks = []
    for block in result.linkage:
        raw = bytes.fromhex(block.tokens)
        digests = tuple(raw[i:i + TOKEN_BYTES] for i in range(0, len(raw), TOKEN_BYTES))
        if len(raw) % TOKEN_BYTES or len(digests) != len(block.recipes):
            raise ValueError("tokens and recipes differ in number")
        blocks.append(KeyTokens(block.key_id, tuple(block.recipes), digests))
    return TokenSet(result.patient_token, tuple(blocks), frozenset(Field(f) for f in result.fields))


def _body(ids: PatientIdentifiers) -> dict[str, Any]:
    body = {"given_name": ids.given_name, "family_name": ids.family_name, "dob": ids.dob}
    if ids.ssn is not None:
        body["ssn"] = ids.ssn
    return body


class HttpTokenizer:
    """Calls ``POST {TOKENIZER_URL}/tokenize...``; authenticates with a short-lived service JWT
    (or ``Bearer dev`` when ENV=local). The records a normalizer has in flight are tokenized in
    one ``/tokenize/batch`` call (``Batcher``: a lone record goes at once, batches grow with load),
    over one pooled keep-alive client."""

    def __init__(self, base_url: str, key_id: str, auth: AuthSettings, *, use_dev_token: bool,
                 timeout_s: float = 2.0) -> None:
        self.key_id = key_id
        self._auth = auth
        self._use_dev = use_dev_token
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._token: tuple[str, float] | None = None
        self._decoder = msgspec.json.Decoder(_TokenResponse)
        self._batch_decoder = msgspec.json.Decoder(_BatchResponse)
        self._batches: Batcher[PatientIdentifiers, TokenSet | InvalidIdentifiers] = Batcher(
            self.tokens_many, key=id, max_batch=MAX_BATCH, max_in_flight=2, fail_together=(TokenizerUnavailable,))

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
        body = await self._post("/tokenize", _body(ids))
        try:
            return self._decoder.decode(body).patient_token
        except msgspec.DecodeError:
            raise TokenizerUnavailable("tokenizer returned an invalid body") from None

    async def tokens(self, ids: PatientIdentifiers) -> TokenSet:
        got = await self._batches.submit(ids)
        if isinstance(got, InvalidIdentifiers):
            raise got
        return got

    async def tokens_many(self, ids: Sequence[PatientIdentifiers]) -> list[TokenSet | InvalidIdentifiers]:
        answers: list[TokenSet | InvalidIdentifiers] = []
        for start in range(0, len(ids), MAX_BATCH):
            chunk = ids[start:start + MAX_BATCH]
            body = await self._post("/tokenize/batch", {"items": [_body(one) for one in chunk]})
            try:
                results = self._batch_decoder.decode(body).results
                answers.extend(_from_batch(result) for result in results)
            except (msgspec.DecodeError, ValueError):
                raise TokenizerUnavailable("tokenizer returned an invalid body") from None
            if len(results) != len(chunk):
                raise TokenizerUnavailable("tokenizer returned an invalid body")
        return answers

    async def _post(self, path: str, body: dict[str, Any]) -> bytes:
        """The answer's body; raises ``InvalidIdentifiers`` on a 400, ``TokenizerUnavailable`` else."""
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
