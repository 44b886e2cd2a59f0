"""Run settings and the evaluation context they build: task data, task teacher, tokenized splits.

Torch layer (through the teacher). A study stores its `RunSettings`, so `export` and a resumed
search rebuild exactly the same context from the database alone. The device is chosen per
process (`bortnas.runtime.device`), not stored: it changes how fast a trial runs, not what it means.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Literal

from bortnas.data.tasks import TaskData, load_rotten_tomatoes, load_table
from bortnas.runtime.device import CPU, Device
from bortnas.data.encode import EncodedSplit, encode
from bortnas.core.errors import UserInputError
from bortnas.model.families import teacher_shape
from bortnas.core.space import QuantMode, TeacherShape
from bortnas.model.teacher import TaskTeacher, default_teacher_dir, load_teacher_config, prepare_teacher
from bortnas.train.loop import TrainConfig

_logger = logging.getLogger(__name__)

SCRATCH_CLIP = 1.0  # weight bound of --init scratch ("weight clipping for compactness", Bort)
DEFAULT_LR = {"inherit": 2e-4, "scratch": 2e-2}  # AdamW on inherited weights; SGD from scratch
DEFAULT_TRIAL_STEPS = 60
DEFAULT_BIT_CHAIN = "bit_w1a4,bit_w1a2,bit_w1a1"  # BiT's multi-step distillation, wider activations first
DMD_WEIGHT = 1.0  # BiBERT's direction-matching loss, added for bibert students


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that determines a trial's result besides the candidate."""

    teacher: str | None = None  # a local transformers directory; None: the bundled all-MiniLM-L6-v2
    data: str | None = None  # a CSV / TSV / JSONL file; None: Rotten Tomatoes reviews
    text_column: str = "text"
    pair_column: str | None = None
    label_column: str = "label"
    data_seed: int = 0
    max_length: int = 64  # tokens per example; also the sequence length of FLOPs and latency
    teacher_steps: int = 250
    teacher_lr: float = 1e-4
    trial_steps: int = 60
    lr: float = 2e-4
    batch_size: int = 32
    seed: int = 0
    init: Literal["inherit", "scratch"] = "inherit"
    latency_threads: int = 1
    bit_chain: str = DEFAULT_BIT_CHAIN

    def __post_init__(self) -> None:
        self.chain()
        for name in ("max_length", "teacher_steps", "trial_steps", "batch_size", "latency_threads"):
            if getattr(self, name) <= 0:
                raise UserInputError(f"--{name.replace('_', '-')}={getattr(self, name)} must be a positive integer.")
        for name in ("teacher_lr", "lr"):
            if not getattr(self, name) > 0:
                raise UserInputError(f"--{name.replace('_', '-')}={getattr(self, name)} must be positive.")
        if self.init not in ("inherit", "scratch"):
            raise UserInputError(f"--init={self.init!r} is unknown: use inherit or scratch.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def chain(self) -> tuple[QuantMode, ...]:
        """The distillation chain of BiT candidates: a candidate of a mode in the chain is trained
        through every mode before it, each stage distilled from the previous one.

        Raises:
            UserInputError: an unknown or full-precision mode in the chain.
        """
        names = [n.strip() for n in self.bit_chain.split(",") if n.strip()]
        try:
            modes = tuple(QuantMode(n) for n in names)
        except ValueError:
            raise UserInputError(f"--bit-chain={self.bit_chain!r} has an unknown mode: use quantization modes such as {DEFAULT_BIT_CHAIN}.") from None
        if QuantMode.FP32 in modes or len(set(modes)) != len(modes):
            raise UserInputError(f"--bit-chain={self.bit_chain!r}: list distinct quantized modes (fp32 is the task teacher, always first).")
        return modes

    def teacher_dir(self) -> Path:
        return Path(self.teacher) if self.teacher else default_teacher_dir()

    def teacher_train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.teacher_steps, batch_size=self.batch_size, lr=self.teacher_lr, seed=self.seed)

    def student_train_config(self, steps: int, seed: int | None = None, mode: QuantMode = QuantMode.FP32) -> TrainConfig:
        """Students cut from the teacher train with AdamW; from scratch, as the FPTAS assumes:
        plain SGD (with momentum) and every weight clipped to [-SCRATCH_CLIP, SCRATCH_CLIP].
        BiBERT students add the direction-matching loss."""
        scratch = self.init == "scratch"
        return TrainConfig(
            steps=steps,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed if seed is None else seed,
            optimizer="sgd" if scratch else "adamw",
            clip_weights=SCRATCH_CLIP if scratch else None,
            dmd_weight=DMD_WEIGHT if mode is QuantMode.BIBERT else 0.0,
        )


def default_cache_dir() -> Path:
    return Path(os.environ.get("BORTNAS_CACHE", Path.home() / ".cache" / "bortnas"))


def load_task(settings: RunSettings) -> TaskData:
    if settings.data is None:
        return load_rotten_tomatoes(seed=settings.data_seed)
    return load_table(settings.data, settings.text_column, settings.label_column, settings.pair_column, seed=settings.data_seed)


def check_inputs(settings: RunSettings) -> tuple[TeacherShape, TaskData]:
    """Validate teacher and data cheaply (no weights loaded): the CLI calls this before writing."""
    data = load_task(settings)
    config = load_teacher_config(settings.teacher_dir())
    return teacher_shape(config, data.num_labels), data


@dataclasses.dataclass
class Context:
    """What scoring and export need, built once per process; the teacher lives on `device`."""

    settings: RunSettings
    data: TaskData
    shape: TeacherShape
    teacher: TaskTeacher
    train: EncodedSplit
    dev: EncodedSplit
    test: EncodedSplit
    device: Device = CPU


def build_context(settings: RunSettings, cache_dir: Path | None = None, show_progress_bar: bool = False,
                  data: TaskData | None = None, device: Device = CPU) -> Context:
    """Load data and tokenizer, then fine-tune (or reuse from the cache) the task teacher on `device`.

    `data` replaces the settings' task (benchmarks that cut the training split down); the
    teacher cache is keyed by the data's fingerprint, so each data set gets its own teacher.
    Every trial scored with the context trains, evaluates and measures latency on `device`.
    """
    from transformers import AutoTokenizer

    shape, loaded = check_inputs(settings) if data is None else (teacher_shape(load_teacher_config(settings.teacher_dir()), data.num_labels), data)
    data = loaded
    directory = settings.teacher_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserInputError(f"teacher directory {directory} has no usable tokenizer ({e}): save one next to the model.") from e
    splits = [encode(getattr(data, name), tokenizer, settings.max_length) for name in ("train", "dev", "test")]
    teacher = prepare_teacher(
        directory,
        tokenizer,
        data.num_labels,
        splits[0],
        splits[1],
        data.fingerprint(),
        settings.teacher_train_config(),
        cache_dir or default_cache_dir(),
        show_progress_bar=show_progress_bar,
        device=device,
    )
    return Context(settings, data, shape, teacher, *splits, device=device)
