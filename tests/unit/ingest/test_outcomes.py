"""Each ingest answer's outcome label, from the error the route raised (the exception handlers
turn the same errors into the statuses named here)."""

from __future__ import annotations

import pytest
from litestar.exceptions import MethodNotAllowedException

from exchange.errors import (
    DatabaseUnavailable,
    DuplicateKeyConflict,
    Forbidden,
    InvalidRequest,
    ObjectStoreUnavailable,
    Unauthorized,
    ValidationFailed,
)
from exchange.ingest._routes import _outcome_of


@pytest.mark.parametrize(("error", "outcome"), [
    (DuplicateKeyConflict(), "conflict"),                                    # 409
    (ValidationFailed("patient.dob: required", field="patient.dob"), "rejected"),  # 400
    (InvalidRequest("too large", status=413, type_slug="body-too-large"), "rejected"),
    (Unauthorized(), "rejected"),                                            # 401
    (Forbidden(), "rejected"),                                               # 403
    (MethodNotAllowedException(), "rejected"),                               # 405
    (DatabaseUnavailable(), "unavailable"),                                  # 503
    (ObjectStoreUnavailable(), "unavailable"),
    (RuntimeError("a bug"), "error"),                                        # 500
])
def test_an_error_maps_to_the_outcome_of_its_status(error: Exception, outcome: str) -> None:
    assert _outcome_of(error) == outcome
