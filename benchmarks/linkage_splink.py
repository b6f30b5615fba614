"""splink on linkage tokens alone (research; splink is not a project dependency).

    uv run --with splink==5.0.0 python benchmarks/linkage_splink.py

The admitted Febrl4 records become one row each: a column per recipe holding that record's
tokens (an array; NULL when the recipe yields none). Two splink models, both with u from
splink's random sampling and m from its EM (blocked on SSN, on given name + dob, and on
family name + dob), prediction blocked on every recipe, clusters at match probability 0.99:

- per recipe: one comparison per recipe (tokens shared or not), splink's natural use of
  token columns; recipes sharing fields count the same evidence more than once;
- per field: one comparison per field whose levels are our certified levels (EXACT when an
  agreeing recipe certifies it, CLOSE likewise, else DIFFERENT), as exchange.linkage scores.

Writes benchmarks/results/linkage-splink.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import splink.comparison_level_library as cll
from splink import Linker, SettingsCreator, block_on
from splink.internals.comparison_creator import ComparisonCreator  # noqa: F401 - splink 5 keeps it internal
from splink.internals.duckdb.database_api import DuckDBAPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linkage_offline import load, score, tokenize

from exchange.linkage import FIELDS, RECIPES, Level

RESULTS = Path(__file__).resolve().parent / "results" / "linkage-splink.json"
SCALAR = ("ssn", "given+dob", "family+dob")


def column(recipe_id: str) -> str:
    return "t_" + "".join(ch if ch.isalnum() else "_" for ch in recipe_id)


def frame(records: list[Any]) -> pd.DataFrame:
    tokens = tokenize(records, RECIPES)
    rows = []
    for r in records:
        row: dict[str, Any] = {"unique_id": r.record_id}
        by_recipe: dict[str, list[str]] = {}
        for t in tokens[r.record_id]:
            by_recipe.setdefault(t.recipe, []).append(t.token)
        for rec in RECIPES:
            row[column(rec.id)] = sorted(by_recipe[rec.id]) if rec.id in by_recipe else None
        for rid in SCALAR:  # one token per record: a plain column too, for splink's EM blocking
            row["s" + column(rid)] = by_recipe[rid][0] if rid in by_recipe else None
        rows.append(row)
    return pd.DataFrame(rows)


def overlap(recipe_id: str) -> str:
    c = column(recipe_id)
    return f"len(list_intersect({c}_l, {c}_r)) > 0"


def per_recipe_comparisons() -> list[dict[str, Any]]:
    out = []
    for rec in RECIPES:
        c = column(rec.id)
        out.append({
            "output_column_name": c,
            "comparison_levels": [
                cll.NullLevel(c).get_comparison_level("duckdb").as_dict(),
                {"sql_condition": overlap(rec.id), "label_for_charts": "shared"},
                cll.ElseLevel().get_comparison_level("duckdb").as_dict(),
            ],
        })
    return out


def per_field_comparisons() -> list[dict[str, Any]]:
    out = []
    for f in FIELDS:
        def certifying(level: Level, f: Any = f) -> str:
            ids = [r.id for r in RECIPES if any(cf == f and cl <= level for cf, cl in r.certifies)]
            return "(" + " OR ".join(f"coalesce({overlap(i)}, false)" for i in ids) + ")"
        present = [column(r.id) for r in RECIPES if any(cf == f for cf, _ in r.certifies)]
        missing = " OR ".join(f"({' AND '.join(f'{c}_{side} IS NULL' for c in present)})" for side in ("l", "r"))
        out.append({
            "output_column_name": f"field_{f.value}",
            "comparison_levels": [
                {"sql_condition": missing, "label_for_charts": "missing", "is_null_level": True},
                {"sql_condition": certifying(Level.EXACT), "label_for_charts": "exact"},
                {"sql_condition": certifying(Level.CLOSE), "label_for_charts": "close"},
                {"sql_condition": "ELSE", "label_for_charts": "different"},
            ],
        })
    return out


def run(name: str, comparisons: list[dict[str, Any]], df: pd.DataFrame, admitted: list[Any],
        records: list[Any]) -> dict[str, Any]:
    started = time.perf_counter()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[
            block_on(column(r.id), arrays_to_explode=[column(r.id)]) for r in RECIPES
        ],
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(df), settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("s" + column("ssn"))], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6)
    for rid in SCALAR:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("s" + column(rid)))
    predictions = linker.inference.predict(threshold_match_probability=0.99)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.99).as_pandas_dataframe()
    person = dict(zip(clusters["unique_id"], clusters["cluster_id"], strict=True))
    result = score(admitted, person, records)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"  splink, {name}: {json.dumps(result)}", file=sys.stderr)
    return result


def main() -> None:
    records = load("febrl4")
    admitted = [r for r in records if r.patient is not None]
    df = frame(admitted)
    report = {
        "dataset": "febrl4",
        "per recipe": run("per recipe", per_recipe_comparisons(), df, admitted, records),
        "per field (certified levels)": run("per field", per_field_comparisons(), df, admitted, records),
    }
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
