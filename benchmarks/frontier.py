"""The accuracy / CPU-latency frontier: bortnas's exported models against what a user would do otherwise.

Not a test: it measures and prints. On one task (the Rotten Tomatoes reviews by default, any
`--data` file), every trained student is distilled from the same task teacher with the same recipe
(`bortnas.trial.recipe.distil_student`: KD + cross-entropy + hidden-state loss) for the same
`--steps`:

- bortnas: for each speed-up k of `--speedups`, the budget is the task teacher's batch-1 latency
  / k; `bortnas.search` (FPTAS over `--space`) and `bortnas.export`, both with the budget
  `Budget(min_speedup=k)` (the CLI's `--min-speedup k`), run in this process, and the exported
  directory is loaded back;
- first-k: the teacher's first k layers at full width (hidden, heads and FFN of the teacher);
- spread-k: k layers spread evenly over the teacher's depth, first and last included
  (DistilBERT-style initialisation); spread-1 is first-1 and is not trained twice;
- scratch: every exported bortnas shape, from random initialisation;
- int8: dynamic int8 quantization of the task teacher's linear layers (torch.ao's
  `quantize_dynamic`, the deprecated path; no training);
- teacher: the task teacher itself.

A fair recipe for every trained baseline: its learning rate (and, from scratch, its optimizer)
is chosen on the dev split by a `--sweep-steps` sweep, then it trains the full `--steps`. The
truncations sweep AdamW over `--lrs`; the scratch students AdamW over `--scratch-lrs` (around
bortnas's scratch default of 1e-3) and SGD with momentum over `--scratch-sgd-lrs` (Bort's
optimizer). bortnas's own rows keep the settings' learning rate, as `bortnas export` does. A row
whose test predictions are all one class is reported as broken, not as beaten.

Latency is CPU, `--threads` thread(s), batch 1 and 32 at the task's `--max-length`, every model
measured round after round in turn (interleaved), median over rounds. Prints the table and,
per budget, whether bortnas's model beats every working baseline that fits the budget; writes
JSON and a PNG of test accuracy against batch-1 latency with each method's Pareto front.

    python benchmarks/frontier.py --out out/frontier
    python benchmarks/frontier.py --quick  # ~20 min on 2 CPU cores: checks the command, measures nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
import torch
import transformers
from search_options import log_like_cli  # type: ignore[import-not-found]

from bortnas import FPTAS, Budget, Distil, Execution, export, load, search
from bortnas.core.errors import BortnasError, TrialFailed, UserInputError
from bortnas.core.settings import RunSettings, TrainConfig
from bortnas.core.space import ArchSpec
from bortnas.cost import param_count
from bortnas.runtime.latency import measure_latency
from bortnas.train.loop import evaluate, predict
from bortnas.trial.context import Context, build_context, default_cache_dir
from bortnas.trial.recipe import distil_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel

REPO = Path(__file__).resolve().parents[1]
# 780 cuts of MiniLM, from the whole teacher to ~40x faster at 64 tokens (188 within 8x in a smoke run);
# minilm_quick's smallest candidate is only ~8x faster, so an 8x budget could find nothing there
DEFAULT_SPACE = REPO / "search_spaces" / "minilm_full.yaml"
METHODS = ("bortnas", "first-k", "spread-k", "scratch", "int8", "teacher")
INT8_NOTE = "torch.ao.quantization.quantize_dynamic (deprecated in torch 2.x in favour of torchao's quantize_)"
BATCH_SIZES = (1, 32)
Optimizer = Literal["adamw", "sgd"]
_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """A progress line on stderr with the seconds since start (the full run takes about an hour)."""
    print(f"[{time.perf_counter() - _STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# recipes: what a sweep chooses between


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The optimizer and learning rate a student trains with; everything else (warm-up, clipping, losses) is the shared recipe."""

    optimizer: Optimizer
    lr: float

    def describe(self) -> str:
        return f"{self.optimizer} {self.lr:g}"


@dataclasses.dataclass(frozen=True)
class _OptimizerSettings(RunSettings):
    """Run settings whose students train with `optimizer`: `RunSettings` trains every student with
    AdamW, and the scratch sweep also tries Bort's SGD. Every other part of the student
    configuration (clipping from scratch, warm-up, losses) is the settings' own."""

    optimizer: Optimizer = "adamw"

    def student_train_config(self, *args: Any, **kwargs: Any) -> TrainConfig:
        return dataclasses.replace(super().student_train_config(*args, **kwargs), optimizer=self.optimizer)


def with_recipe(ctx: Context, recipe: Recipe, init: Literal["inherit", "scratch"]) -> Context:
    """`ctx` whose students start as `init` and train with `recipe`; the teacher and data are shared."""
    fields = {**dataclasses.asdict(ctx.settings), "init": init, "lr": recipe.lr}
    return dataclasses.replace(ctx, settings=_OptimizerSettings(**fields, optimizer=recipe.optimizer))


# ---------------------------------------------------------------------------------------------
# rows


@dataclasses.dataclass
class Row:
    """One model of the frontier: how it was made, its accuracy and, once measured, its latency."""

    method: str
    label: str
    spec: ArchSpec
    params: int
    dev_accuracy: float
    test_accuracy: float
    predicted_classes: int  # distinct labels among its test predictions; 1 = broken
    steps: int = 0
    recipe: Recipe | None = None
    teacher_layers: tuple[int, ...] | None = None
    budget_ms: float | None = None  # bortnas rows: the latency budget of its search and export
    speedup_target: float | None = None
    sweep: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    recorded: dict[str, Any] | None = None  # bortnas rows: what `bortnas export` recorded
    latency_ms: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)  # batch size -> median/min/max

    @property
    def broken(self) -> bool:
        return self.predicted_classes < 2

    def b1(self) -> float:
        return self.latency_ms[1]["median"]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["spec"] = self.spec.key
        out["recipe"] = None if self.recipe is None else dataclasses.asdict(self.recipe)
        out["latency_ms"] = {str(b): v for b, v in self.latency_ms.items()}
        out["broken"] = self.broken
        return out


def score(model: PreTrainedModel, ctx: Context) -> tuple[float, float, int]:
    """(dev accuracy, test accuracy, distinct predicted test labels) of `model` on the context's splits."""
    dev = evaluate(model, ctx.dev, device=ctx.device).accuracy
    predictions = predict(model, ctx.test, device=ctx.device)
    labels = ctx.test.labels.tolist()
    test = sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)
    return dev, test, len(set(predictions))


def make_row(method: str, label: str, spec: ArchSpec, model: PreTrainedModel, ctx: Context, **fields: Any) -> Row:
    dev, test, classes = score(model, ctx)
    params = param_count(spec, ctx.shape).total
    return Row(method, label, spec, params, dev, test, classes, **fields)


# ---------------------------------------------------------------------------------------------
# bortnas through its API


def bortnas_row(ctx: Context, args: argparse.Namespace, speedup: float, budget_ms: float) -> tuple[Row, PreTrainedModel]:
    """Search and export under `budget_ms` with `bortnas.search` and `bortnas.export`, then load and score the exported model."""
    study = f"frontier_x{speedup:g}"
    storage = f"sqlite:///{(args.out / 'frontier.db').resolve()}"
    out = (args.out / f"bortnas_x{speedup:g}").resolve()
    # the budget as a speed-up: the search and the export compare each candidate with the teacher timed in the
    # same latency table, so the noise between this process's timing and the search's cancels
    budget = Budget(min_speedup=speedup)
    execution = Execution(device="cpu", cache_dir=args.cache_dir)
    started = time.perf_counter()
    progress(f"bortnas {speedup:g}x: search and export within {budget_ms:.2f} ms")
    # this run's settings, the teacher and data paths absolute as the CLI pins them
    paths = {name: str(Path(value).resolve()) for name in ("teacher", "data") if (value := getattr(args, name)) is not None}
    settings = dataclasses.replace(run_settings(args), budget=budget, **paths)
    try:
        searched = search(
            args.space,
            storage=storage,
            study=study,
            settings=settings,
            strategy=FPTAS(epsilon=args.epsilon, refine=args.fptas_refine),
            execution=execution,
        ).to_dict()
        report = export(study, out, storage=storage, budget=budget, finetune=Distil(steps=args.steps), overwrite=True, execution=execution)
    except BortnasError as e:
        raise SystemExit(f"frontier.py: bortnas {speedup:g}x: {e}") from None
    meta = json.loads((out / "bortnas.json").read_text())
    if meta["provenance"]["teacher_key"] != ctx.teacher.key:
        raise SystemExit(f"{out} was distilled from teacher {meta['provenance']['teacher_key']}, not this run's {ctx.teacher.key}")
    model = load(str(out))
    spec = ArchSpec.from_dict(meta["candidate"])
    training = meta["training"]
    table = optuna.load_study(study_name=study, storage=storage).user_attrs["latency_table"]
    recorded = {
        "search": searched,
        "study": study,
        "trial": report.trial,
        "candidate": report.spec.key,
        # the search's own view, measured before training in its process: what the budget was checked against
        "latency_table_ms": table["ms"][spec.key],
        "latency_table_teacher_ms": table["teacher_ms"],
        # the export's side-by-side re-timing (random weights, beside the teacher's shape): what the budget was applied to
        "latency_retimed_ms": (retimed := (meta.get("budget") or {}).get("retimed") or {}).get("ms", {}).get(spec.key),
        "latency_retimed_teacher_ms": retimed.get("teacher_ms"),
        "test_accuracy": report.model.test_score,
        "latency_ms": report.model.latency_ms,
        "teacher_test_accuracy": report.teacher.test_score,
        "seconds": time.perf_counter() - started,
    }
    row = make_row(
        "bortnas",
        f"bortnas {speedup:g}x",
        spec,
        model,
        ctx,
        steps=training["steps"],
        recipe=Recipe(training["optimizer"], training["lr"]),
        teacher_layers=tuple(training["teacher_layers"]),
        budget_ms=budget_ms,
        speedup_target=speedup,
        recorded=recorded,
    )
    return row, model


# ---------------------------------------------------------------------------------------------
# trained baselines


def truncation_layers(kind: str, k: int, depth: int) -> tuple[int, ...]:
    """Teacher layers of a k-layer truncation: the first k, or k spread evenly from the first layer to the last."""
    if kind == "first-k" or k == 1:
        return tuple(range(k))
    return tuple(int(i * (depth - 1) / (k - 1) + 0.5) for i in range(k))


def train_baseline(
    ctx: Context,
    method: str,
    label: str,
    spec: ArchSpec,
    recipes: Sequence[Recipe],
    init: Literal["inherit", "scratch"],
    args: argparse.Namespace,
    layers: tuple[int, ...] | None = None,
) -> tuple[Row, PreTrainedModel]:
    """Choose the recipe on dev (`--sweep-steps` each), then distil `spec` for `--steps` with it."""
    sweep: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], Recipe] | None = None
    for recipe in recipes:
        try:
            student, _, _ = distil_student(with_recipe(ctx, recipe, init), spec, args.sweep_steps, args.seed, layers=layers)
            dev = evaluate(student, ctx.dev, device=ctx.device)
        except TrialFailed as e:  # a rate that diverges is an outcome of the sweep, recorded with its reason
            sweep.append({**dataclasses.asdict(recipe), "dev_accuracy": None, "dev_loss": None, "failed": str(e)})
            continue
        sweep.append({**dataclasses.asdict(recipe), "dev_accuracy": dev.accuracy, "dev_loss": dev.loss})
        merit = (dev.accuracy, -dev.loss)  # ties in accuracy (short sweeps often stall at the majority rate) go to the lower loss
        if best is None or merit > best[0]:
            best = (merit, recipe)
    if best is None:
        raise SystemExit(f"{label}: every recipe of the sweep diverged: {sweep}")
    recipe = best[1]
    progress(
        f"{label}: the sweep chose {recipe.describe()} ({len(recipes)} recipes of {args.sweep_steps} steps); training {args.steps} steps"
    )
    student, extraction, _ = distil_student(with_recipe(ctx, recipe, init), spec, args.steps, args.seed, layers=layers)
    # the layers the student was cut from, as the recipe reports them (scratch students: the ones its hidden-state loss maps to)
    row = make_row(method, label, spec, student, ctx, steps=args.steps, recipe=recipe, teacher_layers=extraction.layers, sweep=sweep)
    return row, student


def int8_teacher(teacher: PreTrainedModel) -> PreTrainedModel:
    """A dynamically int8-quantized copy of `teacher` (weights int8, activations quantized per batch)."""
    with warnings.catch_warnings():
        # the deprecated torch.ao path is what this baseline measures; the table names it
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(teacher, {torch.nn.Linear}, dtype=torch.qint8)


# ---------------------------------------------------------------------------------------------
# latency, side by side


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def passes(batch_size: int, repeats: int) -> tuple[int, int]:
    """(warm-up, timed) passes per round: batch 32 gets a quarter of the repeats (each pass is ~20x longer)."""
    return (5, repeats) if batch_size == 1 else (2, max(3, repeats // 4))


def measure_side_by_side(models: Sequence[PreTrainedModel], seq_len: int, args: argparse.Namespace) -> list[dict[int, dict[str, float]]]:
    """Per model and batch size, the median (and range) over `--rounds` of each round's median latency.

    Every round measures every model in turn, so slow drift of a shared machine hits all alike.
    """
    samples: list[dict[int, list[float]]] = [{b: [] for b in BATCH_SIZES} for _ in models]
    for _ in range(args.rounds):
        for batch_size in BATCH_SIZES:
            warmup, repeats = passes(batch_size, args.repeats)
            for model, sample in zip(models, samples, strict=True):
                latency = measure_latency(model, seq_len, batch_size, repeats=repeats, warmup=warmup, threads=args.threads)
                sample[batch_size].append(latency.median_ms)
    return [{b: spread(values) for b, values in sample.items()} for sample in samples]


# ---------------------------------------------------------------------------------------------
# report


def pareto_front(rows: Sequence[Row]) -> list[Row]:
    """Rows no other row beats in both batch-1 latency and test accuracy, fastest first (broken rows excluded)."""
    front: list[Row] = []
    for row in sorted((r for r in rows if not r.broken), key=lambda r: (r.b1(), -r.test_accuracy)):
        if not front or row.test_accuracy > front[-1].test_accuracy:
            front.append(row)
    return front


def comparisons(rows: Sequence[Row], teacher: Row) -> list[dict[str, Any]]:
    """Per bortnas row: the baselines inside its budget and whether the bortnas model beats every working one."""
    out = []
    for row in (r for r in rows if r.method == "bortnas"):
        assert row.budget_ms is not None
        fitting = [r for r in rows if r.method != "bortnas" and r.b1() <= row.budget_ms]
        working = [r for r in fitting if not r.broken]
        best = max(working, key=lambda r: r.test_accuracy, default=None)
        if row.broken:
            verdict = "broken (one class)"
        elif best is None:
            verdict = "no working baseline fits the budget"
        elif row.test_accuracy > best.test_accuracy:
            verdict = "more accurate than every working baseline within the budget"
        elif row.test_accuracy == best.test_accuracy:
            verdict = f"as accurate as the best baseline within the budget, {best.label}"
        else:
            verdict = f"less accurate than {best.label} ({100 * (row.test_accuracy - best.test_accuracy):+.2f} points)"
        out.append(
            {
                "label": row.label,
                "budget_ms": row.budget_ms,
                "latency_b1_ms": row.b1(),
                "within_budget": row.b1() <= row.budget_ms,
                "latency_table_ms": (row.recorded or {}).get("latency_table_ms"),
                "retimed": (row.recorded or {}).get("latency_retimed_ms"),
                "broken": row.broken,
                "points_vs_teacher": 100 * (row.test_accuracy - teacher.test_accuracy),
                # None: no working baseline fits the budget, so there is nothing to beat
                "beats_every_working_baseline": (not row.broken and all(row.test_accuracy > r.test_accuracy for r in working))
                if working
                else None,
                "verdict": verdict,
                "baselines_within_budget": {r.label: r.test_accuracy for r in working},
                "broken_within_budget": [r.label for r in fitting if r.broken],
            }
        )
    return out


def print_report(report: dict[str, Any], rows: Sequence[Row], teacher: Row) -> None:
    env = report["environment"]
    print(
        f"frontier on {report['task']}: torch {env['torch']}, transformers {env['transformers']}, {env['cpu']} "
        f"({env['cpu_count']} CPUs), {env['platform']}{' (quick)' if report['quick'] else ''}"
    )
    print(
        f"teacher {report['teacher']['shape']} ({report['teacher']['dir']}); latency CPU, {report['latency']['threads']} thread(s), "
        f"{report['latency']['seq_len']} tokens, median of {report['latency']['rounds']} interleaved rounds; "
        f"every student distilled {report['steps']} steps; baseline recipes chosen on dev in {report['sweep_steps']}-step sweeps"
    )
    header = (
        f"{'model':<18} {'shape':<24} {'params':>11} {'test acc':>8} {'pts':>6} {'b1 ms':>8} {'x b1':>6} "
        f"{'b32 ms':>9} {'x b32':>6}  {'recipe':<12} note"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        notes = []
        if row.broken:
            notes.append("broken (one class)")
        if row.method == "int8":
            notes.append("deprecated torch.ao path")
        if row.budget_ms is not None:
            notes.append(f"budget {row.budget_ms:.2f} ms{'' if row.b1() <= row.budget_ms else ' EXCEEDED'}")
        if row.teacher_layers is not None and row.method in ("first-k", "spread-k"):
            notes.append(f"teacher layers {list(row.teacher_layers)}")
        print(
            f"{row.label:<18} {row.spec.key.removesuffix('-fp32'):<24} {row.params:>11,} {row.test_accuracy:>8.4f} "
            f"{100 * (row.test_accuracy - teacher.test_accuracy):>+6.2f} {row.b1():>8.2f} {teacher.b1() / row.b1():>5.2f}x "
            f"{row.latency_ms[32]['median']:>9.1f} {teacher.latency_ms[32]['median'] / row.latency_ms[32]['median']:>5.2f}x  "
            f"{row.recipe.describe() if row.recipe else '-':<12} {'; '.join(notes)}"
        )
    print(f"int8: {INT8_NOTE}")
    for c in report["comparisons"]:
        others = ", ".join(f"{label} {acc:.4f}" for label, acc in c["baselines_within_budget"].items()) or "none"
        print(
            f"{c['label']} (budget {c['budget_ms']:.2f} ms; {c['latency_b1_ms']:.2f} ms here{'' if c['within_budget'] else ', over'}, "
            f"{c['latency_table_ms']:.2f} ms in the search's latency table"
            + (f", {c['retimed']:.2f} ms re-timed by the export" if c.get("retimed") else "")
            + "): "
            f"{c['verdict']}; baselines within the budget: {others}"
            + (f"; broken, not compared: {', '.join(c['broken_within_budget'])}" if c["broken_within_budget"] else "")
        )
    if report["comparisons"]:
        fastest = min(report["comparisons"], key=lambda c: c["budget_ms"])
        print(f"{fastest['label']}: {fastest['points_vs_teacher']:+.2f} points of test accuracy against the teacher")
    for skipped in report["skipped"]:
        print(f"not trained: {skipped}")


def plot(path: Path, rows: Sequence[Row], report: dict[str, Any]) -> None:
    """Test accuracy against batch-1 latency (log x): each method's points and Pareto front, the budgets dotted."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "bortnas": ("tab:red", "o"),
        "first-k": ("tab:blue", "s"),
        "spread-k": ("tab:cyan", "D"),
        "scratch": ("tab:gray", "v"),
        "int8": ("tab:purple", "P"),
        "teacher": ("black", "*"),
    }
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for method in METHODS:
        group = [r for r in rows if r.method == method]
        if not group:
            continue
        color, marker = styles[method]
        ok = [r for r in group if not r.broken]
        if ok:
            ax.scatter([r.b1() for r in ok], [r.test_accuracy for r in ok], color=color, marker=marker, s=60, label=method, zorder=3)
        broken = [r for r in group if r.broken]
        if broken:
            ax.scatter(
                [r.b1() for r in broken],
                [r.test_accuracy for r in broken],
                facecolors="none",
                edgecolors=color,
                marker=marker,
                s=60,
                label=f"{method} (broken: one class)",
                zorder=3,
            )
        front = pareto_front(group)
        if len(front) > 1:
            ax.step([r.b1() for r in front], [r.test_accuracy for r in front], where="post", color=color, alpha=0.6)
        for r in group:
            if r.method not in ("teacher", "int8"):
                ax.annotate(
                    r.spec.key.removesuffix("-fp32"), (r.b1(), r.test_accuracy), fontsize=6, xytext=(3, 3), textcoords="offset points"
                )
    for budget in report["budgets"]:
        ax.axvline(budget["budget_ms"], color="tab:red", linestyle=":", linewidth=1)
        ax.annotate(f"{budget['speedup']:g}x", (budget["budget_ms"], 0.0), xycoords=("data", "axes fraction"), fontsize=7, color="tab:red")
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")  # 3, 10, 30 ms rather than 3x10^0
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(f"CPU latency, batch 1, {report['latency']['seq_len']} tokens, {report['latency']['threads']} thread(s) (ms, log)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"accuracy vs latency on {report['task']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny steps, sweeps and repeats: checks the command runs, measures nothing")
    parser.add_argument("--speedups", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="latency budgets as teacher speed-ups")
    parser.add_argument("--truncate", type=int, nargs="+", default=None, help="layer counts of the truncations (default 1..depth/2)")
    parser.add_argument("--space", type=Path, default=DEFAULT_SPACE, help="search space of bortnas's searches (default minilm_full)")
    parser.add_argument("--epsilon", type=float, default=None, help="FPTAS epsilon of the searches (default 0.1, 0.5 with --quick)")
    parser.add_argument("--fptas-refine", type=int, default=0, help="bucket members each search evaluates after its representatives")
    parser.add_argument("--steps", type=int, default=None, help="distillation steps of every student (default 1500, 40 with --quick)")
    parser.add_argument("--sweep-steps", type=int, default=None, help="steps per recipe of the sweeps (default 300, 15 with --quick)")
    parser.add_argument("--lrs", type=float, nargs="+", default=None, help="AdamW rates of the truncations (default 1e-4 2e-4 5e-4 1e-3)")
    parser.add_argument("--scratch-lrs", type=float, nargs="+", default=None, help="AdamW rates from scratch (default 3e-4 1e-3 3e-3)")
    parser.add_argument("--scratch-sgd-lrs", type=float, nargs="+", default=None, help="SGD rates from scratch (default 2e-2)")
    parser.add_argument("--teacher", default=None, help="teacher directory (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--data", default=None, help="a .csv/.tsv/.jsonl task (default: Rotten Tomatoes reviews)")
    parser.add_argument("--text-column", default=None)
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per example and of every latency")
    parser.add_argument("--teacher-steps", type=int, default=250)
    parser.add_argument("--teacher-lr", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None, help="learning rate of bortnas's own search and export (default the settings')")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the latency measurements")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved latency rounds (default 7, 3 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="batch-1 passes per round (default 20, 8 with --quick)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="teacher cache (default $BORTNAS_CACHE or ~/.cache/bortnas)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "frontier", help="study database and exported models")
    parser.add_argument("--json", type=Path, default=None, help="results JSON (default OUT/frontier.json)")
    parser.add_argument("--plot", type=Path, default=None, help="accuracy-latency PNG (default OUT/frontier.png)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "epsilon": 0.5 if quick else 0.1,
        "steps": 40 if quick else 1500,
        "sweep_steps": 15 if quick else 300,
        "lrs": [2e-4, 1e-3] if quick else [1e-4, 2e-4, 5e-4, 1e-3],
        "scratch_lrs": [1e-3] if quick else [3e-4, 1e-3, 3e-3],
        "scratch_sgd_lrs": [2e-2],
        "rounds": 3 if quick else 7,
        "repeats": 8 if quick else 20,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.cache_dir = (args.cache_dir or default_cache_dir()).resolve()
    args.json = args.json or args.out / "frontier.json"
    args.plot = args.plot or args.out / "frontier.png"
    if args.data is not None and (args.text_column is None or args.label_column is None):
        parser.error("--data needs --text-column and --label-column")
    return args


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The settings every student of this run shares, bortnas's searches included."""
    given = {"text_column": args.text_column, "label_column": args.label_column, "teacher_lr": args.teacher_lr, "lr": args.lr}
    return RunSettings(
        teacher=args.teacher,
        data=args.data,
        max_length=args.max_length,
        teacher_steps=args.teacher_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        **{name: value for name, value in given.items() if value is not None},
    )


def baselines(ctx: Context, args: argparse.Namespace, exported: Sequence[Row]) -> tuple[list[tuple[Row, PreTrainedModel]], list[str]]:
    """The truncations, the exported shapes from scratch, int8 and the teacher; and what was not trained, with why."""
    depth, full = ctx.shape.layers, ctx.shape.as_spec()
    adamw = [Recipe("adamw", lr) for lr in args.lrs]
    entries: list[tuple[Row, PreTrainedModel]] = []
    skipped: list[str] = []
    for k in args.truncate:
        spec = dataclasses.replace(full, layers=k)
        for kind in ("first-k", "spread-k"):
            layers = truncation_layers(kind, k, depth)
            if kind == "spread-k" and layers == truncation_layers("first-k", k, depth):
                skipped.append(f"spread-{k}: its layers {list(layers)} are first-{k}'s")
                continue
            entries.append(train_baseline(ctx, kind, kind.replace("k", str(k)), spec, adamw, "inherit", args, layers=layers))

    scratch_recipes = [Recipe("adamw", lr) for lr in args.scratch_lrs] + [Recipe("sgd", lr) for lr in args.scratch_sgd_lrs]
    shapes: dict[ArchSpec, list[str]] = {}
    for row in exported:
        shapes.setdefault(row.spec, []).append(f"{row.speedup_target:g}x")
    for spec, speedups in shapes.items():
        entries.append(train_baseline(ctx, "scratch", f"scratch {'/'.join(speedups)}", spec, scratch_recipes, "scratch", args))

    teacher = ctx.teacher.model.eval()
    quantized = int8_teacher(teacher)
    entries.append((make_row("int8", "int8 teacher", full, quantized, ctx), quantized))
    entries.append((make_row("teacher", "teacher", full, teacher, ctx), teacher))
    return entries, skipped


def environment() -> dict[str, Any]:
    return {
        "device": "cpu",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": "float32 (int8 row: qint8 weights, dynamic activation quantization)",
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:  # checked before an hour of training, not after it
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("the plot needs matplotlib: pip install matplotlib (it comes with bortnas[dev])") from None
    log_like_cli(quiet=True)  # the searches and exports log warnings only, as `bortnas ... -q` did
    args.out.mkdir(parents=True, exist_ok=True)
    # an earlier run's studies pin the budgets it measured; SQLite's -wal/-shm files and the claim lock go with the database
    for stale in sorted(args.out.glob("frontier.db*")):
        progress(f"removing {stale} of an earlier run")
        stale.unlink()

    try:
        settings = run_settings(args)
        ctx = build_context(settings, args.cache_dir)
    except UserInputError as e:
        raise SystemExit(f"frontier.py: {e}") from None
    depth = ctx.shape.layers
    args.truncate = args.truncate or list(range(1, depth // 2 + 1))
    if not all(1 <= k <= depth for k in args.truncate):  # checked before the searches, not an hour into the run
        raise SystemExit(f"--truncate {args.truncate}: the teacher has {depth} layers; give layer counts in 1..{depth}")
    seq_len = settings.max_length
    teacher_ms = statistics.median(
        measure_latency(ctx.teacher.model.eval(), seq_len, 1, repeats=args.repeats, threads=args.threads).median_ms
        for _ in range(args.rounds)
    )
    progress(f"task teacher: dev accuracy {ctx.teacher.dev_score:.4f}, {teacher_ms:.2f} ms at batch 1")

    budgets = [{"speedup": k, "budget_ms": teacher_ms / k} for k in args.speedups]
    entries = [bortnas_row(ctx, args, budget["speedup"], budget["budget_ms"]) for budget in budgets]
    others, skipped = baselines(ctx, args, [row for row, _ in entries])
    entries += others

    progress(f"measuring the latency of {len(entries)} models side by side")
    for (row, _), latency in zip(entries, measure_side_by_side([m for _, m in entries], seq_len, args), strict=True):
        row.latency_ms = latency
    rows = [row for row, _ in entries]
    teacher_row = rows[-1]
    for row in rows:  # a budget is a speed-up over the teacher, judged on the latencies measured side by side above
        if row.method == "bortnas" and row.speedup_target is not None:
            row.budget_ms = teacher_row.b1() / row.speedup_target
    report: dict[str, Any] = {
        "quick": args.quick,
        "task": ctx.data.source,
        "environment": environment(),
        "teacher": {
            "dir": str(settings.teacher_dir()),
            "shape": teacher_row.spec.key.removesuffix("-fp32"),
            "key": ctx.teacher.key,
            "dev_accuracy": ctx.teacher.dev_score,
            "latency_b1_ms_for_budgets": teacher_ms,
        },
        "space": str(args.space),
        "epsilon": args.epsilon,
        "fptas_refine": args.fptas_refine,
        "steps": args.steps,
        "sweep_steps": args.sweep_steps,
        "seed": args.seed,
        "latency": {"threads": args.threads, "seq_len": seq_len, "batch_sizes": list(BATCH_SIZES), "rounds": args.rounds},
        "budgets": budgets,
        "int8": INT8_NOTE,
        "rows": [row.to_dict() for row in rows],
        "comparisons": comparisons(rows, teacher_row),
        "fronts": {m: [r.label for r in pareto_front([r for r in rows if r.method == m])] for m in METHODS},
        "skipped": skipped,
        "seconds": time.perf_counter() - _STARTED,
    }
    report["latency"]["passes"] = {
        f"batch {b}": dict(zip(("warmup", "repeats"), passes(b, args.repeats), strict=True)) for b in BATCH_SIZES
    }
    print_report(report, rows, teacher_row)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    plot(args.plot, rows, report)
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
