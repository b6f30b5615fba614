"""Linkage context: keyed linkage tokens from patient identifiers, persons from their agreement (pure)."""

from __future__ import annotations

from exchange.linkage._normalize import LinkageFields, PatientIdentifiers, linkage_fields, phonetic
from exchange.linkage._recipes import (
    FIELDS,
    RECIPES,
    TOKEN_BYTES,
    Field,
    Level,
    LinkageToken,
    Part,
    Recipe,
    linkage_digests,
    linkage_tokens,
    parts,
    present,
    recipe,
    recipe_tokens,
)
from exchange.linkage._resolution import (
    DEFAULT_MODEL,
    Assignment,
    Candidate,
    Linker,
    Model,
    Pattern,
    assign,
    estimate,
    fields_present,
    pattern,
)

__all__ = (
    "DEFAULT_MODEL",
    "FIELDS",
    "RECIPES",
    "Assignment",
    "Candidate",
    "Field",
    "Level",
    "LinkageFields",
    "LinkageToken",
    "Linker",
    "Model",
    "Part",
    "PatientIdentifiers",
    "Pattern",
    "Recipe",
    "assign",
    "estimate",
    "fields_present",
    "linkage_fields",
    "TOKEN_BYTES",
    "linkage_digests",
    "linkage_tokens",
    "present",
    "parts",
    "pattern",
    "phonetic",
    "recipe",
    "recipe_tokens",
)
