from __future__ import annotations

import pytest

from exchange.console._guard import safe_next


@pytest.mark.parametrize("target", ["/console/dlq?stage=fetch", "/console/jobs/abc", "/console/"])
def test_the_login_returns_to_a_console_page(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize("target", [None, "", "https://elsewhere.example/console/", "//elsewhere.example/console/",
                                    "/admin/dlq", "/console", "/console/\\\\elsewhere", "/console/" + "x" * 600])
def test_the_login_never_sends_elsewhere(target: str | None) -> None:
    assert safe_next(target) == "/console/"
