"""The folder tree is the architecture: pin its rules so they cannot drift."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "exchange"
CONTEXTS = {"ingest", "outbox", "tokenize", "linkage", "normalize", "replay", "query", "admin"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def _context_of(path: Path) -> str | None:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 and parts[0] in CONTEXTS else None


def test_contexts_use_each_other_only_through_their_public_surface() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        own = _context_of(path)
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) >= 3 and parts[0] == "exchange" and parts[1] in CONTEXTS and parts[1] != own:
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_only_the_kafka_adapter_imports_confluent_kafka() -> None:
    importers = {
        str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if any(n.startswith("confluent_kafka") for n in _imports(p))
    }
    assert importers == {"adapters/kafka.py"}


def test_the_domain_core_does_no_io() -> None:
    pure = [
        SRC / "tokenize" / "_canonical.py", SRC / "normalize" / "_offsets.py", SRC / "events" / "record_ingested.py",
        *sorted((SRC / "linkage").glob("*.py")),
    ]
    for path in pure:
        for name in _imports(path):
            assert not name.startswith(("asyncpg", "confluent_kafka", "aiobotocore", "httpx", "exchange.adapters")), (
                f"{path.name} imports {name}"
            )


def test_no_module_reads_the_environment_except_the_cli() -> None:
    def reads_env(path: Path) -> bool:
        return any(
            isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
            and isinstance(node.value, ast.Name) and node.value.id == "os"
            for node in ast.walk(ast.parse(path.read_text()))
        )

    readers = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if reads_env(p)}
    # The CLI is the process edge; the benchmark runner passes the environment on to the
    # server processes it starts, and its floor and core load processes are edges too.
    assert readers <= {"cli.py", "bench/runner.py", "bench/floor.py", "bench/core.py"}


def _sql_strings(path: Path) -> list[str]:
    """String constants that are values (docstrings, bare expression statements, are not)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_sql_leaves_session_state_on_a_pooled_connection() -> None:
    # The pool skips asyncpg's reset query on release (adapters/postgres.py: keep_session);
    # that is only safe while nothing sets session state a later borrower would inherit.
    import re

    session_state = re.compile(
        r"(^|;)\s*(SET|RESET|LISTEN|DECLARE|PREPARE|CREATE\s+TEMP)\s|set_config\s*\(|pg_advisory_lock\s*\(|"
        r"pg_advisory_lock_shared\s*\(",
        re.IGNORECASE,
    )
    offenders = [f"{path.relative_to(SRC)}: {text.strip()[:60]!r}" for path in SRC.rglob("*.py")
                 for text in _sql_strings(path) if session_state.search(text)]
    assert offenders == []
