from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.linkage import (
    RECIPES,
    Field,
    PatientIdentifiers,
    Recipe,
    linkage_fields,
    linkage_tokens,
    recipe,
)

KEY = b"linkage-unit-test-key-0123456789abcdef"
SAM = PatientIdentifiers("Sam", "Lee", dt.date(1990, 1, 2), "123-45-6780")


def _by_recipe(ids: PatientIdentifiers, key_id: str = "k1", key: bytes = KEY,
               recipes: tuple[Recipe, ...] = RECIPES) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for t in linkage_tokens(key_id, key, ids, recipes):
        out.setdefault(t.recipe, set()).add(t.token)
    return out


def _needs_ssn(rec: Recipe) -> bool:
    return any(f is Field.SSN for f, _ in rec.certifies)


def test_every_recipe_yields_tokens_for_a_complete_record() -> None:
    assert set(_by_recipe(SAM)) == {r.id for r in RECIPES}


@pytest.mark.parametrize("ssn", [None, "", "--", "000-00-0000", "123-45-6789", "999999999"])
def test_a_record_without_a_usable_ssn_gets_no_token_of_a_recipe_that_needs_one(ssn: str | None) -> None:
    ids = PatientIdentifiers("Sam", "Lee", dt.date(1990, 1, 2), ssn)
    assert set(_by_recipe(ids)) == {r.id for r in RECIPES if not _needs_ssn(r)}


def test_a_name_never_stands_alone_in_a_recipe() -> None:
    for rec in RECIPES:
        fields = {f for f, _ in rec.certifies}
        if fields & {Field.GIVEN, Field.FAMILY}:
            assert len(fields) >= 2, rec.id


def test_tokens_are_deterministic_sorted_hex() -> None:
    first, second = linkage_tokens("k1", KEY, SAM), linkage_tokens("k1", KEY, SAM)
    assert first == second
    assert first == sorted(first, key=lambda t: (t.recipe, t.token))
    assert all(re.fullmatch(r"[0-9a-f]{32}", t.token) for t in first)


def test_the_same_values_under_two_recipes_give_different_tokens() -> None:
    # Two recipes with identical parts: only the recipe id differs, and so does every token.
    one, other = recipe("given", "dob"), recipe("given", "dob")
    renamed = Recipe("given+dob-copy", other.version, other.parts)
    assert not _by_recipe(SAM, recipes=(one,))["given+dob"] & _by_recipe(SAM, recipes=(renamed,))["given+dob-copy"]


names = st.text(alphabet=st.characters(categories=("L",)), min_size=1, max_size=8)


@given(given_name=names, family_name=names, dob=st.dates(dt.date(1900, 1, 1), dt.date(2026, 1, 1)),
       ssn=st.one_of(st.none(), st.from_regex(r"\A[0-9]{9}\Z")))
def test_no_token_is_shared_between_recipes(given_name: str, family_name: str, dob: dt.date, ssn: str | None) -> None:
    tokens = linkage_tokens("k1", KEY, PatientIdentifiers(given_name, family_name, dob, ssn))
    assert len({t.token for t in tokens}) == len(tokens)


@pytest.mark.parametrize(
    ("key_id", "key", "version"),
    [("k2", KEY, 1), ("k1", b"another-key-another-key-another-key!", 1), ("k1", KEY, 2)],
)
def test_another_key_id_key_or_recipe_version_changes_every_token(key_id: str, key: bytes, version: int) -> None:
    recipes = tuple(Recipe(r.id, version, r.parts) for r in RECIPES)
    before = {t.token for t in linkage_tokens("k1", KEY, SAM)}
    after = {t.token for t in linkage_tokens(key_id, key, SAM, recipes)}
    assert before.isdisjoint(after)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("José", "García"), ("JOSE", "garcia")),
        (("Mary Ann", "O'Brien"), ("maryann", "OBRIEN")),
        (("Anne-Marie", "Kerr Sullivan"), ("annemarie", "kerr-sullivan")),
        (("\uff33\uff41\uff4d", "\uff2c\uff45\uff45"), ("sam", "lee")),  # full width
        (("Straße", "Müller"), ("STRASSE", "MULLER")),
    ],
)
def test_accents_case_punctuation_spacing_and_width_do_not_change_linkage_tokens(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    dob = dt.date(1990, 1, 2)
    assert _by_recipe(PatientIdentifiers(*one, dob, "123456780")) == _by_recipe(PatientIdentifiers(*other, dob,
                                                                                                   "123-45-6780"))


def test_ssn_digits_of_any_script_count() -> None:
    fullwidth = PatientIdentifiers("Sam", "Lee", dt.date(1990, 1, 2), "\uff11\uff12\uff13-45-6780")
    assert linkage_fields(fullwidth).ssn == "123456780"


def test_identifiers_fields_and_tokens_never_show_in_repr() -> None:
    tokens = linkage_tokens("k1", KEY, SAM)
    shown = repr(SAM) + repr(linkage_fields(SAM)) + repr(tokens)
    assert "sam" not in shown.lower()
    assert "lee" not in shown.lower()
    assert tokens[0].token not in shown


def _reference_tokens(key_id: str, identifiers: PatientIdentifiers) -> list[tuple[str, bytes]]:
    """The generic definition: each recipe's plain values (``recipe_tokens``) under the standard
    library's HMAC with the recipe's key."""
    import hmac as std_hmac

    from exchange.linkage import TOKEN_BYTES, recipe_tokens
    from exchange.linkage._recipes import _message_key

    fields = linkage_fields(identifiers)
    return sorted(
        (rec.id,
         std_hmac.digest(_message_key(KEY, key_id, rec.id, rec.version), value.encode(), "sha256")[:TOKEN_BYTES])
        for rec in RECIPES
        for value in recipe_tokens(rec, fields)
    )


def test_a_token_is_the_truncated_hmac_of_its_recipe_key() -> None:
    # The precomputed-pad HMAC (RFC 2104) and the unrolled recipe product must equal the generic definition.
    from exchange.linkage import key_tokens

    expected = _reference_tokens("k1", SAM)
    block = key_tokens("k1", KEY, SAM)
    assert block.key_id == "k1"
    assert sorted(zip(block.recipes, block.digests, strict=True)) == expected
    assert len(expected) > 20


@settings(max_examples=200, deadline=None)
@given(
    given_name=st.text(min_size=0, max_size=12),
    family_name=st.text(min_size=0, max_size=12),
    born=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)),
    ssn=st.none() | st.text(alphabet="0123456789-", max_size=11),
)
def test_the_fast_token_path_equals_the_generic_definition_for_any_identifiers(
    given_name: str, family_name: str, born: dt.date, ssn: str | None
) -> None:
    from exchange.linkage import key_tokens

    ids = PatientIdentifiers(given_name, family_name, born, ssn)
    block = key_tokens("k2", KEY, ids)
    assert sorted(zip(block.recipes, block.digests, strict=True)) == _reference_tokens("k2", ids)
