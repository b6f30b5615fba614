"""HTTP glue shared by every context's routes: auth hook, middleware, problem+json."""

from __future__ import annotations

from exchange.web.auth import authenticated, principal_of
from exchange.web.middleware import RequestContextMiddleware, acceptable_correlation_id
from exchange.web.openapi import Problem, problem_responses
from exchange.web.problems import PROBLEM_JSON, exception_handlers, problem_response
from exchange.web.validation import BIGINT_MAX, NO_NUL

__all__ = (
    "BIGINT_MAX",
    "NO_NUL",
    "PROBLEM_JSON",
    "Problem",
    "RequestContextMiddleware",
    "authenticated",
    "acceptable_correlation_id",
    "exception_handlers",
    "principal_of",
    "problem_response",
    "problem_responses",
)
