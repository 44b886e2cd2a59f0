"""General encoders end to end: search and distil on unlabelled text, fine-tune on tasks, against the baselines.

Bort's pipeline on the bundled MiniLM teacher, measured on 2 CPU cores:

1. corpus: the default corpus (`bortnas.data.corpus`) without any document that holds a dev or
   test text of a task below (the count dropped is recorded), written as one document a line;
2. search: `bortnas.search(..., RunSettings(task="general", corpus=...))` with the default FPTAS
   on `search_spaces/minilm_quick.yaml` (the default run's time is the goal's 30 minutes);
3. for each latency budget (`--budgets`, speed-ups over the teacher at batch 1): the general export
   of the study under that budget (`bortnas.export(budget=Budget(min_speedup=B))`), and
   layer-dropped teachers of about the same latency (the first k layers, k layers spread
   over the depth, and with `--baselines importance` the k layers extraction ranks first; full
   width; one layer where no depth is that fast) given the same distillation on the same corpus
   for the same steps;
4. each encoder fine-tuned on each task (`bortnas.finetune`) by the methods of
   `--student-finetunes` and `--baseline-finetunes`: plain, distil (the task teacher's outputs)
   or aligned (those and its hidden states at the units the encoder was cut from), next to the
   task teacher fine-tuned on it (the finetune report's reference), and, with `--task-exports`,
   bortnas's own task-specific export under the same budget;
5. the general student as an embedding model: its BoolQ question-to-passage recall@10 against the
   teacher's (mean pooling, as the teacher's sentence-transformers configuration says).

Every latency is measured side by side with the teacher's in this process (torch eager, batch 1
and 32, alternating rounds). Each part's result and wall time are written to the JSON as soon
as it ends; a rerun skips what the JSON already holds. Resumed on a fresh machine, it writes the
corpus file again (checked against the recorded counts) and, when the study is gone, searches
again (part "search again N") if a budget's export is still to run, so it exports from a study of
this machine; the baselines, fine-tunings and task exports do not need the study. An encoder that
is gone while a fine-tuning of it is still to run is made again (`Record.redo_if_lost`).

    python benchmarks/general.py                                 # every budget (hours on 2 CPU cores)
    python benchmarks/general.py --budgets 4 --export-steps 1500 # the goal's budget only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import task_data  # type: ignore[import-not-found]
from search_options import log_like_cli  # type: ignore[import-not-found]
from tasks import machine, side_by_side  # type: ignore[import-not-found]

import bortnas
from bortnas.search.study import find_study

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "minilm_quick.yaml"
GOAL_SPEEDUP = 4.0
GOAL_POINTS_FROM_TEACHER = 1.5  # average over the tasks
GOAL_POINTS_OVER_BASELINE = 1.0
GOAL_RECALL_SHARE = 0.95
GOAL_DEFAULT_RUN_S = 30 * 60
# how an encoder is fine-tuned on a task (`finetune_part`)
METHODS = ("plain", "distil", "aligned")
ENCODERS = ("general", "first", "spread", "importance")


def tasks(data_dir: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    """The fine-tuning tasks: each a function that writes its data and returns its RunSettings fields."""
    return {
        "reviews": lambda: {},
        "boolq": lambda: {
            "data": str(task_data.write_boolq_pairs(data_dir)),
            "text_column": "question",
            "pair_column": "passage",
            "label_column": "label",
            "task": "classification",
        },
        "regression": lambda: {"data": str(task_data.write_regression(data_dir)), "label_column": "score", "task": "regression"},
    }


def retrieval_fields(data_dir: Path) -> dict[str, Any]:
    return {"data": str(task_data.write_retrieval(data_dir)), "text_column": "query", "pair_column": "document", "task": "embedding"}


def held_out_texts(fields: dict[str, Any]) -> set[str]:
    """The dev and test texts (and pair texts) of one task, split as bortnas splits it."""
    from bortnas.trial.inputs import load_task

    settings = bortnas.RunSettings(**fields)
    data = load_task(settings, settings.task or "classification")
    return {t for ex in data.dev + data.test for t in (ex.text, ex.pair) if t}


def write_corpus(out: Path, excluded: set[str], limit: int | None = None) -> dict[str, Any]:
    from bortnas.data.corpus import read_corpus

    corpus = read_corpus(exclude=excluded)
    documents = corpus.documents[:limit]
    out.write_text("".join(" ".join(doc.split()) + "\n" for doc in documents), encoding="utf-8")
    return {**corpus.describe(), "written": len(documents), "file": str(out), "excluded_texts": len(excluded)}


def layer_dropped(ctx: Any, k: int, how: str) -> tuple[int, ...] | None:
    """The teacher layers a baseline keeps; None for "importance": the k layers `extract` ranks most
    important, so the baseline is the space's full-width k-layer candidate as a search exports it."""
    n = ctx.shape.layers
    if how == "importance":
        return None
    if how == "first":
        return tuple(range(k))
    return tuple(sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})) if k > 1 else (n - 1,)


def baseline_layers(ctx: Any, budget: float, threads: int) -> tuple[int, float]:
    """The teacher layers k whose full-width model is closest to `budget` times faster than the teacher
    at batch 1, among those at least 0.9 x `budget` (timing noise on shared cores is about 10 %);
    each timed side by side with the teacher in alternating rounds (`side_by_side`). Where no k is that
    fast, the fastest (k = 1): a slower baseline than the budget allows, which can only favour it."""
    from bortnas.core.space import ArchSpec
    from bortnas.model.extract import extract

    shape = ctx.shape
    speedups = {}
    for k in range(1, shape.layers):
        model, _ = extract(ctx.teacher.model, ctx.teacher.importance, ArchSpec(k, shape.hidden, shape.heads, shape.ffn))
        speedups[k] = side_by_side(model, ctx.teacher.model, ctx.settings.max_length, threads)["batch_1"]["speedup"]
    near = {k: s for k, s in speedups.items() if s >= 0.9 * budget} or {1: speedups[1]}
    k = min(near, key=lambda k: abs(near[k] - budget))
    return k, near[k]


class Record:
    """The JSON of the run: parts keyed by name, written after each one."""

    def __init__(self, path: Path, command: str, space: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"parts": {}}
        self.data.update(command=command, machine=machine(), space=str(space.resolve().relative_to(REPO)))
        self.stale: set[str] = set()  # recorded parts to run again (`redo_if_lost`)

    def get(self, name: str) -> dict[str, Any] | None:
        """The recorded part, None where it is still to run."""
        part: dict[str, Any] | None = None if name in self.stale else self.data["parts"].get(name)
        return part

    def before(self, name: str) -> dict[str, Any] | None:
        """The record of a part that runs again, until its new one replaces it."""
        part: dict[str, Any] | None = self.data["parts"].get(name) if name in self.stale else None
        return part

    def redo_if_lost(self, name: str, directory: Path, dependents: list[str]) -> None:
        """Part `name` wrote `directory`, which a fresh machine lacks: where a part still to run reads it,
        `run` makes the directory again, and its new record moves the old one under "earlier" (recorded
        dependents stay: each measures an encoder made by the same part with the same settings)."""
        part = self.get(name)
        if part is None or part.get("candidate", "") is None or directory.is_dir():  # None: no candidate, nothing written
            return
        if all(self.get(d) is not None for d in dependents):
            return
        self.stale.add(name)
        print(f"[general] {name}: its directory is gone and later parts need it, so it runs again", file=sys.stderr)

    def run(self, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.get(name)
        if done is not None:
            print(f"[general] {name}: already measured", file=sys.stderr)
            return done
        print(f"[general] {name} ...", file=sys.stderr)
        began = time.perf_counter()
        result = {**work(), "wall_s": time.perf_counter() - began, "cpu": self.data["machine"]["cpu"]}  # runs resume on other machines
        if name in self.stale:  # the old record is kept, under "earlier", only once the new one is in
            earlier = self.data.setdefault("earlier", {})
            key = name if name not in earlier else f"{name} ({sum(k.startswith(name) for k in earlier) + 1})"
            earlier[key] = self.data["parts"][name]
            self.stale.discard(name)
        self.data["parts"][name] = result
        self.data["machine"]["load_average_end"] = os.getloadavg()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1) + "\n")
        print(f"[general] {name} done in {result['wall_s'] / 60:.1f} min", file=sys.stderr)
        return result


def finetune_part(
    model: Path, out: Path, fields: dict[str, Any], cache_dir: Path, steps: int | None, method: str = "plain"
) -> dict[str, Any]:
    """`model` fine-tuned on a task: "plain" (the labels), "distil" (the task teacher's outputs, as runs 1 to 5
    measured it) or "aligned" (distil plus the teacher's hidden states at the units the encoder was cut from)."""
    report = bortnas.finetune(
        model,
        out,
        settings=bortnas.RunSettings(**fields, **({"hidden_weight": 0.0} if method == "distil" else {})),
        method=bortnas.Plain(steps=steps) if method == "plain" else bortnas.Distil(steps=steps),
        execution=bortnas.Execution(cache_dir=cache_dir),
        overwrite=True,
    )
    assert report.model.test_metrics is not None and report.teacher.test_metrics is not None
    return {
        "metric": report.model.metric,
        "student": report.model.test_score,
        "teacher": report.teacher.test_score,
        "points_below_teacher": 100 * ((report.teacher.test_score or 0) - (report.model.test_score or 0)),
        "test_metrics": {"student": report.model.test_metrics, "teacher": report.teacher.test_metrics},
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--budgets", default="2,4,8", help="speed-ups over the teacher at batch 1 (default 2,4,8)")
    parser.add_argument("--export-steps", type=int, default=None, help="distillation steps of each encoder (default: the export's, 1500)")
    parser.add_argument("--finetune-steps", type=int, default=None, help="plain fine-tuning steps per task (default: finetune's, 400)")
    parser.add_argument("--distil-steps", type=int, default=None, help="distilled fine-tuning steps per task (default: finetune's)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="teacher cache (default OUT/cache)")
    parser.add_argument(
        "--baseline-finetunes",
        default="plain,distil",
        help="how the layer-dropped baselines are fine-tuned: plain, distil, aligned, or several comma-separated (default plain,distil)",
    )
    parser.add_argument("--task-exports", action="store_true", help="also search and export each task under each budget (slow)")
    parser.add_argument("--space", type=Path, default=SPACE, help=f"the search space (default {SPACE.relative_to(REPO)})")
    parser.add_argument(
        "--search-budget",
        type=float,
        default=None,
        help="search only the candidates this many times faster than the teacher (default: all)",
    )
    parser.add_argument(
        "--baselines",
        default="first,spread",
        help="full-width baselines to run: first, spread (default both), importance (the k layers extraction ranks first), or none",
    )
    parser.add_argument("--student-finetunes", default="plain,distil", help="as --baseline-finetunes, for the general student")
    parser.add_argument("--out", type=Path, default=None, help="default out/general (out/general_quick with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="default results/general_cpu.json; OUT/general.json with --quick")
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 documents, FPTAS epsilon 0.5, 20 steps each, budget 2")
    args = parser.parse_args(argv)
    if args.quick:
        args.budgets, args.export_steps, args.finetune_steps, args.distil_steps = "2", 20, 20, 20
    args.out = args.out or REPO / "out" / ("general_quick" if args.quick else "general")
    args.json = args.json or (args.out / "general.json" if args.quick else REPO / "benchmarks" / "results" / "general_cpu.json")
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    out = args.out.resolve()
    for sub in ("encoders", "finetuned", "task_exports"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir.resolve() if args.cache_dir else out / "cache"
    storage, data_dir = f"sqlite:///{out / 'general.db'}", out / "data"
    execution = bortnas.Execution(cache_dir=cache_dir)
    log_like_cli(quiet=False)
    record = Record(args.json, " ".join(["python", "benchmarks/general.py", *argv]), args.space)
    task_fields = {name: make() for name, make in tasks(data_dir).items()}
    retrieval = retrieval_fields(data_dir)

    def corpus() -> dict[str, Any]:
        excluded = set().union(*(held_out_texts(f) for f in [*task_fields.values(), retrieval]))
        return write_corpus(out / "corpus.txt", excluded, 300 if args.quick else None)

    corpus_part = record.run("corpus", corpus)
    if not Path(corpus_part["file"]).is_file():  # resumed on a fresh machine: the corpus is deterministic, so write it again
        again = corpus()
        if (again["documents"], again["words"]) != (corpus_part["documents"], corpus_part["words"]):
            parser.error(f"the corpus written again has {again['documents']} documents, the recorded one {corpus_part['documents']}")
        corpus_part = {**corpus_part, "file": again["file"]}
    settings = bortnas.RunSettings(task="general", corpus=(corpus_part["file"],))
    search_settings = settings
    if args.search_budget is not None:
        search_settings = dataclasses.replace(settings, budget=bortnas.Budget(min_speedup=args.search_budget))

    def search() -> dict[str, Any]:
        strategy = bortnas.FPTAS(epsilon=0.5) if args.quick else bortnas.FPTAS()
        result = bortnas.search(
            args.space, storage=storage, study="general", settings=search_settings, strategy=strategy, execution=execution
        )
        return {"search": result.to_dict(), "trials": [t.to_dict() for t in bortnas.trials("general", storage=storage)]}

    student_methods = _choices(parser, "--student-finetunes", args.student_finetunes, METHODS)
    baseline_methods = _choices(parser, "--baseline-finetunes", args.baseline_finetunes, METHODS)
    baselines = () if args.baselines in ("", "none") else _choices(parser, "--baselines", args.baselines, ("first", "spread", "importance"))

    def ways(encoder_kind: str, methods: tuple[str, ...]) -> list[tuple[str, str, int | None]]:
        """(part kind, method, steps) of each fine-tuning in `methods`: "KIND" plain, "KIND-distil", "KIND-aligned"."""
        taught = [(f"{encoder_kind}-{m}", m, args.distil_steps) for m in METHODS[1:]]
        return [way for way in [(encoder_kind, "plain", args.finetune_steps), *taught] if way[1] in methods]

    def finetune_names(encoder_kind: str, tag: str, methods: tuple[str, ...]) -> list[str]:
        return [finetune_name(kind, tag, name) for kind, _, _ in ways(encoder_kind, methods) for name in task_fields]

    def remade_trial(name: str) -> int | None:
        """The trial of this machine's study with the candidate the export `name` had before it was made
        again (`Record.redo_if_lost`): timing noise must not change what a remade encoder is. None: a first export."""
        before = record.before(name)
        if before is None or before.get("candidate") is None:
            return None
        finished = [t for t in bortnas.trials("general", storage=storage) if t.state == "COMPLETE"]
        same = [t.number for t in finished if t.candidate == before["candidate"]]
        if not same:
            parser.error(f"{name} is made again, but this machine's study has no trial of {before['candidate']}")
        return same[0]

    record.run("search", search)
    for budget in budgets:
        tag = f"{budget:g}x"
        needs = [*finetune_names("general", tag, student_methods), f"recall {tag}"]
        record.redo_if_lost(f"export {tag}", out / "encoders" / f"general_{tag}", needs)
    exports_due = [b for b in budgets if record.get(f"export {b:g}x") is None]
    if exports_due and find_study(storage, "general") is None:  # resumed on a fresh machine: the exports need the study again
        again = sum(name.startswith("search again") for name in record.data["parts"])
        record.run(f"search again {again + 1}", search)

    def finetune_by(encoder_kind: str, tag: str, directory: Path, methods: tuple[str, ...]) -> None:
        """`directory` fine-tuned on every task by each of `methods` (`ways`, `finetune_part`)."""
        for kind, method, steps in ways(encoder_kind, methods):
            for name, fields in task_fields.items():
                target = out / "finetuned" / f"{kind}_{tag}_{name}"
                record.run(
                    finetune_name(kind, tag, name),
                    lambda t=target, f=fields, m=method, n=steps: finetune_part(directory, t, f, cache_dir, n, m),
                )

    finetune = bortnas.Distil(steps=args.export_steps)
    for budget in budgets:
        tag = f"{budget:g}x"
        encoder = out / "encoders" / f"general_{tag}"

        def export(encoder: Path = encoder, budget: float = budget, tag: str = tag) -> dict[str, Any]:
            try:
                report = _export(encoder, budget, remade_trial(f"export {tag}"))
            except bortnas.InfeasibleBudgetError as e:  # recorded as measured: no trial of the study is that fast
                return {"candidate": None, "why": str(e)}
            latency = side_by_side(bortnas.load(encoder), _teacher(), report.seq_len, 1)
            return {"candidate": report.spec.key, "trial": report.trial, "held_out": report.model.test_metrics, "latency": latency}

        def _export(encoder: Path, budget: float, trial: int | None) -> Any:
            """W's pick under `budget`, or `trial` (an encoder made again: the same candidate as before)."""
            return bortnas.export(
                "general",
                encoder,
                storage=storage,
                trial=trial,
                budget=None if trial is not None else bortnas.Budget(min_speedup=budget),
                finetune=finetune,
                overwrite=True,
                execution=execution,
            )

        exported = record.run(f"export {tag}", export)
        if exported.get("candidate") is None:
            continue
        # the general student first (fine-tuned on every task, then as an embedding model), then the baselines;
        # distilled fine-tuning (Bort's third stage learns from a task teacher) is the second attempt at the goal
        finetune_by("general", tag, encoder, student_methods)
        record.run(f"recall {tag}", lambda e=encoder: _recall(e, retrieval, cache_dir))
        for how in baselines:
            dropped = out / "encoders" / f"{how}_{tag}"

            def baseline(dropped: Path = dropped, how: str = how, budget: float = budget, tag: str = tag) -> dict[str, Any]:
                before = record.before(f"baseline {how} {tag}")  # made again: the layers it had, not a new timing's
                return _baseline(settings, dropped, how, budget, args.export_steps, cache_dir, before["layers"] if before else None)

            record.redo_if_lost(f"baseline {how} {tag}", dropped, finetune_names(how, tag, baseline_methods))
            record.run(f"baseline {how} {tag}", baseline)
            finetune_by(how, tag, dropped, baseline_methods)  # the student's methods too, so the goal compares like with like
        if args.task_exports:
            for name, fields in task_fields.items():
                record.run(f"task export {tag} {name}", lambda f=fields, b=budget, n=name: _task_export(f, b, n, out, execution))
    measured = sorted(set(budgets) | recorded_budgets(record.data["parts"]))  # a run of some budgets keeps the others' summary
    summary = summarise(record.data["parts"], measured, record.data.get("default_export"))
    record.data["summary"] = summary
    record.path.write_text(json.dumps(record.data, indent=1) + "\n")
    print(table(record.data["parts"], measured))
    print(json.dumps(summary, indent=1))
    return 0


def _choices(parser: argparse.ArgumentParser, flag: str, value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(m.strip() for m in value.split(",") if m.strip())
    if not chosen or set(chosen) - set(allowed):
        parser.error(f"{flag} {value!r}: give {', '.join(allowed)}, or several comma-separated")
    return chosen


def _teacher() -> Any:
    from transformers import AutoModel

    from bortnas.core.default_teacher import default_teacher_dir

    return AutoModel.from_pretrained(default_teacher_dir(), local_files_only=True).eval()


def _baseline(
    settings: Any, out: Path, how: str, budget: float, steps: int | None, cache_dir: Path, kept: list[int] | None = None
) -> dict[str, Any]:
    """A layer-dropped teacher of about `budget`x (`baseline_layers`), or keeping the teacher layers `kept`,
    distilled exactly as the general export distils."""
    from bortnas.core.finetuning import DEFAULT_STEPS
    from bortnas.core.space import ArchSpec
    from bortnas.export.out_dir import prepare_out_dir
    from bortnas.export.writer import units_record, write_trained
    from bortnas.runtime.device import Device
    from bortnas.trial.context import build_context
    from bortnas.trial.recipe import distil_student

    ctx = build_context(settings, cache_dir, show_progress_bar=True, device=Device.from_name("auto"))
    speedup: float | None = None  # None: the layers were kept, not chosen by a timing
    if kept is None:
        k, speedup = baseline_layers(ctx, budget, 1)
        layers = layer_dropped(ctx, k, how)
    else:
        k, layers = len(kept), tuple(kept)
    spec = ArchSpec(k, ctx.shape.hidden, ctx.shape.heads, ctx.shape.ffn)
    steps = steps or DEFAULT_STEPS["distil"]
    student, extraction, config = distil_student(ctx, spec, steps, ctx.settings.seed, show_progress_bar=True, layers=layers)
    layers = tuple(extraction.layers)
    prepare_out_dir(out, overwrite=True)
    # the units it was cut from, as an export records them, so that fine-tuning can match the teacher's hidden states there
    report = write_trained(ctx, student, spec, out, {"candidate": spec.to_dict(), "baseline": how, "training": units_record(extraction)})
    latency = side_by_side(bortnas.load(out), _teacher(), ctx.settings.max_length, 1)
    return {"layers": list(layers), "speedup_measured_first": speedup, "held_out": report.model.test_metrics, "latency": latency}


def _task_export(fields: dict[str, Any], budget: float, name: str, out: Path, execution: Any) -> dict[str, Any]:
    settings = bortnas.RunSettings(**fields, budget=bortnas.Budget(min_speedup=budget))
    storage, study = f"sqlite:///{out / 'tasks.db'}", f"{name}_{budget:g}x"
    try:
        bortnas.search(SPACE, storage=storage, study=study, settings=settings, execution=execution)
    except bortnas.InfeasibleBudgetError as e:  # recorded as measured: no candidate of the space is that fast
        return {"candidate": None, "why": str(e)}
    target = out / "task_exports" / study
    report = bortnas.export(study, target, storage=storage, overwrite=True, execution=execution)
    return {"candidate": report.spec.key, "student": report.model.test_score, "teacher": report.teacher.test_score}


def _recall(encoder: Path, fields: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    """The general student as an embedding model on BoolQ retrieval's test split, against the teacher."""
    from transformers import AutoModel

    from bortnas.train.loop import evaluate
    from bortnas.trial.context import build_context

    ctx = build_context(bortnas.RunSettings(**fields), cache_dir)
    student = AutoModel.from_pretrained(encoder, local_files_only=True).eval()
    metrics = evaluate(student, ctx.test, objective=ctx.objective).metrics
    teacher = ctx.teacher.test_metrics
    return {"student": metrics, "teacher": teacher, "share": metrics["recall_at_10"] / teacher["recall_at_10"]}


def table(parts: dict[str, Any], budgets: list[float]) -> str:
    """The measured parts as Markdown: per budget, each encoder's test metric per task next to the teacher's."""
    lines = ["| budget | encoder | task | metric | teacher | student | points below | part time |", "|---|---|---|---|---:|---:|---:|---:|"]
    for budget in budgets:
        tag = f"{budget:g}x"
        for name, part in parts.items():
            if not name.startswith("finetune ") or f" {tag} " not in name:
                continue
            _, kind, _, task = name.split(" ")
            lines.append(
                f"| {tag} | {kind} | {task} | {part['metric']} | {part['teacher']:.4f} | {part['student']:.4f} | "
                f"{part['points_below_teacher']:+.2f} | {part['wall_s'] / 60:.1f} min |"
            )
    return "\n".join(lines)


def finetune_name(kind: str, tag: str, task: str) -> str:
    """The part name of a fine-tuning ("finetune general-distil 4x reviews"), which `summarise` and `table` parse."""
    return f"finetune {kind} {tag} {task}"


def recorded_budgets(parts: dict[str, Any]) -> set[float]:
    """The budgets whose general export the JSON holds (parts "export 4x" and so on)."""
    return {float(name.split()[1].removesuffix("x")) for name in parts if name.startswith("export ")}


def summarise(parts: dict[str, Any], budgets: list[float], default_export: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per budget: the mean points below the teacher over the tasks for each encoder, and the goals at 4x.

    The default run is the search plus `default_export` (the CLI export of W's pick with every default,
    timed alone with /usr/bin/time and recorded with its command) where the JSON has one, else the 4x export.
    """
    out: dict[str, Any] = {}
    for budget in budgets:
        tag = f"{budget:g}x"
        row: dict[str, Any] = {}
        for kind in (e if m == "plain" else f"{e}-{m}" for e in ENCODERS for m in METHODS):
            drops = [p["points_below_teacher"] for name, p in parts.items() if name.startswith(f"finetune {kind} {tag} ")]
            if drops:
                row[kind] = {"mean_points_below_teacher": statistics.fmean(drops), "tasks": len(drops)}
        recall = parts.get(f"recall {tag}")
        if recall:
            row["recall_share"] = recall["share"]
        exported = parts.get(f"export {tag}")
        if exported and exported.get("latency"):
            row["speedup_b1"] = exported["latency"]["batch_1"]["speedup"]
        out[tag] = row
    export_s = default_export["wall_s"] if default_export else parts.get("export 4x", {}).get("wall_s", 0.0)
    default_run = parts.get("search", {}).get("wall_s", 0.0) + export_s
    out["default_run_minutes"] = default_run / 60
    four = out.get("4x", {})
    if "general" in four:
        baselines = [e if m == "plain" else f"{e}-{m}" for e in ENCODERS[1:] for m in METHODS]
        best_baseline = min((four[k]["mean_points_below_teacher"] for k in baselines if k in four), default=None)
        # the best fine-tuning of the general student (plain, distilled from the task teacher, also its hidden states)
        general = min(four[k]["mean_points_below_teacher"] for k in ("general", "general-distil", "general-aligned") if k in four)
        out["goals_4x"] = {
            "within_1_5_of_teacher": general <= GOAL_POINTS_FROM_TEACHER,
            "1_point_over_best_baseline": None if best_baseline is None else best_baseline - general >= GOAL_POINTS_OVER_BASELINE,
            "recall_95": four.get("recall_share", 0) >= GOAL_RECALL_SHARE,
            "default_run_30_min": default_run <= GOAL_DEFAULT_RUN_S,
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
