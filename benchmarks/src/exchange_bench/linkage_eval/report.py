"""What the evaluation reports: counts and pairwise scores from what the service answered, and
a short markdown table of them.

Records are scored under their Febrl rec_ids (the truth's names), through the record_id each
202 gave. Seed tokens and persons come from the same run: the baseline and the resolution are
measured on the same records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from exchange_bench.linkage_eval.dataset import Febrl4
from exchange_bench.linkage_eval.ingest import Answer
from exchange_bench.pairs import score

__all__ = ("counts", "markdown", "scores")

_SHOWN_DISAGREEMENTS = 20


def counts(data: Febrl4, answers: Mapping[str, Answer]) -> dict[str, Any]:
    """What was sent, accepted and refused, and whether the service refused what the mapping does."""
    by_mapping = {r.rec_id for r in data.records if r.refusal is not None}
    by_service = {key for key, answer in answers.items() if answer.status == 400}
    disagree = sorted(by_mapping ^ by_service)
    return {
        "sent": len(answers),
        "accepted": sum(answer.status == 202 for answer in answers.values()),
        "refused_by_service": len(by_service),
        "refused_by_mapping": len(by_mapping),
        "refused_by_mapping_reasons": dict(Counter(r.refusal for r in data.records if r.refusal is not None)),
        "refusal_disagreements": len(disagree),
        "refusal_disagreements_first": disagree[:_SHOWN_DISAGREEMENTS],
        "other_statuses": {str(s): n for s, n in sorted(Counter(
            a.status for a in answers.values() if a.status not in (202, 400)).items())},
        "true_pairs": len(data.truth),
        "admitted_pairs": len(data.admitted_truth),
    }


def scores(data: Febrl4, answers: Mapping[str, Answer], clusters: Mapping[str, str | None]) -> dict[str, Any]:
    """Pairwise scores of ``clusters`` (record_id -> seed token or person id, as read back)."""
    key_of = {answer.record_id: key for key, answer in answers.items() if answer.record_id is not None}
    by_key = {key_of[record_id]: cluster for record_id, cluster in clusters.items() if cluster is not None}
    return score(by_key, data.truth, data.admitted_truth)


def _cell(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(results: Mapping[str, Any]) -> str:
    """The scores side by side, then the counts and times in a few lines."""
    rows = ["| linked by | recall, admitted pairs | recall, all pairs | precision | F1, admitted | F1, all |",
            "|---|---|---|---|---|---|"]
    for key, label in (("seed_token", "seed token (equal patient_token)"), ("persons", "persons (equal person_id)"),
                       ("persons_after_rederive", "persons after `exchange derive persons`")):
        got = results.get(key)
        cells = [_cell(None)] * 5 if got is None else [
            _cell(got[k]) for k in ("recall_admitted", "recall_all", "precision", "f1_admitted", "f1_all")]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    c, t = results["counts"], results["times"]
    rederive = "n/a" if t["rederive_s"] is None else f"{t['rederive_s']:.1f} s"
    return "\n".join([
        *rows, "",
        f"Records: {c['sent']:,} sent, {c['accepted']:,} accepted, {c['refused_by_service']:,} refused by the service "
        f"({c['refused_by_mapping']:,} by the mapping, {c['refusal_disagreements']} disagreements), "
        f"{c['dead_lettered']:,} dead-lettered, {c['read_back']:,} read back. True pairs {c['true_pairs']:,}, "
        f"{c['admitted_pairs']:,} with both records admitted.",
        f"Run: {t['records_per_s']:,.0f} records/s ({c['accepted']:,} records in {t['run_s']:.1f} s, first request "
        f"to last canonical row); re-resolution of persons: {rederive}.",
    ])
