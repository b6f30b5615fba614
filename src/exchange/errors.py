"""The domain exception tree. Contexts raise these; ``ops.problems`` maps them to HTTP.

Messages are written for operators and never carry patient values or request bodies.
"""

from __future__ import annotations

__all__ = (
    "AuthError",
    "DependencyUnavailable",
    "DuplicateKeyConflict",
    "ExchangeError",
    "Forbidden",
    "InvalidRequest",
    "ObjectNotFound",
    "ObjectStoreUnavailable",
    "DatabaseUnavailable",
    "TokenizerUnavailable",
    "Unauthorized",
    "ValidationFailed",
)


class ExchangeError(Exception):
    """Base of every error the platform raises on purpose."""


class InvalidRequest(ExchangeError):
    """The client sent something we cannot accept (maps to a 4xx)."""

    def __init__(self, detail: str, *, status: int = 400, type_slug: str = "invalid-request") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.type_slug = type_slug


class ValidationFailed(InvalidRequest):
    """A body or header failed validation; ``field`` is the path, never the value."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, status=400, type_slug="validation-error")
        self.field = field


class DuplicateKeyConflict(InvalidRequest):
    """The Idempotency-Key was used before with a different body."""

    def __init__(self) -> None:
        super().__init__(
            "Idempotency-Key was already used with a different request body",
            status=409,
            type_slug="idempotency-conflict",
        )


class AuthError(ExchangeError):
    """Authentication or authorization failed."""

    status = 401
    type_slug = "unauthorized"


class Unauthorized(AuthError):
    status = 401
    type_slug = "unauthorized"


class Forbidden(AuthError):
    status = 403
    type_slug = "forbidden"


class DependencyUnavailable(ExchangeError):
    """A backing service (database, object store, tokenizer, Kafka) cannot be reached."""

    dependency = "dependency"


class DatabaseUnavailable(DependencyUnavailable):
    dependency = "database"


class ObjectStoreUnavailable(DependencyUnavailable):
    dependency = "object_store"


class TokenizerUnavailable(DependencyUnavailable):
    dependency = "tokenizer"


class ObjectNotFound(ExchangeError):
    """The object store has no object under the key."""
