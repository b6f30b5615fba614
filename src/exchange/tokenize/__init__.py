"""Tokenize context: canonicalization + HMAC and the identifier quality rules (pure), the /tokenize
route, the client port."""

from __future__ import annotations

from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers, canonical_string, patient_token
from exchange.tokenize._client import HttpTokenizer, InProcessTokenizer, Tokenizer, TokenSet, token_set
from exchange.tokenize._quality import EARLIEST_DOB, dob_problem
from exchange.tokenize._routes import tokenize_routes

__all__ = (
    "EARLIEST_DOB",
    "HttpTokenizer",
    "InProcessTokenizer",
    "InvalidIdentifiers",
    "PatientIdentifiers",
    "TokenSet",
    "Tokenizer",
    "canonical_string",
    "dob_problem",
    "patient_token",
    "token_set",
    "tokenize_routes",
)
