"""The load process's answers file, read while it is written (``AnswerLog.refresh``) and judged
at the end: which keys were accepted and as what record, every other answer's form."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ("AnswerLog",)


def _is_problem(line: dict[str, Any]) -> bool:
    """A problem+json answer: the content type and a body with the RFC 9457 members."""
    if not line["ct"].startswith("application/problem+json"):
        return False
    try:
        body = json.loads(line.get("body") or "")
    except ValueError:
        return False
    return isinstance(body, dict) and {"type", "title", "status"} <= set(body) and body["status"] == line["status"]


@dataclass
class AnswerLog:
    path: Path
    accepted: dict[str, str] = field(default_factory=dict)
    """Idempotency-Key -> record id of its (first) 202."""
    accepted_at: dict[str, float] = field(default_factory=dict)
    """Record id -> epoch seconds of its first 202."""
    statuses: Counter[int] = field(default_factory=Counter)
    attempts: int = 0
    retries: int = 0
    keys: set[str] = field(default_factory=set)
    conflicting: set[str] = field(default_factory=set)
    """Keys answered 202 with two different record ids: the idempotency promise broken."""
    not_problem: list[dict[str, Any]] = field(default_factory=list)
    """Answers other than 202 (and other than no answer at all) that are not problem+json."""
    final: dict[str, int] = field(default_factory=dict)
    """Key -> status of its last answer so far."""
    bodies: list[str] = field(default_factory=list)
    """Every answer body other than a 202's: the privacy sweep searches them."""
    _offset: int = 0

    def refresh(self) -> None:
        """Read what the load process appended since the last call (whole lines only)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for raw in data[:end].splitlines():
            self._take(json.loads(raw))

    def _take(self, line: dict[str, Any]) -> None:
        key, status = line["key"], line["status"]
        self.attempts += 1
        if line["attempt"] > 1:
            self.retries += 1
        self.keys.add(key)
        self.statuses[status] += 1
        self.final[key] = status
        if status == 202:
            record_id = line["record_id"]
            if self.accepted.setdefault(key, record_id) != record_id:
                self.conflicting.add(key)
            self.accepted_at.setdefault(record_id, line["t"])
        elif status > 0:
            self.bodies.append(line.get("body") or "")
            if not _is_problem(line):
                self.not_problem.append(line)

    def unanswered(self) -> list[str]:
        """Keys whose last answer is not final (the client was still retrying when it stopped)."""
        return sorted(k for k, s in self.final.items() if s in (503, 0, -1))

    def summary(self) -> dict[str, Any]:
        return {
            "keys": len(self.keys), "accepted": len(self.accepted), "attempts": self.attempts,
            "retries": self.retries, "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "server_errors_other_than_503": sum(n for s, n in self.statuses.items() if s >= 500 and s != 503),
            "non_202_not_problem_json": len(self.not_problem), "keys_with_two_record_ids": len(self.conflicting),
            "never_accepted": len(self.keys) - len(self.accepted),
        }
