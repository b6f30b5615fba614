"""TokenVerifier: the hardened python-jose wrapper, checked without any server.

Valid tokens come from python-jose's own ``jwt.encode``; hostile ones are hand-crafted
(header + payload + any signature) because a careful library refuses to produce them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jose import jwt

from exchange.adapters.jwt import MAX_TOKEN_BYTES, SCOPES, Principal, TokenVerifier
from exchange.errors import Forbidden, Unauthorized
from exchange.settings import AuthSettings, Secret

SECRET = "unit-test-jwt-secret-0123456789abcdef-0123"
ISSUER = "exchange"
AUDIENCE = "exchange-api"
LEEWAY = 30
AUTH = AuthSettings(jwt_secret=Secret(SECRET), issuer=ISSUER, audience=AUDIENCE, leeway_seconds=LEEWAY)


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(AUTH, allow_dev_token=False)


def claims(**overrides: Any) -> dict[str, Any]:
    """Good claims; an override of ``None`` drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "client-a", "scope": "ingest:write", "iat": now, "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(secret: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def crafted(header: dict[str, Any], payload: dict[str, Any], *, secret: str | None = SECRET) -> str:
    """A token with any header, HMAC-signed with ``secret`` (or a junk signature when None)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        signature = b64(b"not-a-real-signature-at-all-0123")
    else:
        signature = b64(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def auth(token: str) -> str:
    return f"Bearer {token}"


# -- accepted ---------------------------------------------------------------------------------


def test_a_valid_hs256_token_yields_its_subject_and_scopes(verifier: TokenVerifier) -> None:
    principal = verifier.authenticate(auth(signed(scope="ingest:write read")))
    assert principal == Principal(subject="client-a", scopes=frozenset({"ingest:write", "read"}))


def test_a_crafted_token_with_an_explicit_jwt_typ_header_is_accepted(verifier: TokenVerifier) -> None:
    token = crafted({"alg": "HS256", "typ": "JWT"}, claims())
    assert verifier.authenticate(auth(token)).subject == "client-a"


def test_scopes_may_be_a_list_and_unknown_scopes_are_dropped(verifier: TokenVerifier) -> None:
    principal = verifier.authenticate(auth(signed(scope=None, scopes=["ingest:write", "root", 7])))
    assert principal.scopes == frozenset({"ingest:write"})


def test_the_bearer_scheme_is_case_insensitive(verifier: TokenVerifier) -> None:
    assert verifier.authenticate(f"bearer {signed()}").subject == "client-a"


def test_exp_within_the_leeway_still_passes(verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert verifier.authenticate(auth(signed(exp=now - LEEWAY + 5, iat=now - 600))).subject == "client-a"


def test_a_token_just_under_the_size_cap_is_accepted(verifier: TokenVerifier) -> None:
    pad = MAX_TOKEN_BYTES * 3 // 4
    while len(token := signed(pad="x" * pad)) > MAX_TOKEN_BYTES:
        pad -= 1
    assert len(token) > MAX_TOKEN_BYTES - 4
    assert verifier.authenticate(auth(token)).subject == "client-a"


# -- claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "overrides"),
    [
        ("expired", {"exp": int(time.time()) - 3600}),
        ("clock skew beyond the leeway", {"exp": int(time.time()) - LEEWAY - 5}),
        ("not yet valid (nbf in the future)", {"nbf": int(time.time()) + 3600}),
        ("wrong iss", {"iss": "someone-else"}),
        ("iss with our name as a prefix", {"iss": "exchange-evil"}),
        ("iss that is a prefix of ours", {"iss": "exch"}),
        ("iss with different case", {"iss": "Exchange"}),
        ("iss as a list containing ours", {"iss": [ISSUER, "other"]}),
        ("iss as a one-element list of ours", {"iss": [ISSUER]}),
        ("wrong aud", {"aud": "another-api"}),
        ("aud that only partly matches", {"aud": "exchange"}),
        ("aud as a list containing ours", {"aud": [AUDIENCE, "other-api"]}),
        ("missing exp", {"exp": None}),
        ("missing iss", {"iss": None}),
        ("missing aud", {"aud": None}),
        ("missing sub", {"sub": None}),
        ("empty sub", {"sub": ""}),
        ("non-string sub", {"sub": 42}),
        ("exp as a numeric string", {"exp": str(int(time.time()) + 300)}),
        ("exp as a list", {"exp": [int(time.time()) + 300]}),
        ("exp NaN", {"exp": float("nan")}),
        ("exp infinite", {"exp": float("inf")}),
        ("nbf as a list", {"nbf": [1]}),
        ("iat as an object", {"iat": {"t": 1}}),
    ],
)
def test_a_token_with_bad_claims_is_unauthorized(verifier: TokenVerifier, case: str, overrides: dict[str, Any]) -> None:
    token = crafted({"alg": "HS256", "typ": "JWT"}, claims(**overrides))
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(token))


def test_a_null_exp_is_unauthorized(verifier: TokenVerifier) -> None:
    payload = claims()
    payload["exp"] = None  # claims() drops None; keep it as JSON null here
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(crafted({"alg": "HS256"}, payload)))


# -- header and signature ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "header"),
    [
        ("alg none", {"alg": "none", "typ": "JWT"}),
        ("alg None", {"alg": "None"}),
        ("alg lower-case hs256", {"alg": "hs256"}),
        ("RS256 header", {"alg": "RS256", "typ": "JWT"}),
        ("ES256 header", {"alg": "ES256", "typ": "JWT"}),
        ("HS512 header", {"alg": "HS512", "typ": "JWT"}),
        ("no alg", {"typ": "JWT"}),
        ("kid with a path", {"alg": "HS256", "typ": "JWT", "kid": "../../etc/passwd"}),
        ("jku", {"alg": "HS256", "jku": "https://attacker.example/jwks.json"}),
        ("jwk", {"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker")}}),
        ("x5u", {"alg": "HS256", "x5u": "https://attacker.example/cert.pem"}),
        ("crit", {"alg": "HS256", "crit": ["exp"]}),
        ("typ other than JWT", {"alg": "HS256", "typ": "at+jwt"}),
    ],
)
@pytest.mark.parametrize("signature", ["valid HMAC", "junk"])
def test_a_token_with_a_forbidden_header_is_unauthorized(
    verifier: TokenVerifier, case: str, header: dict[str, Any], signature: str
) -> None:
    token = crafted(header, claims(), secret=SECRET if signature == "valid HMAC" else None)
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(token))


def test_alg_none_with_an_empty_signature_is_unauthorized(verifier: TokenVerifier) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        with pytest.raises(Unauthorized):
            verifier.authenticate(auth(token))


def test_a_tampered_signature_is_unauthorized(verifier: TokenVerifier) -> None:
    head, body, sig = signed().split(".")
    middle = len(sig) // 2
    flipped = sig[:middle] + ("A" if sig[middle] != "A" else "B") + sig[middle + 1 :]
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(f"{head}.{body}.{flipped}"))


def test_a_tampered_payload_under_the_original_signature_is_unauthorized(verifier: TokenVerifier) -> None:
    head, _, sig = signed(scope="read").split(".")
    forged = b64(json.dumps(claims(scope="ingest:write admin")).encode())
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(f"{head}.{forged}.{sig}"))


def test_hs256_signed_with_another_secret_is_unauthorized(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(signed(secret="another-secret-of-sufficient-length-012345")))


def test_an_oversized_token_is_unauthorized_before_it_is_parsed(verifier: TokenVerifier) -> None:
    token = signed(pad="x" * (MAX_TOKEN_BYTES * 2))
    assert len(token) > MAX_TOKEN_BYTES
    with pytest.raises(Unauthorized, match="too large"):
        verifier.authenticate(auth(token))


def test_a_jwe_shaped_token_with_five_segments_is_unauthorized(verifier: TokenVerifier) -> None:
    header = b64(json.dumps({"alg": "dir", "enc": "A256GCM", "zip": "DEF"}).encode())
    token = ".".join([header, "", b64(b"0123456789ab"), b64(b"ciphertext"), b64(b"tag-tag-tag-tag!")])
    with pytest.raises(Unauthorized, match="malformed"):
        verifier.authenticate(auth(token))


@pytest.mark.parametrize(
    "token",
    ["abc", "a.b", "a.b.c.d", "..", "!!!.###.$$$", f"{b64(b'[1,2]')}.{b64(b'{}')}.sig", f"{b64(b'not json')}.e30.sig"],
)
def test_a_malformed_token_is_unauthorized(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(token))


# -- header scheme and the dev token ----------------------------------------------------------


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", f"Basic {signed()}", f"Token {signed()}", signed()]
)
def test_a_missing_or_non_bearer_authorization_is_unauthorized(verifier: TokenVerifier, header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verifier.authenticate(header)


def test_bearer_dev_is_unauthorized_when_the_dev_token_is_not_allowed(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized, match="ENV=local"):
        verifier.authenticate("Bearer dev")


def test_bearer_dev_is_the_dev_subject_with_every_scope_when_allowed() -> None:
    principal = TokenVerifier(AUTH, allow_dev_token=True).authenticate("Bearer dev")
    assert principal.subject == "dev"
    assert principal.scopes == SCOPES


def test_a_non_ascii_bearer_value_is_unauthorized_not_a_crash(verifier: TokenVerifier) -> None:
    # HTTP header bytes arrive latin-1 decoded; hmac.compare_digest refuses non-ASCII str.
    with pytest.raises(Unauthorized):
        verifier.authenticate("Bearer d\xe9v")


# -- scopes -----------------------------------------------------------------------------------


def test_a_valid_token_without_the_scope_is_forbidden_by_require(verifier: TokenVerifier) -> None:
    principal = verifier.authenticate(auth(signed(scope="read tokenize")))
    principal.require("read")
    with pytest.raises(Forbidden):
        principal.require("ingest:write")


def test_a_valid_token_without_any_scope_claim_has_no_scopes(verifier: TokenVerifier) -> None:
    principal = verifier.authenticate(auth(signed(scope=None)))
    assert principal.scopes == frozenset()
    with pytest.raises(Forbidden):
        principal.require("ingest:write")


# -- property: nothing but Unauthorized escapes -----------------------------------------------

_segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=40),
    st.text(max_size=20),
)


@given(st.one_of(st.text(max_size=200), st.lists(_segment, min_size=1, max_size=6).map(".".join)))
def test_any_garbage_bearer_value_is_unauthorized_never_another_error(token: str) -> None:
    verifier = TokenVerifier(AUTH, allow_dev_token=False)
    with pytest.raises(Unauthorized):
        verifier.authenticate(auth(token))


@given(
    st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "scope"]),
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
            st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
        ),
    )
)
def test_a_signed_token_with_arbitrary_claim_values_never_raises_anything_but_unauthorized(
    overrides: dict[str, Any],
) -> None:
    payload = claims()
    payload.update(overrides)
    verifier = TokenVerifier(AUTH, allow_dev_token=False)
    try:
        principal = verifier.authenticate(auth(crafted({"alg": "HS256", "typ": "JWT"}, payload)))
    except Unauthorized:
        return
    # Whatever got through really carries our exact iss/aud, a subject and a future exp.
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert isinstance(payload["sub"], str)
    assert principal.subject == payload["sub"]
    assert payload["exp"] + LEEWAY >= time.time()


def test_a_token_that_practically_never_expires_is_refused() -> None:
    import time as _time

    from jose import jwt as _jwt

    from exchange.adapters.jwt import TokenVerifier
    from exchange.errors import Unauthorized
    from exchange.settings import AuthSettings, Secret

    settings = AuthSettings(jwt_secret=Secret("s" * 40), issuer="exchange", audience="exchange-api")
    claims = {"iss": "exchange", "aud": "exchange-api", "sub": "x", "exp": int(_time.time()) + 10 * 366 * 86400}
    token = _jwt.encode(claims, "s" * 40, algorithm="HS256")
    with pytest.raises(Unauthorized):
        TokenVerifier(settings, allow_dev_token=False).authenticate(f"Bearer {token}")


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as _time

    from jose import jwt as _jwt

    import exchange.adapters.jwt as module
    from exchange.adapters.jwt import TokenVerifier
    from exchange.errors import Unauthorized
    from exchange.settings import AuthSettings, Secret

    settings = AuthSettings(jwt_secret=Secret("s" * 40), issuer="exchange", audience="exchange-api",
                            leeway_seconds=0)
    now = _time.time()
    claims = {"iss": "exchange", "aud": "exchange-api", "sub": "x", "exp": int(now) + 60}
    token = _jwt.encode(claims, "s" * 40, algorithm="HS256")
    verifier = TokenVerifier(settings, allow_dev_token=False)
    assert verifier.authenticate(f"Bearer {token}").subject == "x"
    assert verifier.authenticate(f"Bearer {token}").subject == "x"  # served from the cache
    monkeypatch.setattr(module.time, "time", lambda: now + 120)
    with pytest.raises(Unauthorized):
        verifier.authenticate(f"Bearer {token}")
