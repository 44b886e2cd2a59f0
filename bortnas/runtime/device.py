"""Where candidate evaluation runs: the device, its precision, how batches reach it, its memory share.

Torch layer. The device decides how fast a trial runs, not what it measures, so it is not part of
`RunSettings` (which a study pins when it resumes): a study started on a GPU may be resumed on a
CPU. It travels on the `Context` instead and is passed to `train`, `evaluate` and
`measure_latency`. On CUDA, forward passes run under bf16 autocast (fp32 weights, optimizer state
and loss reductions; no loss scaling is needed with bf16), batches are copied from pinned host
memory without blocking, and the training loop reads the loss on the host only every
`CUDA_SYNC_EVERY` steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bortnas.core.errors import ParameterError
from bortnas.families import family_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Steps between host reads of the loss on CUDA. Each read waits for the GPU to drain; every 50
# steps that wait costs well under 1 % of a step while a diverged trial still stops within 50 steps.
CUDA_SYNC_EVERY = 50
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
# Evaluation batches: 128 keeps a CPU's working set in cache; on a GPU the batch grows with the
# memory left (`inference_batch_size`) up to MAX_INFERENCE_BATCH, past which kernels are already
# saturated for the models searched here.
CPU_INFERENCE_BATCH = 128
MAX_INFERENCE_BATCH = 4096


def inference_batch_size(
    budget_bytes: float,
    seq_len: int,
    hidden: int,
    ffn: int,
    heads: int,
    dtype_bytes: int = 2,
    floor: int = CPU_INFERENCE_BATCH,
    ceiling: int = MAX_INFERENCE_BATCH,
) -> int:
    """The largest power-of-two batch, in [floor, ceiling], whose peak activations fit in `budget_bytes`.

    Without gradients only one encoder layer's activations are alive at a time. Per token that
    layer holds at most: its input and output hidden states, the query, key and value (5 x
    hidden), the FFN's intermediate before and after the activation (2 x ffn), and every head's
    attention scores and probabilities over `seq_len` keys (2 x heads x seq_len).
    """
    per_example = dtype_bytes * seq_len * (5 * hidden + 2 * ffn + 2 * heads * seq_len)
    fits = int(budget_bytes // per_example)
    size = floor
    while size * 2 <= min(fits, ceiling):
        size *= 2
    return size


def resolve_device(device_name: str) -> torch.device:
    """The torch device named `device_name` (the CLI's `--device`): auto is CUDA when a GPU is
    visible, else the CPU.

    Raises:
        ParameterError: an unknown name, or CUDA asked for where no (such) GPU is visible
            (parameter "device", the field of `Execution` that names it).
    """
    name = device_name.strip().lower()
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise ParameterError("device", f"={name} is unknown: use {DEVICE_CHOICES}.")
    if not torch.cuda.is_available():
        raise ParameterError(
            "device",
            f"={name} asks for a GPU but torch {torch.__version__} sees no CUDA device: "
            "use cpu (or auto), or install a CUDA build of torch.",
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ParameterError("device", f"={name}: only {count} CUDA device(s) are visible (cuda:0..cuda:{count - 1}): use one of those.")
    return torch.device("cuda", index)


@dataclasses.dataclass(frozen=True)
class Device:
    """Where a run's tensors live and how its forward passes execute there.

    `Device()` is the CPU in fp32 with the loss checked every step: exactly the behaviour before
    devices existed. `Device.from_name("cuda")` adds bf16 autocast and deferred loss checks.
    Tests may build other combinations (bf16 autocast or deferred checks on the CPU) to exercise
    the GPU code paths without a GPU.
    """

    torch_device: torch.device = torch.device("cpu")
    autocast_dtype: torch.dtype | None = None  # None: run in the weights' precision (fp32)
    compile: bool = False  # torch.compile the models of the training loop (compile time is paid per trial)
    sync_every: int = 1  # training steps between host reads of the loss (divergence checks)
    memory_share: float = 1.0  # this process's share of the GPU's memory (fractional GPUs under Ray)

    def __post_init__(self) -> None:
        if self.sync_every < 1:
            raise ValueError(f"sync_every={self.sync_every} must be at least 1.")
        if not 0.0 < self.memory_share <= 1.0:
            raise ValueError(f"memory_share={self.memory_share} must be in (0, 1].")

    @classmethod
    def from_name(cls, device_name: str = "auto", compile: bool = False) -> Device:
        """The device named `device_name` (the CLI's `--device`), with the settings its kind runs best with.

        Raises:
            ParameterError: see `resolve_device`.
        """
        device = resolve_device(device_name)
        if device.type == "cuda":
            return cls(device, autocast_dtype=torch.bfloat16, compile=compile, sync_every=CUDA_SYNC_EVERY)
        return cls(device, compile=compile)

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    def describe(self) -> str:
        """A name that says which hardware measured a figure, e.g. "cpu" or "NVIDIA H100 80GB HBM3 (cuda:0, bf16)"."""
        precision = [str(self.autocast_dtype).removeprefix("torch.").replace("bfloat16", "bf16")] if self.autocast_dtype else []
        if self.is_cuda:
            index = self.torch_device.index if self.torch_device.index is not None else torch.cuda.current_device()
            return f"{torch.cuda.get_device_name(index)} ({', '.join([f'cuda:{index}', *precision])})"
        return f"cpu ({precision[0]})" if precision else "cpu"

    @property
    def pad_multiple(self) -> int:
        """Batch widths are rounded up to this: 8 on CUDA, where bf16 tensor cores work on
        multiples of 8 (an odd width falls back to slower kernels); 1 on a CPU, where padding
        only adds work. Padded positions are masked, so results do not change."""
        return 8 if self.is_cuda else 1

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The mixed-precision region of a forward pass (and its loss); a no-op without `autocast_dtype`."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.torch_device.type, dtype=self.autocast_dtype)

    def put(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`batch` on this device; to CUDA through pinned memory so the copy overlaps compute.

        Returns the same tensors on the CPU (no copy).
        """
        if not self.is_cuda:
            return batch
        return {k: v.pin_memory().to(self.torch_device, non_blocking=True) for k, v in batch.items()}

    def prepare(self, model: nn.Module) -> Callable[..., Any]:
        """What the training loop calls for `model`'s forward pass: the module, or its compiled form.

        The compiled form shares `model`'s parameters; `model` itself is not changed.
        """
        return torch.compile(model) if self.compile else model

    def inference_batch_size(self, model: PreTrainedModel, seq_len: int) -> int:
        """The evaluation batch for `model` at `seq_len` tokens: CPU_INFERENCE_BATCH on a CPU; on a
        GPU, sized to half the memory this process may still take (`memory_share` of the GPU,
        less what it holds), so the larger batch does not crowd out the training that follows.

        The training batch is not sized this way: it is a hyperparameter the study pins.
        """
        if not self.is_cuda:
            return CPU_INFERENCE_BATCH
        free, total = torch.cuda.mem_get_info(self.torch_device)
        held, cached = torch.cuda.memory_allocated(self.torch_device), torch.cuda.memory_reserved(self.torch_device)
        budget = min(free + cached - held, self.memory_share * total - held) / 2
        shape = family_of(model.config).shape(model.config, num_labels=2)
        return inference_batch_size(
            budget,
            seq_len,
            shape.hidden,
            2 * shape.ffn if shape.structure.gated_ffn else shape.ffn,
            shape.heads,
            dtype_bytes=2 if self.autocast_dtype is not None else 4,
        )

    def synchronize(self) -> None:
        """Wait for the work queued on this device (wall-clock timing of GPU work needs it)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.torch_device)


CPU = Device()


def limit_memory_fraction(device: Device, fraction: float) -> None:
    """Cap this process's CUDA caching allocator at `fraction` of `device`'s memory.

    For several trials sharing one GPU (Ray's fractional `num_gpus`): each trial process calls
    this with its share (e.g. 0.25 for `--gpus-per-trial 0.25`) before building its context, so
    one large candidate cannot take the memory the others need. An allocation past the cap raises
    `torch.OutOfMemoryError` in that process only. The cap covers tensors (weights, activations,
    optimizer state, the allocator's cache), not the CUDA context itself (a few hundred MiB per
    process), so leave that headroom when choosing the shares.

    Raises:
        ValueError: `device` is not a CUDA device, or `fraction` is not in (0, 1].
    """
    if not device.is_cuda:
        raise ValueError(f"a memory fraction bounds a CUDA device's memory; {device.describe()} has none to bound.")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in (0, 1].")
    torch.cuda.set_per_process_memory_fraction(fraction, device.torch_device)
