"""POST /tokenize (scope ``tokenize``): the same pure function the normalizer calls."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body

from exchange.errors import ValidationFailed
from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers
from exchange.tokenize._client import Tokenizer
from exchange.web import PROBLEM_JSON, authenticated

__all__ = ("TokenizeRequest", "TokenizeResponse", "tokenize_routes")


class TokenizeRequest(msgspec.Struct, forbid_unknown_fields=True):
    given_name: str
    family_name: str
    dob: str
    ssn: str | None = None


class TokenizeResponse(msgspec.Struct):
    patient_token: Annotated[str, msgspec.Meta(min_length=16)]


class _Problem(msgspec.Struct):
    type: str
    title: str
    status: int
    detail: str


@post(
    "/tokenize",
    **authenticated("tokenize"),
    status_code=200,
    summary="Tokenize patient identifiers (deterministic)",
    responses={
        400: ResponseSpec(data_container=_Problem, media_type=PROBLEM_JSON, description="Invalid payload"),
        401: ResponseSpec(data_container=_Problem, media_type=PROBLEM_JSON, description="Unauthorized"),
        403: ResponseSpec(data_container=_Problem, media_type=PROBLEM_JSON, description="Missing scope"),
    },
)
async def tokenize(data: Annotated[TokenizeRequest, Body()], state: State) -> TokenizeResponse:
    tokenizer: Tokenizer = state.runtime.local_tokenizer
    try:
        token = await tokenizer.tokenize(
            PatientIdentifiers(data.given_name, data.family_name, data.dob, data.ssn)
        )
    except InvalidIdentifiers as exc:
        raise ValidationFailed(f"{exc.field}: {exc.problem}", field=exc.field) from None
    return TokenizeResponse(patient_token=token)


tokenize_routes = (tokenize,)
