"""The chaos run's markdown table: what was sent, what was broken, what the checker found."""

from __future__ import annotations

from typing import Any

__all__ = ("markdown",)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(results: dict[str, Any]) -> str:
    ingests, check, during = results["ingests"], results["check"], results["during_run"]
    rec, dlq, privacy = results["reconcile"], results["dlq"], results["privacy"]
    faults = ", ".join(f"{k} x{n}" for k, n in results["faults"]["by_kind"].items())
    lines = [
        f"### Chaos run {results['run_id']} ({results['measured_at']})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| records sent / accepted (202) | {ingests['keys']:,} / {ingests['accepted']:,} |",
        f"| requests / retries | {ingests['attempts']:,} / {ingests['retries']:,} |",
        f"| answers by status | {', '.join(f'{s}: {n:,}' for s, n in ingests['statuses'].items())} |",
        f"| 5xx other than 503 / non-202 not problem+json | {ingests['server_errors_other_than_503']} / "
        f"{ingests['non_202_not_problem_json']} |",
        f"| faults | {results['faults']['total']} ({faults}) |",
        f"| lost at some moment during the run (sampled, no repair) | {during['lost_at_some_moment']} "
        f"({during['samples']} samples, {during['samples_skipped']} skipped) |",
        f"| lost / duplicated at the end | {check['lost']} / {check['duplicated']} |",
        f"| canonical rows without their raw object | {check['canonical_without_raw']} |",
        f"| DLQ entries (reprocessed) | {dlq['entries']} ({dlq['reprocessed']}) {dlq['by_cause'] or ''} |",
        f"| orphans found / quarantined by reconcile --repair; clean after | {rec['orphans_found']} / "
        f"{rec['quarantined']}; {rec['clean_after_repair']} |",
        f"| canary hits outside raw storage ({privacy['places_searched']} places, "
        f"{privacy['bytes_searched'] / 1e6:.1f} MB) | {privacy['hits']} |",
        "",
        "| fault | times | recovery, each (s) | max (s) |",
        "|---|---|---|---|",
    ]
    for kind, r in sorted(results["recovery_s"].items()):
        each = ", ".join(_seconds(v) for v in r["each_s"])
        lines.append(f"| {kind} | {r['count']} | {each} | {_seconds(r['max_s'])} |")
    return "\n".join(lines)
