"""Form text into the admin request types: the API's rules, refusals that name the field only."""

from __future__ import annotations

import pytest

from exchange.admin import ReconcileJobRequest, ReplayJobRequest, ResolveRequest
from exchange.console._forms import entry_id, from_form, optional_text
from exchange.errors import ValidationFailed


def test_text_fields_and_checkboxes_become_the_request_type() -> None:
    data = from_form({"source": " src-1 ", "limit": "25", "emit_version": "v2", "dry_run": "on"}, ReplayJobRequest,
                     fields=("source", "limit", "emit_version"), checkboxes=("dry_run",))
    assert (data.source, data.limit, data.emit_version, data.dry_run) == ("src-1", 25, "v2", True)


def test_empty_fields_take_the_default_and_an_absent_checkbox_is_false() -> None:
    data = from_form({"source": "s", "repair": None}, ReconcileJobRequest, fields=("source",), checkboxes=())
    assert data.repair is False
    replay = from_form({"source": "s", "limit": ""}, ReplayJobRequest, fields=("source", "limit"),
                       checkboxes=("dry_run",))
    assert replay.limit is None
    assert replay.dry_run is False


@pytest.mark.parametrize(("form", "field"), [
    ({"source": "../etc", "limit": "1"}, "source"),
    ({"source": "ok", "limit": "0"}, "limit"),
    ({"source": "ok", "limit": "many"}, "limit"),
    ({"source": "ok", "emit_version": "v9-secret-value"}, "emit_version"),
])
def test_a_refusal_names_the_field_and_never_the_value(form: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        from_form(form, ReplayJobRequest, fields=("source", "limit", "emit_version"))
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"{field}:")
    for value in form.values():
        if value not in ("ok", "1"):
            assert value not in caught.value.detail


def test_a_reason_with_nul_or_too_long_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="reason"):
        from_form({"reason": "a\x00b"}, ResolveRequest, fields=("reason",))
    with pytest.raises(ValidationFailed, match="reason"):
        from_form({"reason": "x" * 501}, ResolveRequest, fields=("reason",))
    with pytest.raises(ValidationFailed, match="reason"):
        from_form({"reason": "   "}, ResolveRequest, fields=("reason",))


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "9223372036854775808", "١٢", "", None])
def test_an_entry_id_is_a_positive_bigint(text: str | None) -> None:
    with pytest.raises(ValidationFailed):
        entry_id(text)


def test_an_entry_id_within_bigint_is_taken() -> None:
    assert entry_id("9223372036854775807") == 2**63 - 1


def test_a_filter_text_is_bounded_and_nul_free() -> None:
    assert optional_text("  ", "error_type") is None
    assert optional_text(" RawObjectNotFound ", "error_type") == "RawObjectNotFound"
    with pytest.raises(ValidationFailed):
        optional_text("x" * 201, "error_type")
    with pytest.raises(ValidationFailed):
        optional_text("a\x00", "error_type")
