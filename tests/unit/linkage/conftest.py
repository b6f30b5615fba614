from __future__ import annotations

import pytest

from exchange.linkage import LinkageToken, Model
from tests.unit.linkage.population import fitted, records, tokens_of


@pytest.fixture(scope="session")
def population_tokens() -> dict[str, list[LinkageToken]]:
    return tokens_of(records(3000, seed=7))


@pytest.fixture(scope="session")
def model(population_tokens: dict[str, list[LinkageToken]]) -> Model:
    """Fitted once on a synthetic population with common names and dobs."""
    return fitted(population_tokens)
