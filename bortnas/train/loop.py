"""The one training loop (teacher fine-tuning, candidate scoring, export) and evaluation.

Torch layer. The task's `Objective` (`bortnas.train.objectives`) says what the model outputs and
how each term is computed. Without a teacher the loss is the supervised loss on the labels
(cross-entropy for classes). With a teacher it is distillation: kd_weight * the distillation of
the teacher's output (for classes T^2 * KL(teacher || student at temperature T)) + (1 - kd_weight)
* the supervised loss (embeddings have none), plus hidden_weight * the mean over student layers
(and the embedding output) of the masked MSE between the student's hidden states and the
teacher's at the layer and dimensions the student was cut from (TinyBERT-style; the extraction
makes the two spaces line up without a projection; BiT's hidden-state loss), plus dmd_weight *
BiBERT's direction-matching loss on Q, K, V.
Every function runs on a `bortnas.runtime.device.Device` (the CPU unless told): on CUDA in bf16 autocast,
without reading the loss on the host at every step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from transformers import get_linear_schedule_with_warmup

from bortnas.core.errors import TrialFailed
from bortnas.core.progress import progress_bar
from bortnas.core.settings import TrainConfig
from bortnas.core.tasks import TASKS, Task
from bortnas.data.encode import IGNORE, EncodedSplit
from bortnas.model.extract import Extraction
from bortnas.quant.distill import ProjectionRecorder, direction_matching_loss
from bortnas.runtime.device import CPU, Device
from bortnas.train.checkpoint import Checkpoint, Position
from bortnas.train.objectives import Objective
from bortnas.train.teacher_cache import TeacherCache, TeacherOutputs

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Every metric of the task (`metrics`, the headline one first), the mean supervised loss, the example count."""

    metrics: dict[str, float]
    loss: float
    examples: int
    task: Task = TASKS["classification"]

    @property
    def score(self) -> float:
        """The headline metric (`Task.metric`)."""
        return self.metrics[self.task.metric]

    @property
    def accuracy(self) -> float:
        """Classification accuracy (the headline of a single-label task; callers that only know that task read it)."""
        return self.metrics["accuracy"]

    @property
    def error(self) -> float:
        """W's error e of the headline metric (`Task.error`)."""
        return self.task.error(self.score)


def _masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weight = mask.unsqueeze(-1).to(student.dtype)
    return ((student - teacher) ** 2 * weight).sum() / (weight.sum() * student.shape[-1])


def distillation_loss(
    student_out: Any,
    teacher_out: TeacherOutputs,
    batch: dict[str, torch.Tensor],
    config: TrainConfig,
    extraction: Extraction,
    projections: tuple[ProjectionRecorder, ProjectionRecorder] | None = None,
    objective: Objective = Objective(),
) -> torch.Tensor:
    """Output KD + supervised loss + hidden-state MSE (+ DMD on the recorded student / teacher projections)."""
    mask = batch["attention_mask"]
    kd = objective.distillation_loss(objective.output(student_out, mask), teacher_out.output, mask, config.kd_temperature)
    # examples without a label of their own (SOFT_ONLY: Agora's generated ones) learn from the teacher alone
    if objective.task.labelled:
        supervised = objective.supervised_loss(objective.output(student_out, mask), batch["labels"])
        loss = config.kd_weight * kd + (1 - config.kd_weight) * supervised
    else:
        loss = kd
    if teacher_out.masked_logits is not None:  # Bort's masked-token distillation (a teacher with a masked-LM head)
        loss = loss + objective.masked_token_loss(student_out.masked_logits, teacher_out.masked_logits, batch["labels"])
    if config.hidden_weight:
        s_hidden, t_hidden = student_out.hidden_states, teacher_out.hidden_states
        assert s_hidden is not None and t_hidden is not None, "the forward passes were asked for hidden states"
        pairs = [(0, 0)] + [(k + 1, layer + 1) for k, layer in enumerate(extraction.layers)]
        mse = sum(_masked_mse(s_hidden[s], t_hidden[t_][..., extraction.hidden], batch["attention_mask"]) for s, t_ in pairs)
        loss = loss + config.hidden_weight * mse / len(pairs)
    if projections is not None:
        layer_pairs = list(enumerate(extraction.layers))
        dmd = direction_matching_loss(projections[0].outputs, projections[1].outputs, layer_pairs, batch["attention_mask"])
        loss = loss + config.dmd_weight * dmd / len(layer_pairs)
    return loss


class _DivergenceWatch:
    """The first non-finite loss of a run, kept on the device so that a step needs no host read.

    `check` reads it (one host synchronisation) and raises if there was one; the training loop
    calls it every `Device.sync_every` steps and at the last step.
    """

    def __init__(self, device: torch.device, total_steps: int) -> None:
        self.total_steps = total_steps
        self.bad_step = torch.zeros((), dtype=torch.long, device=device)  # 1-based step of the first non-finite loss; 0: none
        self.bad_loss = torch.zeros((), device=device)
        self.last = torch.full((), float("nan"), device=device)

    def record(self, step: int, loss: torch.Tensor) -> None:
        value = loss.detach().float()
        first = (self.bad_step == 0) & ~torch.isfinite(value)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_loss = torch.where(first, value, self.bad_loss)
        self.last = value

    def check(self) -> float:
        """The last recorded loss, on the host.

        Raises:
            TrialFailed: a recorded loss was NaN or infinite.
        """
        step = int(self.bad_step)
        if step:
            raise TrialFailed(f"training diverged: loss is {float(self.bad_loss)} at step {step} of {self.total_steps}")
        return float(self.last)


def _teacher_outputs(
    forward: Callable[..., Any],
    inputs: dict[str, torch.Tensor],
    hidden: bool,
    recorder: ProjectionRecorder | None,
    objective: Objective,
) -> TeacherOutputs:
    """The teacher's forward pass without gradient (recording its projections for BiBERT's DMD when asked)."""
    with torch.no_grad(), recorder if recorder is not None else contextlib.nullcontext():
        out = forward(**inputs, output_hidden_states=hidden)
    masked = getattr(out, "masked_logits", None)
    return TeacherOutputs(objective.output(out, inputs["attention_mask"]), out.hidden_states if hidden else None, masked)


def train(
    model: PreTrainedModel,
    data: EncodedSplit,
    config: TrainConfig,
    teacher: PreTrainedModel | None = None,
    extraction: Extraction | None = None,
    show_progress_bar: bool = False,
    description: str = "train",
    on_step: Callable[[int], None] | None = None,
    device: Device = CPU,
    teacher_cache: TeacherCache | None = None,
    objective: Objective = Objective(),
    checkpoint: Checkpoint | None = None,
) -> None:
    """Train `model` in place for `config.steps` steps on shuffled batches of `data`, for `objective`'s task.

    `model` (and `teacher`) must already be on `device`; batches are moved there. The loss is read
    on the host every `device.sync_every` steps (every step on the CPU), so on CUDA a diverged run
    stops at the next check, reporting the step where the loss first stopped being finite.
    `on_step(step)` is called after every optimizer step. A `teacher_cache` that serves this
    teacher and split replaces the teacher's forward pass for batches it has seen (not with BiBERT's
    direction matching, which records the teacher's projections). With a `checkpoint`, the run
    resumes from its saved state and saves its state now and then (`bortnas.train.checkpoint`).

    Raises:
        TrialFailed: the loss became NaN or infinite.
    """
    if teacher is not None and extraction is None:
        raise ValueError("distillation needs the extraction that maps student to teacher units")
    torch.manual_seed(config.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=0.9)
    else:
        # the fused kernel (CUDA and CPU) updates every parameter in one pass; the same AdamW update. On the CPU
        # the default per-tensor loop cost 0.053 s a step for an L2-H192 student (its 5.9M-entry word
        # embedding), the fused one 0.007 s: most of a small student's step
        optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=True)
    # linear warm-up over warmup_fraction of the steps, then linear decay to 0 (the transformers schedule)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * config.steps), config.steps)
    model.train()
    if teacher is not None:
        teacher.eval()
    student_forward = device.prepare(objective.forward_of(model))
    teacher_forward = device.prepare(objective.forward_of(teacher)) if teacher is not None else None
    watch = _DivergenceWatch(device.torch_device, config.steps)
    # a masked-LM teacher's logits per masked token are not cached: a window's would take megabytes
    cache = None
    if teacher is not None and teacher_cache is not None and objective.mask_token_id is None and teacher_cache.serves(teacher, data):
        cache = teacher_cache
    position = checkpoint.restore(model, optimizer, scheduler) if checkpoint is not None else Position(0, 0, 0)
    bar = progress_bar(config.steps, description, show_progress_bar, leave=False)
    bar.update(position.step)
    step, epoch, skip, loss_value = position.step, position.epoch, position.batch, float("nan")
    try:
        while step < config.steps:
            for used, indices in enumerate(data.batch_indices(config.batch_size, shuffle=True, seed=config.seed * 1000 + epoch), 1):
                if used <= skip:  # a resumed run: batches the saved state had already learned from
                    continue
                batch = device.put(data.batch(indices, device.pad_multiple))
                with device.autocast():
                    if teacher_forward is None:
                        inputs = {k: v for k, v in batch.items() if k != "labels"}
                        output = objective.output(student_forward(**inputs), batch["attention_mask"])
                        loss = objective.supervised_loss(output, batch["labels"])
                    else:
                        # teacher_forward is set only with a teacher, which needs an extraction (checked above)
                        assert teacher is not None and extraction is not None
                        inputs = {k: v for k, v in batch.items() if k != "labels"}
                        recorders = (ProjectionRecorder(model), ProjectionRecorder(teacher)) if config.dmd_weight else None
                        hidden = bool(config.hidden_weight)
                        run_teacher = functools.partial(
                            _teacher_outputs, teacher_forward, inputs, hidden, recorders[1] if recorders else None, objective
                        )
                        if cache is not None and recorders is None:
                            teacher_out = cache.outputs(indices, batch["attention_mask"], hidden, run_teacher)
                        else:
                            teacher_out = run_teacher()
                        with recorders[0] if recorders else contextlib.nullcontext():
                            student_out = student_forward(**inputs, output_hidden_states=bool(config.hidden_weight))
                        loss = distillation_loss(student_out, teacher_out, batch, config, extraction, recorders, objective)
                watch.record(step + 1, loss)
                if (step + 1) % device.sync_every == 0 or step + 1 == config.steps:
                    loss_value = watch.check()
                    bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                if config.clip_weights is not None:
                    with torch.no_grad():
                        for p in model.parameters():
                            p.clamp_(-config.clip_weights, config.clip_weights)
                step += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step)
                if checkpoint is not None and (checkpoint.due() or step == config.steps):
                    watch.check()  # never save a diverged state
                    checkpoint.save(model, optimizer, scheduler, Position(step, epoch, used))
                if step >= config.steps:
                    break
            epoch += 1
            skip = 0
    finally:
        bar.close()
    model.eval()


@torch.no_grad()
def evaluate(
    model: PreTrainedModel, data: EncodedSplit, batch_size: int | None = None, device: Device = CPU, objective: Objective = Objective()
) -> EvalResult:
    """Every metric of `objective`'s task and the mean supervised loss of `model` (already on `device`) on `data`.

    Eval mode, no gradient; batched shortest first. `batch_size` None: sized to the model and the
    device (`Device.inference_batch_size`). An embedding model is scored against its teacher's
    embeddings, which `data.reference` must hold (`Objective.metrics`); its loss is 0 (no labels).

    Raises:
        TrialFailed: the loss or an output is not finite.
    """
    outputs = task_outputs(model, data, objective, batch_size, device)
    n = len(data)
    labels = data.labels
    if data.token_labels is not None:
        width = max(map(len, data.token_labels), default=0)
        labels = torch.full((n, width), IGNORE, dtype=torch.long)
        for i, row in enumerate(data.token_labels):
            labels[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    loss = 0.0
    for start in range(0, n if objective.task.labelled else 0, 256):  # an unlabelled task has no supervised loss
        chunk = outputs[start : start + 256]
        stacked = torch.stack([_pad_rows(o, labels.shape[-1]) for o in chunk]) if data.token_labels is not None else torch.stack(chunk)
        loss += float(objective.supervised_loss(stacked, labels[start : start + len(chunk)])) * len(chunk)
    loss /= max(n, 1)
    if not math.isfinite(loss) or not all(torch.isfinite(o).all() for o in outputs):
        raise TrialFailed(f"evaluation produced a non-finite loss or output ({loss})")
    return EvalResult(metrics=objective.metrics(outputs, data), loss=loss, examples=n, task=objective.task)


def _pad_rows(output: torch.Tensor, width: int) -> torch.Tensor:
    """A token task's per-token outputs, cut or zero-padded to `width` rows."""
    out = torch.zeros((width, output.shape[-1]), dtype=output.dtype)
    out[: min(width, output.shape[0])] = output[:width]
    return out


@torch.no_grad()
def task_outputs(
    model: PreTrainedModel, data: EncodedSplit, objective: Objective, batch_size: int | None, device: Device
) -> list[torch.Tensor]:
    """`objective.output` of every example of `data`, on the host in the split's order (a token task's unpadded)."""
    model.eval()
    forward = objective.forward_of(model)
    batch_size = batch_size or device.inference_batch_size(model, data.longest)
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    rows: list[torch.Tensor | None] = [None] * len(data)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = data.batch(indices, device.pad_multiple)
        batch.pop("labels")
        batch = device.put(batch)
        with device.autocast():
            output = objective.output(forward(**batch), batch["attention_mask"]).float().cpu()
        for row, i in enumerate(indices):
            rows[i] = output[row, : len(data.input_ids[i])] if output.dim() == 3 else output[row]
    return [r for r in rows if r is not None]


@torch.no_grad()
def _per_example(
    model: PreTrainedModel,
    data: EncodedSplit,
    read: Callable[[SequenceClassifierOutput, dict[str, torch.Tensor]], torch.Tensor],
    batch_size: int | None,
    device: Device,
    hidden: bool = False,
) -> torch.Tensor:
    """`read(output, batch)` of every example of `data` (one row each), on the CPU in the split's order;
    batched shortest first, as in `evaluate`."""
    model.eval()
    batch_size = batch_size or device.inference_batch_size(model, data.longest)
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    rows = []
    for start in range(0, len(order), batch_size):
        batch = data.batch(order[start : start + batch_size], device.pad_multiple)
        batch.pop("labels")
        batch = device.put(batch)
        with device.autocast():
            rows.append(read(model(**batch, output_hidden_states=hidden), batch).float().cpu())
    if not rows:
        return torch.empty(0)
    out = torch.empty_like(torch.cat(rows))
    out[torch.tensor(order)] = torch.cat(rows)
    return out


def _logits(out: SequenceClassifierOutput) -> torch.Tensor:
    assert out.logits is not None, "a sequence classifier's forward pass returns logits"
    logits: torch.Tensor = out.logits
    return logits


def predict(model: PreTrainedModel, data: EncodedSplit, batch_size: int | None = None, device: Device = CPU) -> list[int]:
    """The predicted label of every example of `data`, in the split's order (`model` already on `device`; batches as in `evaluate`)."""
    labels = _per_example(model, data, lambda out, _: _logits(out).argmax(-1), batch_size, device)
    return [int(v) for v in labels.tolist()]


def probabilities(model: PreTrainedModel, data: EncodedSplit, batch_size: int | None = None, device: Device = CPU) -> torch.Tensor:
    """The class probabilities (softmax of the logits) of every example of `data`, one row each, in the split's order."""
    return _per_example(model, data, lambda out, _: _logits(out).float().softmax(-1), batch_size, device)


def embeddings(model: PreTrainedModel, data: EncodedSplit, batch_size: int | None = None, device: Device = CPU) -> torch.Tensor:
    """The mean of every example's last hidden states over its tokens (padding excluded), one row each:
    a sentence embedding in `model`'s space (Agora's nearest neighbours from an unlabelled pool)."""

    def mean_pooled(out: SequenceClassifierOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        assert out.hidden_states is not None, "asked for hidden states"
        mask = batch["attention_mask"].unsqueeze(-1).to(out.hidden_states[-1].dtype)
        return (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)

    return _per_example(model, data, mean_pooled, batch_size, device, hidden=True)
