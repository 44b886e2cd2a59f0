"""Run settings and every default they imply, resolved in one place.

Pure layer: stdlib only. A study pins its `RunSettings`, so `export` and a resumed search rebuild
exactly the same trials from the database alone; the CLI only maps flags onto these classes.
Defaults that depend on other settings (the learning rate that `init` implies) are resolved here,
so a library caller gets what the command line gets. Errors name the field (`ParameterError`);
the CLI shows the flag that set it.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

from bortnas.core.budget import BUDGET_FIELDS, Budget
from bortnas.core.default_teacher import default_teacher_dir
from bortnas.core.errors import ParameterError
from bortnas.core.tasks import task_named
from bortnas.modes import QuantMode

__all__ = [
    "DEFAULT_BIT_CHAIN",
    "DEFAULT_LR",
    "DEFAULT_TEACHER_STEPS",
    "DEFAULT_TRIAL_STEPS",
    "Execution",
    "RaySettings",
    "RunSettings",
    "TrainConfig",
]

SCRATCH_CLIP = 1.0  # weight bound of --init scratch: the FPTAS's compact weights ("weight clipping for compactness", Bort)
# AdamW for every student: 2e-4 refines inherited weights, random ones need a larger step (see RunSettings.student_train_config)
DEFAULT_LR = {"inherit": 2e-4, "scratch": 1e-3}
DEFAULT_TRIAL_STEPS = 60
DEFAULT_TEACHER_STEPS = 250  # fine-tuning of a teacher without a task head
DEFAULT_BIT_CHAIN = "bit_w1a4,bit_w1a2,bit_w1a1"  # BiT's multi-step distillation, wider activations first
DEFAULT_ENCODING = "utf-8"
COSTS = ("flops", "latency")
# settings a study leaves out at these values, so studies made before the setting existed resume
OMITTED_AT_DEFAULT: dict[str, Any] = {
    "encoding": DEFAULT_ENCODING,
    "cost": "flops",
    "latency_backend": "torch",
    "task": "classification",
    "corpus": (),
    "hidden_weight": 1.0,
    **dict.fromkeys(BUDGET_FIELDS),
}
LATENCY_BACKENDS = ("torch", "onnxruntime")  # `bortnas.trial.deployed.measure_backend_latency`


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run of the training loop (`bortnas.train.loop.train`)."""

    steps: int
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd: momentum 0.9, Bort's scratch optimizer, kept for comparisons
    # Bort's FPTAS assumes compact weights: clip every weight to [-c, c] after each step.
    clip_weights: float | None = None
    max_grad_norm: float = 1.0
    kd_temperature: float = 2.0
    kd_weight: float = 0.9
    hidden_weight: float = 1.0
    dmd_weight: float = 0.0  # BiBERT's direction-matching distillation (bibert candidates)
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that determines a trial's result besides the candidate.

    `lr` None takes the default of `init` (`DEFAULT_LR`): AdamW at 2e-4 for weights cut from the
    teacher, at 1e-3 from scratch. `trial_steps` applies to the sampler strategies; the FPTAS sets
    its own from epsilon (`bortnas.FPTAS`).

    Raises:
        ParameterError: a non-positive count or rate, an unknown init, cost, latency backend, bit
            chain or encoding, or a budget bound that is not a positive number.
    """

    teacher: str | None = None  # a local transformers directory; None: the bundled all-MiniLM-L6-v2
    data: str | None = None  # a CSV / TSV / JSONL file; None: Rotten Tomatoes reviews
    # task "general": unlabelled text files (plain text one document a line, or CSV / TSV / JSONL with
    # `text_column`); empty: the English text that ships offline (`bortnas.data.corpus.default_corpus_files`)
    corpus: tuple[str, ...] = ()
    text_column: str = "text"
    pair_column: str | None = None
    label_column: str = "label"
    data_seed: int = 0
    max_length: int = 64  # tokens per example; also the sequence length of FLOPs and latency
    # None: the task, or the teacher's head, or what the data implies (`bortnas.trial.context.resolve_inputs`)
    task: str | None = None
    # None: DEFAULT_TEACHER_STEPS for a teacher without a task head, 0 (used as it is) for one with
    teacher_steps: int | None = None
    teacher_lr: float = 1e-4
    trial_steps: int = DEFAULT_TRIAL_STEPS
    lr: float | None = None
    batch_size: int = 32
    seed: int = 0
    init: Literal["inherit", "scratch"] = "inherit"
    latency_threads: int = 1
    # where latency is measured: PyTorch eager, or onnxruntime on the CPU running each model's deployable graph
    latency_backend: str = "torch"
    bit_chain: str = DEFAULT_BIT_CHAIN
    encoding: str = DEFAULT_ENCODING  # of --data
    cost: str = "flops"  # W's inference term i: analytic FLOPs (Bort's choice) or the study's measured latency table
    # weight of the hidden-state MSE at the teacher layers and units a student was cut from; 0 trains
    # students on the output distillation alone (for the general objective: relations only)
    hidden_weight: float = 1.0
    # only candidates inside it are trained (`bortnas.core.budget`); an empty budget leaves every dimension free
    budget: Budget = Budget()

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ParameterError("cost", f"={self.cost!r} is unknown: use {' or '.join(COSTS)}.")
        if self.latency_backend not in LATENCY_BACKENDS:
            raise ParameterError("latency_backend", f"={self.latency_backend!r} is unknown: use {' or '.join(LATENCY_BACKENDS)}.")
        if self.init not in DEFAULT_LR:
            raise ParameterError("init", f"={self.init!r} is unknown: use inherit or scratch.")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.init])
        self.chain()
        if self.task is not None:
            task_named(self.task)
        object.__setattr__(self, "corpus", tuple(self.corpus))  # a study's JSON gives a list
        if self.corpus and self.task != "general":
            raise ParameterError("corpus", " is the unlabelled text of the general objective: add objective general (task='general').")
        if self.task == "general" and self.data is not None:
            raise ParameterError(
                "data", f"={self.data!r} is task data, but the general objective distils on unlabelled text: pass it as the corpus."
            )
        for name in ("max_length", "trial_steps", "batch_size", "latency_threads"):
            if getattr(self, name) <= 0:
                raise ParameterError(name, f"={getattr(self, name)} must be a positive integer.")
        if self.teacher_steps is not None and self.teacher_steps < 0:
            raise ParameterError(
                "teacher_steps", f"={self.teacher_steps} must be 0 (a teacher with a task head, used as it is) or a positive integer."
            )
        for name in ("teacher_lr", "lr"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, f"={getattr(self, name)} must be positive.")
        if not (math.isfinite(self.hidden_weight) and self.hidden_weight >= 0):
            raise ParameterError("hidden_weight", f"={self.hidden_weight} must be a finite number, 0 or more.")
        try:
            codecs.lookup(self.encoding)
        except (LookupError, ValueError):  # ValueError: a name no codec could have (a NUL byte)
            raise ParameterError("encoding", f"={self.encoding!r} is not a known text encoding: use e.g. utf-8 or latin-1.") from None

    @property
    def learning_rate(self) -> float:
        """`lr`, resolved (never None after construction)."""
        assert self.lr is not None
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        """The settings a study pins, flat: the budget's bounds are top-level keys. The encoding, the
        cost, the latency backend and the budget's bounds are left out at their defaults, so studies
        made before they existed resume."""
        out = dataclasses.asdict(self)
        del out["budget"]
        out.update({f: getattr(self.budget, f) for f in BUDGET_FIELDS})
        for name, default in OMITTED_AT_DEFAULT.items():
            if out[name] in (default, None):
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        """The inverse of `to_dict` (unknown keys, from newer or older versions, are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"budget"}
        budget = Budget(**{f: data[f] for f in BUDGET_FIELDS if f in data})
        return cls(**{k: v for k, v in data.items() if k in known}, budget=budget)

    def chain(self) -> tuple[QuantMode, ...]:
        """The distillation chain of BiT candidates, as mode names: a candidate of a mode in the
        chain is trained through every mode before it, each stage distilled from the previous one.

        Raises:
            ParameterError: an unknown or full-precision mode in the chain.
        """
        names = tuple(n.strip() for n in self.bit_chain.split(",") if n.strip())
        unknown = [n for n in names if n not in QuantMode.names()]
        if unknown:
            raise ParameterError(
                "bit_chain", f"={self.bit_chain!r} has an unknown mode {unknown[0]!r}: use quantization modes such as {DEFAULT_BIT_CHAIN}."
            )
        if "fp32" in names or len(set(names)) != len(names):
            raise ParameterError(
                "bit_chain", f"={self.bit_chain!r}: list distinct quantized modes (fp32 is the task teacher, always first)."
            )
        return tuple(QuantMode(n) for n in names)

    def teacher_dir(self) -> Path:
        """The teacher directory: `teacher`, or the bundled all-MiniLM-L6-v2."""
        return Path(self.teacher) if self.teacher else default_teacher_dir()

    def teacher_train_config(self) -> TrainConfig:
        """The task teacher's fine-tuning; `teacher_steps` None counts as DEFAULT_TEACHER_STEPS here
        (`resolve_inputs` settles it per teacher before anything trains)."""
        steps = DEFAULT_TEACHER_STEPS if self.teacher_steps is None else self.teacher_steps
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.teacher_lr, seed=self.seed)

    def student_train_config(self, steps: int, seed: int | None = None, dmd_weight: float = 0.0) -> TrainConfig:
        """One recipe for every student: AdamW at the settings' rate with KD, CE and the hidden-state
        loss (at `hidden_weight`). From scratch every weight is also clipped to [-SCRATCH_CLIP,
        SCRATCH_CLIP], the compact weights the FPTAS assumes. `dmd_weight` is the mode's
        direction-matching loss (`QuantConfig.dmd_weight`).

        Bort trained scratch students with SGD; bortnas does not, because from transformers'
        N(0, 0.02) initialisation SGD with momentum never left the majority class: L2-H288-A12-I384
        on the reviews predicted it for every dev review after 600 steps at lr 2e-2 and 2e-1 and
        after 1500 at 2e-2 (0.588, the majority rate). AdamW reached 0.768 dev accuracy in 600 steps
        at 1e-3 (0.744 at 3e-3); clipping (0.765 without) and the hidden-state loss (0.771 without)
        changed nothing measurable, so both stay.
        """
        return TrainConfig(
            steps=steps,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            seed=self.seed if seed is None else seed,
            clip_weights=SCRATCH_CLIP if self.init == "scratch" else None,
            hidden_weight=self.hidden_weight,
            dmd_weight=dmd_weight,
        )


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """Where and how Ray runs the trials of `--backend ray`.

    `address`: an existing cluster ("auto", "HOST:PORT"); None starts a local Ray of `num_cpus`
    CPUs (default: all). `cpus_per_trial` / `gpus_per_trial` may be fractions; a trial with a
    GPU share trains and measures on that GPU, else on its CPUs. `asha`: stop poor trials early
    from their reports at `checkpoints` evenly spaced points (sampler strategies only: FPTAS and
    grid evaluate every chosen candidate in full).

    Raises:
        ParameterError: a non-positive CPU count or share, or a negative GPU share.
    """

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    asha: bool = True
    checkpoints: int = 3

    def __post_init__(self) -> None:
        if self.cpus_per_trial <= 0:
            raise ParameterError("cpus_per_trial", f"={self.cpus_per_trial} must be positive (fractions like 0.5 are allowed).")
        if self.gpus_per_trial < 0:
            raise ParameterError("gpus_per_trial", f"={self.gpus_per_trial} must not be negative (fractions like 0.25 are allowed).")
        if self.num_cpus is not None and self.num_cpus <= 0:
            raise ParameterError("num_cpus", f"={self.num_cpus} must be a positive integer, or None for every CPU.")

    def check_device(self, device: str) -> None:
        """Refuse a `--device` that Ray trials could not honour: their device is their GPU share.

        Raises:
            ParameterError: device "cuda[:N]" without a GPU share per trial (the trials would run
                on CPUs), or "cpu" with one (the GPUs would be reserved and left idle).
        """
        name = device.strip().lower()
        if (name.startswith("cuda") and self.gpus_per_trial <= 0) or (name == "cpu" and self.gpus_per_trial > 0):
            raise ParameterError(
                "device",
                f"={device!r} with gpus_per_trial={self.gpus_per_trial:g}: on Ray a trial runs on the GPU share Ray gives it "
                "(gpus_per_trial=1, or 0.25 for four trials per GPU) and on CPUs without one; the device places only the "
                "driver's teacher fine-tuning.",
                mentions=("gpus_per_trial",),
            )


@dataclasses.dataclass(frozen=True)
class Execution:
    """Where and how a search or an export runs: what changes how fast it goes, never what a trial means,
    so none of it is pinned with the study.

    `device`: "auto" (a GPU if one is visible, else the CPU), "cpu", "cuda" or "cuda:N"; on CUDA
    training runs in bf16 autocast and latency is GPU time. `compile`: torch.compile the training
    loop's models (pays off for long runs only). `cache_dir`: the fine-tuned teacher cache (None:
    $BORTNAS_CACHE or ~/.cache/bortnas). `heartbeat_interval`: seconds between a running trial's
    heartbeats; a trial silent for `grace_period` seconds (default three intervals) counts as dead
    and its candidate is evaluated again. `ray`: run the trials as Ray Tune trials (None: in this
    process; start the same search in several processes to share a study).

    Raises:
        ParameterError: a non-positive heartbeat interval, or a grace period not longer than it.
    """

    device: str = "auto"
    compile: bool = False
    cache_dir: Path | None = None
    heartbeat_interval: int = 20
    grace_period: int | None = None
    ray: RaySettings | None = None

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ParameterError("heartbeat_interval", f"={self.heartbeat_interval} must be a positive number of seconds.")
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            raise ParameterError(
                "grace_period",
                f"={self.grace_period} must be longer than heartbeat_interval={self.heartbeat_interval} (default: three intervals).",
                mentions=("heartbeat_interval",),
            )
        if self.ray is not None:
            self.ray.check_device(self.device)
