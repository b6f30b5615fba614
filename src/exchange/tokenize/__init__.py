"""Tokenize context: canonicalization + HMAC (pure), the /tokenize route, the client port."""

from __future__ import annotations

from exchange.tokenize._canonical import InvalidIdentifiers, PatientIdentifiers, canonical_string, patient_token
from exchange.tokenize._client import HttpTokenizer, InProcessTokenizer, Tokenizer
from exchange.tokenize._routes import tokenize_routes

__all__ = (
    "HttpTokenizer",
    "InProcessTokenizer",
    "InvalidIdentifiers",
    "PatientIdentifiers",
    "Tokenizer",
    "canonical_string",
    "patient_token",
    "tokenize_routes",
)
