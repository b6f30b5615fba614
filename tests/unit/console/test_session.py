"""Console sessions: signed, bounded in time, refused once signed out; CSRF and login tokens."""

from __future__ import annotations

import pytest

from exchange.console import SessionCodec

SECRET = b"s" * 32


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_issued_cookie_reads_back_as_its_session() -> None:
    codec = SessionCodec(SECRET, 3600)
    cookie, session = codec.issue("ops-alice")
    assert codec.read(cookie) == session
    assert session.subject == "ops-alice"


def test_a_session_ends_after_its_ttl() -> None:
    clock = Clock()
    codec = SessionCodec(SECRET, 600, clock=clock)
    cookie, _ = codec.issue("ops")
    clock.now += 599
    assert codec.read(cookie) is not None
    clock.now += 1
    assert codec.read(cookie) is None


def test_a_session_never_outlives_the_token_it_was_opened_with() -> None:
    clock = Clock()
    codec = SessionCodec(SECRET, 3600, clock=clock)
    cookie, session = codec.issue("ops", credential_exp=clock.now + 120)
    assert session.expires_at == clock.now + 120
    clock.now += 121
    assert codec.read(cookie) is None


@pytest.mark.parametrize("tamper", [
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # the MAC
    lambda c: "e" + c[1:] if not c.startswith("e") else "f" + c[1:],  # the payload
    lambda c: c.replace(".", ""),
    lambda c: c + "." + c,
    lambda c: "",
    lambda c: "x" * 5000,
])
def test_a_tampered_cookie_is_no_session(tamper: object) -> None:
    codec = SessionCodec(SECRET, 3600)
    cookie, _ = codec.issue("ops")
    assert callable(tamper)
    assert codec.read(tamper(cookie)) is None


def test_a_cookie_signed_under_another_secret_is_no_session() -> None:
    cookie, _ = SessionCodec(b"o" * 32, 3600).issue("ops")
    assert SessionCodec(SECRET, 3600).read(cookie) is None


def test_a_signed_out_session_is_refused_while_another_goes_on() -> None:
    codec = SessionCodec(SECRET, 3600)
    first, session = codec.issue("ops")
    second, _ = codec.issue("ops")
    codec.sign_out(session)
    assert codec.read(first) is None
    assert codec.read(second) is not None


def test_the_csrf_token_belongs_to_one_session() -> None:
    codec = SessionCodec(SECRET, 3600)
    _, mine = codec.issue("ops")
    _, other = codec.issue("ops")
    assert codec.csrf_ok(mine, codec.csrf_token(mine))
    assert not codec.csrf_ok(mine, codec.csrf_token(other))
    assert not codec.csrf_ok(mine, None)
    assert not codec.csrf_ok(mine, "")


def test_the_login_form_token_must_match_its_nonce_cookie() -> None:
    codec = SessionCodec(SECRET, 3600)
    nonce = codec.login_nonce()
    assert codec.login_ok(nonce, codec.login_token(nonce))
    assert not codec.login_ok(codec.login_nonce(), codec.login_token(nonce))
    assert not codec.login_ok(None, codec.login_token(nonce))
    assert not codec.login_ok(nonce, None)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionCodec(b"short", 3600)
