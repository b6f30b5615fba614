from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gotokenizer import GoTokenizer, build

VECTOR_KEY = b"exchange-test-vector-key-0123456789"


@pytest.fixture(scope="session")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The original rules compiled by Go itself (tests/support/gotokenizer/main.go)."""
    binary = build(tmp_path_factory.mktemp("gotokenizer"))
    if binary is None:
        pytest.skip("no Go toolchain on PATH: the comparison with Go's own rules needs `go`")
    return binary


@pytest.fixture(scope="session")
def go_tokenizer(go_binary: Path) -> Iterator[GoTokenizer]:
    tokenizer = GoTokenizer.start(go_binary, VECTOR_KEY)
    yield tokenizer
    tokenizer.close()
