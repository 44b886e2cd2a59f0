"""Run settings and every default they imply, resolved in one place.

Pure layer: stdlib only (and the FPTAS step rule of `bortnas.algo.fptas`). A study pins its
`RunSettings`, so `export` and a resumed search rebuild exactly the same trials from the database
alone; the CLI only maps flags onto these classes. Defaults that depend on other settings (the
learning rate that `--init` implies, the FPTAS step count that `--epsilon` implies) are resolved
here, so a library caller gets what the command line gets.
"""

from __future__ import annotations

import codecs
import dataclasses
from pathlib import Path
from typing import Any, Literal

from bortnas.algo import fptas
from bortnas.core.budget import BUDGET_FLAGS, Budget
from bortnas.core.errors import UserInputError
from bortnas.core.default_teacher import default_teacher_dir
from bortnas.modes import QuantMode

__all__ = [
    "DEFAULT_BIT_CHAIN",
    "DEFAULT_LR",
    "DEFAULT_TRIAL_STEPS",
    "RaySettings",
    "RunSettings",
    "SearchOptions",
    "TrainConfig",
]

SCRATCH_CLIP = 1.0  # weight bound of --init scratch: the FPTAS's compact weights ("weight clipping for compactness", Bort)
# AdamW for every student: 2e-4 refines inherited weights, random ones need a larger step (see RunSettings.student_train_config)
DEFAULT_LR = {"inherit": 2e-4, "scratch": 1e-3}
DEFAULT_TRIAL_STEPS = 60
DEFAULT_BIT_CHAIN = "bit_w1a4,bit_w1a2,bit_w1a1"  # BiT's multi-step distillation, wider activations first
DEFAULT_ENCODING = "utf-8"
STRATEGIES = ("fptas", "grid", "random", "tpe", "nsga2")
COSTS = ("flops", "latency")
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
    teacher, at 1e-3 from scratch.

    Raises:
        UserInputError: a non-positive count or rate, an unknown init, bit chain or encoding.
    """

    teacher: str | None = None  # a local transformers directory; None: the bundled all-MiniLM-L6-v2
    data: str | None = None  # a CSV / TSV / JSONL file; None: Rotten Tomatoes reviews
    text_column: str = "text"
    pair_column: str | None = None
    label_column: str = "label"
    data_seed: int = 0
    max_length: int = 64  # tokens per example; also the sequence length of FLOPs and latency
    teacher_steps: int = 250
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
    # the budget (bortnas.core.budget): only candidates inside it are trained; None leaves a dimension free
    max_latency_ms: float | None = None
    max_size_mib: float | None = None
    max_params: float | None = None
    max_flops: float | None = None
    min_speedup: float | None = None

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise UserInputError(f"--cost={self.cost!r} is unknown: use {' or '.join(COSTS)}.")
        budget = self.budget()
        for name in BUDGET_FLAGS:
            object.__setattr__(self, name, getattr(budget, name))
        if self.latency_backend not in LATENCY_BACKENDS:
            raise UserInputError(f"--latency-backend={self.latency_backend!r} is unknown: use {' or '.join(LATENCY_BACKENDS)}.")
        if self.init not in DEFAULT_LR:
            raise UserInputError(f"--init={self.init!r} is unknown: use inherit or scratch.")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.init])
        self.chain()
        for name in ("max_length", "teacher_steps", "trial_steps", "batch_size", "latency_threads"):
            if getattr(self, name) <= 0:
                raise UserInputError(f"--{name.replace('_', '-')}={getattr(self, name)} must be a positive integer.")
        for name in ("teacher_lr", "lr"):
            if not getattr(self, name) > 0:
                raise UserInputError(f"--{name.replace('_', '-')}={getattr(self, name)} must be positive.")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise UserInputError(f"--encoding={self.encoding!r} is not a known text encoding: use e.g. utf-8 or latin-1.") from None

    @property
    def learning_rate(self) -> float:
        """`lr`, resolved (never None after construction)."""
        assert self.lr is not None
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        """The settings a study pins. The encoding, the cost, the latency backend and the budget are
        left out at their defaults, so studies made before they existed resume."""
        out = dataclasses.asdict(self)
        defaults = (("encoding", DEFAULT_ENCODING), ("cost", "flops"), ("latency_backend", "torch"), *((f, None) for f in BUDGET_FLAGS))
        for name, default in defaults:
            if out[name] == default:
                del out[name]
        return out

    def budget(self) -> Budget:
        """The budget the search keeps to (empty when no bound is set).

        Raises:
            UserInputError: a bound that is not a positive finite number.
        """
        return Budget(**{f: getattr(self, f) for f in BUDGET_FLAGS})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def chain(self) -> tuple[QuantMode, ...]:
        """The distillation chain of BiT candidates, as mode names: a candidate of a mode in the
        chain is trained through every mode before it, each stage distilled from the previous one.

        Raises:
            UserInputError: an unknown or full-precision mode in the chain.
        """
        names = tuple(n.strip() for n in self.bit_chain.split(",") if n.strip())
        unknown = [n for n in names if n not in QuantMode.names()]
        if unknown:
            raise UserInputError(
                f"--bit-chain={self.bit_chain!r} has an unknown mode {unknown[0]!r}: use quantization modes such as {DEFAULT_BIT_CHAIN}."
            )
        if "fp32" in names or len(set(names)) != len(names):
            raise UserInputError(f"--bit-chain={self.bit_chain!r}: list distinct quantized modes (fp32 is the task teacher, always first).")
        return tuple(QuantMode(n) for n in names)

    def teacher_dir(self) -> Path:
        """The teacher directory: `teacher`, or the bundled all-MiniLM-L6-v2."""
        return Path(self.teacher) if self.teacher else default_teacher_dir()

    def teacher_train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.teacher_steps, batch_size=self.batch_size, lr=self.teacher_lr, seed=self.seed)

    def student_train_config(self, steps: int, seed: int | None = None, dmd_weight: float = 0.0) -> TrainConfig:
        """One recipe for every student: AdamW at the settings' rate with KD, CE and the hidden-state
        loss. From scratch every weight is also clipped to [-SCRATCH_CLIP, SCRATCH_CLIP], the compact
        weights the FPTAS assumes. `dmd_weight` is the mode's direction-matching loss
        (`QuantConfig.dmd_weight`).

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
            dmd_weight=dmd_weight,
        )


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How `bortnas search` proposes candidates, validated; `trial_steps()` resolves the steps per trial.

    Raises:
        UserInputError: an unknown strategy, a non-positive count, an epsilon outside (0, 1), or
            `trial_steps` given to the FPTAS (whose steps follow from epsilon).
    """

    strategy: str = "fptas"
    n_trials: int = 8
    epsilon: float = 0.1
    fptas_n0: float = 6.0
    fptas_s: float = 1.0
    fptas_refine: int = 0  # bucket members evaluated after the representatives (`bortnas.algo.fptas.refinement`)
    trial_steps_given: int | None = None
    heartbeat_interval: int = 20  # seconds between a running trial's heartbeats
    grace_period: int | None = None  # seconds of silence after which a running trial is dead (default 3 intervals)

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or (self.grace_period is not None and self.grace_period <= self.heartbeat_interval):
            raise UserInputError(
                f"--heartbeat-interval={self.heartbeat_interval} must be positive and --grace-period={self.grace_period} "
                "longer than it (default 3 intervals)."
            )
        if self.strategy not in STRATEGIES:
            raise UserInputError(f"--strategy {self.strategy!r} is unknown: use one of {', '.join(STRATEGIES)}.")
        if self.n_trials <= 0:
            raise UserInputError(f"--n-trials={self.n_trials} must be a positive integer.")
        if self.fptas_refine < 0 or (self.fptas_refine and self.strategy != "fptas"):
            raise UserInputError(f"--fptas-refine={self.fptas_refine} must be >= 0, and applies to --strategy fptas only.")
        if self.strategy == "fptas":
            if self.trial_steps_given is not None:
                raise UserInputError(
                    "--trial-steps does not apply to --strategy fptas: its steps are n = ceil(n0 / (epsilon * s^1.5)); "
                    "set --epsilon or --fptas-n0."
                )
            if self.fptas_n0 <= 0 or self.fptas_s <= 0:
                raise UserInputError(f"--fptas-n0={self.fptas_n0} and --fptas-s={self.fptas_s} must be positive.")
            check_epsilon(self.epsilon)

    def trial_steps(self) -> int:
        """Distillation steps of every trial: the FPTAS's n for fptas, else the given or default count."""
        if self.strategy == "fptas":
            return fptas.steps_for(self.epsilon, self.fptas_n0, self.fptas_s)
        return DEFAULT_TRIAL_STEPS if self.trial_steps_given is None else self.trial_steps_given


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """Where and how Ray runs the trials of `--backend ray`.

    `address`: an existing cluster ("auto", "HOST:PORT"); None starts a local Ray of `num_cpus`
    CPUs (default: all). `cpus_per_trial` / `gpus_per_trial` may be fractions; a trial with a
    GPU share trains and measures on that GPU, else on its CPUs. `asha`: stop poor trials early
    from their reports at `checkpoints` evenly spaced points (sampler strategies only: FPTAS and
    grid evaluate every chosen candidate in full).

    Raises:
        UserInputError: a non-positive CPU count or share, or a negative GPU share.
    """

    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    asha: bool = True
    checkpoints: int = 3

    def __post_init__(self) -> None:
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0 or (self.num_cpus is not None and self.num_cpus <= 0):
            raise UserInputError(
                f"--cpus-per-trial={self.cpus_per_trial} must be positive, --gpus-per-trial={self.gpus_per_trial} "
                f"not negative and --ray-cpus={self.num_cpus} positive (fractions like 0.5 are allowed per trial)."
            )

    def check_device(self, device: str) -> None:
        """Refuse a `--device` that Ray trials could not honour: their device is their GPU share.

        Raises:
            UserInputError: `--device cuda[:N]` without a GPU share per trial (the trials would run
                on CPUs), or `--device cpu` with one (the GPUs would be reserved and left idle).
        """
        name = device.strip().lower()
        if (name.startswith("cuda") and self.gpus_per_trial <= 0) or (name == "cpu" and self.gpus_per_trial > 0):
            raise UserInputError(
                f"--device {device} with --gpus-per-trial {self.gpus_per_trial:g}: under --backend ray a trial runs on "
                "the GPU share Ray gives it (--gpus-per-trial 1, or 0.25 for four trials per GPU) and on CPUs without "
                "one; --device places only the driver's teacher fine-tuning."
            )


def check_epsilon(epsilon: float) -> None:
    """Raises `UserInputError` unless epsilon is in (0, 1)."""
    if not 0.0 < epsilon < 1.0:
        raise UserInputError(f"--epsilon={epsilon} must be in (0, 1), e.g. 0.1 for a 90 % guarantee.")
