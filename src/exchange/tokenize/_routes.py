"""POST /tokenize (scope ``tokenize``): the same pure function the normalizer calls."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import post
from litestar.datastructures import State
from litestar.params import Body

from exchange.errors import ValidationFailed
from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers
from exchange.tokenize._client import Tokenizer
from exchange.web import authenticated

__all__ = ("MAX_BATCH_ITEMS", "TokenizeRequest", "TokenizeResponse", "tokenize_routes")


# A string, checked by the canonicalization (``_dob``: trimmed, YYYY-MM-DD, a real date), as the
# original tokenizer does; documented as the contract has it (``format: date``).
Dob = Annotated[str, msgspec.Meta(extra_json_schema={"extra": {"format": "date"}})]
# The structs forbid unknown fields; Litestar's generator does not say so unless told.
_CLOSED = {"additionalProperties": False}


class TokenizeRequest(msgspec.Struct, forbid_unknown_fields=True):
    given_name: str
    family_name: str
    dob: Dob
    ssn: str | None = None


class TokenizeResponse(msgspec.Struct):
    patient_token: Annotated[str, msgspec.Meta(min_length=16)]


class LinkageToken(msgspec.Struct):
    key_id: str
    recipe: str
    token: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]


class LinkageTokensResponse(msgspec.Struct):
    """The seed token, the linkage tokens under every key of the ring, and the fields the record has."""

    patient_token: Annotated[str, msgspec.Meta(min_length=16)]
    linkage_tokens: list[LinkageToken]
    fields: list[Literal["dob", "family", "given", "ssn"]]


# A batch is what one normalizer has in flight, not a bulk-export door: small enough that one
# call stays well under a second of tokenizer work.
MAX_BATCH_ITEMS = 500


class TokenizeBatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[TokenizeRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH_ITEMS)]


class KeyTokensOut(msgspec.Struct):
    """A record's linkage tokens under one key: ``tokens`` is their 16-byte digests, hex, one after
    the other, position for position with ``recipes`` (one string instead of dozens of objects)."""

    key_id: str
    recipes: list[str]
    tokens: Annotated[str, msgspec.Meta(pattern="^([0-9a-f]{32})*$")]


class ItemProblem(msgspec.Struct):
    field: str
    problem: str


class TokenizeBatchResult(msgspec.Struct, omit_defaults=True):
    """One item's answer: its tokens, or the problem that kept it from them (never its value)."""

    patient_token: str | None = None
    linkage: list[KeyTokensOut] | None = None
    fields: list[Literal["dob", "family", "given", "ssn"]] | None = None
    error: ItemProblem | None = None


class TokenizeBatchResponse(msgspec.Struct):
    results: list[TokenizeBatchResult]


@post(
    "/tokenize",
    **authenticated("tokenize", 400, 413, described={400: "Invalid payload (the field is named, never its value)"}),
    status_code=200,
    summary="Tokenize patient identifiers (deterministic)",
    response_description="Tokenized identifiers",
)
async def tokenize(data: Annotated[TokenizeRequest, Body(schema_extra=_CLOSED)], state: State) -> TokenizeResponse:
    tokenizer: Tokenizer = state.runtime.local_tokenizer
    try:
        token = await tokenizer.tokenize(
            PatientIdentifiers(data.given_name, data.family_name, data.dob, data.ssn)
        )
    except InvalidIdentifiers as exc:
        raise ValidationFailed(f"{exc.field}: {exc.problem}", field=exc.field) from None
    return TokenizeResponse(patient_token=token)


@post(
    "/tokenize/linkage",
    **authenticated("tokenize", 400, 413, described={400: "Invalid payload (the field is named, never its value)"}),
    status_code=200,
    summary="Tokenize for linkage: the seed token and the linkage tokens (ADR 0006)",
    response_description="The seed token, linkage tokens and the fields present",
)
async def tokenize_linkage(data: Annotated[TokenizeRequest, Body(schema_extra=_CLOSED)],
                           state: State) -> LinkageTokensResponse:
    tokenizer: Tokenizer = state.runtime.local_tokenizer
    try:
        got = await tokenizer.tokens(PatientIdentifiers(data.given_name, data.family_name, data.dob, data.ssn))
    except InvalidIdentifiers as exc:
        raise ValidationFailed(f"{exc.field}: {exc.problem}", field=exc.field) from None
    return LinkageTokensResponse(
        patient_token=got.patient_token,
        linkage_tokens=[LinkageToken(block.key_id, recipe, digest.hex()) for block in got.linkage
                        for recipe, digest in zip(block.recipes, block.digests, strict=True)],
        fields=sorted(f.value for f in got.fields),
    )


@post(
    "/tokenize/batch",
    **authenticated("tokenize", 400, 413, described={400: "Invalid payload (the field is named, never its value)"}),
    status_code=200,
    summary="Tokenize many records for linkage in one call (what a remote normalizer has in flight)",
    response_description="One result a record, in order: its tokens, or the field that kept it from them",
)
async def tokenize_batch(data: Annotated[TokenizeBatchRequest, Body(schema_extra=_CLOSED)],
                         state: State) -> TokenizeBatchResponse:
    tokenizer: Tokenizer = state.runtime.local_tokenizer
    got = await tokenizer.tokens_many([PatientIdentifiers(i.given_name, i.family_name, i.dob, i.ssn)
                                       for i in data.items])
    results = []
    for one in got:
        if isinstance(one, InvalidIdentifiers):
            results.append(TokenizeBatchResult(error=ItemProblem(one.field, one.problem)))
        else:
            results.append(TokenizeBatchResult(
                patient_token=one.patient_token,
                linkage=[KeyTokensOut(b.key_id, list(b.recipes), b"".join(b.digests).hex()) for b in one.linkage],
                fields=sorted(f.value for f in one.fields),
            ))
    return TokenizeBatchResponse(results)


tokenize_routes = (tokenize, tokenize_linkage, tokenize_batch)
