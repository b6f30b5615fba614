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

__all__ = ("TokenizeRequest", "TokenizeResponse", "tokenize_routes")


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


tokenize_routes = (tokenize, tokenize_linkage)
