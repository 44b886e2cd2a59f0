"""Rank fidelity: does a trial's short-training error order candidates as their exports' errors do?

Every strategy ranks candidates by the dev error after a short distillation (the trial: 30 steps
on the reviews table, `search_efficiency.py`), but the user gets the candidate after the
export's training (1500 steps of the same distillation). For 12 candidates spread over
`search_spaces/minilm_bench.yaml` (a Latin square: each depth meets each width once, and the
FFN widths and head counts are balanced across them) this

1. exports each one as `bortnas export --trial N` does (`bortnas.export.writer.export_trial`, in
   one process so that the teacher's outputs are computed once, `TeacherCache`) and keeps its
   dev and test error;
2. scores each one again under other trial recipes (`STEPS[:LR]`, the search's
   `--trial-steps` and `--lr`), the way a trial does (`score_candidate`);
3. prints Kendall's tau-b between each predictor and the exported dev error: the table's own
   trial errors, each recipe's, and LiteTransformerSearch's zero-cost proxy (more
   non-embedding parameters, lower error). tau = 1 is the exports' order; 0 is no better than chance;
4. and, for the errors of each recipe and of the exports, how often a pair of the 12 breaks the
   ordering the FPTAS rests on (the larger candidate has the larger error,
   `search_efficiency.order_violations`): whether longer training makes the ordering truer.

Results are written to the JSON after every model, and a rerun skips what it holds.

    python benchmarks/rank_fidelity.py --json benchmarks/results/rank_fidelity.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_efficiency import order_violations  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Each (layers, hidden) pair once; FFN widths 4 x 192, 4 x 768, 4 x 1536; heads 6 x 6, 6 x 12.
CANDIDATES = (
    "L1-H96-A6-I1536",
    "L1-H192-A12-I768",
    "L1-H384-A6-I192",
    "L2-H96-A12-I192",
    "L2-H192-A6-I1536",
    "L2-H384-A12-I768",
    "L3-H96-A6-I768",
    "L3-H192-A12-I192",
    "L3-H384-A6-I1536",
    "L4-H96-A12-I1536",
    "L4-H192-A6-I768",
    "L4-H384-A12-I192",
)
DEFAULT_RECIPES = ("60", "90", "200", "30:1e-3", "90:1e-3")  # 60: the search's default


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A trial recipe: distillation steps and learning rate (None: the study's)."""

    steps: int
    lr: float | None = None

    @classmethod
    def parse(cls, text: str) -> Recipe:
        steps, _, lr = text.partition(":")
        try:
            recipe = cls(int(steps), float(lr) if lr else None)
        except ValueError:
            raise SystemExit(f"recipe {text!r}: expected STEPS or STEPS:LR, e.g. 90 or 30:1e-3") from None
        if recipe.steps <= 0 or (recipe.lr is not None and not recipe.lr > 0):
            raise SystemExit(f"recipe {text!r}: steps and learning rate must be positive")
        return recipe

    @property
    def name(self) -> str:
        return f"{self.steps} steps" + (f", lr {self.lr:g}" if self.lr is not None else "")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two paired samples: (concordant - discordant) pairs over the geometric
    mean of the pairs untied in x and untied in y, so that ties (candidates a short trial leaves
    at the same majority-class error) count as no evidence rather than as agreement."""
    if len(x) != len(y):
        raise ValueError("paired samples of different lengths")
    concordant = discordant = untied_x = untied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            untied_x += dx != 0
            untied_y += dy != 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return (concordant - discordant) / math.sqrt(untied_x * untied_y)


def trial_errors(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each trial recipe's dev errors by candidate, the table's own first."""
    return {
        f"table's trial ({results['table_recipe']})": results["table_errors"],
        **{f"trial, {name}": errors for name, errors in results["trials"].items()},
    }


def taus(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """tau-b of every predictor against the exported dev error, over the candidates all of them cover."""
    exported = results["exports"]
    predictors = {
        "zero-cost proxy (non-embedding parameters)": {k: -v["params_non_embedding"] for k, v in exported.items()},
        **trial_errors(results),
    }
    report = {}
    for name, errors in predictors.items():
        keys = [k for k in CANDIDATES if k in exported and k in errors]
        if len(keys) < 2:
            continue
        dev = [exported[k]["dev_error"] for k in keys]
        best = min(keys, key=lambda k: errors[k])
        report[name] = {
            "tau_dev": kendall_tau_b([errors[k] for k in keys], dev),
            "tau_test": kendall_tau_b([errors[k] for k in keys], [exported[k]["test_error"] for k in keys]),
            "candidates": len(keys),
            "ties": sum(1 for i, a in enumerate(keys) for b in keys[i + 1 :] if errors[a] == errors[b]),
            "top_pick": best,
            "top_pick_export_dev_error": exported[best]["dev_error"],
        }
    return report


def violations(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The FPTAS ordering's violations among the candidates, under each recipe's errors and the exports'."""
    errors_by = {
        **trial_errors(results),
        f"export ({results['export_steps']} steps)": {k: v["dev_error"] for k, v in results["exports"].items()},
    }
    report = {}
    for name, errors in errors_by.items():
        keys = [k for k in CANDIDATES if k in errors and k in results["order_keys"]]
        report[name] = {**order_violations([(tuple(results["order_keys"][k]), errors[k]) for k in keys]), "candidates": len(keys)}
    return report


def print_report(results: dict[str, Any]) -> None:
    exported = results["exports"]
    print(f"exported dev error after {results['export_steps']} steps, best {min(v['dev_error'] for v in exported.values()):.4f}")
    print(f"{'predictor':<46} {'tau (dev)':>9} {'tau (test)':>10} {'ties':>5}  top pick (its export's dev error)")
    for name, row in taus(results).items():
        print(
            f"{name:<46} {row['tau_dev']:>9.3f} {row['tau_test']:>10.3f} {row['ties']:>5}  "
            f"{row['top_pick']} ({row['top_pick_export_dev_error']:.4f})"
        )
    print(f"{'errors of':<46} {'pairs breaking the ordering':>28} {'mean excess':>12} {'max excess':>11}")
    for name, row in violations(results).items():
        print(f"{name:<46} {row['share']:>28.1%} {row['mean_excess']:>12.3f} {row['max_excess']:>11.3f}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bortnas.core.finetuning import DEFAULT_STEPS
    from bortnas.export.writer import export_trial
    from bortnas.search.fptas_sampler import ordering
    from bortnas.search.records import load_records
    from bortnas.search.study import latency_table, open_study
    from bortnas.trial.context import build_context
    from bortnas.trial.scoring import Reference, score_candidate

    study, space, settings = open_study(args.storage, args.study)
    trials = {r.spec.key.removesuffix("-fp32"): r for r in load_records(study) if r.scored and r.spec is not None}
    missing = [k for k in CANDIDATES if k not in trials]
    if missing:
        raise SystemExit(f"{args.study} has no scored trial of {', '.join(missing)}")
    results: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    results.update(
        study=args.study,
        table_recipe=f"{settings.trial_steps} steps",
        export_steps=args.steps or DEFAULT_STEPS["distil"],
        table_errors={k: 1.0 - trials[k].attrs["dev_score"] for k in CANDIDATES},
    )
    results.setdefault("exports", {})
    results.setdefault("trials", {})

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))

    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ctx = build_context(settings)
    size = ordering(ctx.shape, settings.max_length)  # the product's: p, then the teacher's head size, then i
    results["order_keys"] = {k: list(size(spec)) for k in CANDIDATES if (spec := trials[k].spec) is not None}
    for k in CANDIDATES:
        if k in results["exports"]:
            continue
        started = time.perf_counter()
        out = args.out_dir / k
        report = export_trial(ctx, study, frozen[trials[k].number], out, results["export_steps"], overwrite=True)
        results["exports"][k] = {
            "trial": trials[k].number,
            "dev_error": report.model.error,
            "test_error": 1.0 - (report.model.test_score or 0.0),
            "params_non_embedding": report.model.params_non_embedding,
            "seconds": time.perf_counter() - started,
        }
        shutil.rmtree(out)  # the figures are kept; the weights are not needed
        save()
        print(f"export {k}: dev error {report.model.error:.4f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    reference = Reference.of(space.maximum_point, ctx.shape, settings.max_length, latency_table(study), settings.cost)
    for recipe in map(Recipe.parse, args.recipes):
        errors = results["trials"].setdefault(recipe.name, {})
        variant = dataclasses.replace(ctx, settings=dataclasses.replace(settings, lr=recipe.lr)) if recipe.lr is not None else ctx
        for k in CANDIDATES:
            if k in errors:
                continue
            spec = trials[k].spec
            assert spec is not None
            errors[k] = score_candidate(variant, spec, reference, recipe.steps, settings.seed).error
            save()
            print(f"trial {k} ({recipe.name}): dev error {errors[k]:.4f}", file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=f"sqlite:///{RESULTS / 'bench.db'}", help="the table (search_efficiency.py build)")
    parser.add_argument("--study", default="minilm_bench")
    parser.add_argument("--steps", type=int, default=None, help="export steps (default: the export's, 1500)")
    parser.add_argument("--recipes", nargs="*", default=list(DEFAULT_RECIPES), help="trial recipes STEPS[:LR] to score too")
    parser.add_argument("--json", type=Path, default=RESULTS / "rank_fidelity.json")
    parser.add_argument("--out-dir", type=Path, default=REPO / "out" / "rank_fidelity", help="where each export is written, then removed")
    parser.add_argument("--report-only", action="store_true", help="print the JSON's figures; train nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        print_report(json.loads(args.json.read_text()))
        return
    logging.basicConfig(level=logging.INFO, format="[bortnas] %(message)s")
    print_report(run(args))


if __name__ == "__main__":
    main()
