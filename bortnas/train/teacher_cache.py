"""The task teacher's outputs per training example, computed once and reused by every student.

Torch layer. In distillation the teacher's forward pass (logits and every hidden state) costs
about twice a small student's whole training step (docs/benchmarks/default-run.md: 0.23 s against 0.12 s
per batch of 32 for L2-H192 from MiniLM on one CPU thread). Its outputs depend only on the
example, not on the student: the teacher is frozen and in eval mode, and padding never changes
what a real token sees (attention masks it out). So they are kept per example, unpadded, and a
later batch that holds only cached examples is assembled from them without running the teacher:
every trial of a search after the first (the trials train on the same first batches), and every
epoch of an export after the first.

The cache is bounded (`max_bytes`); past it, batches are computed as before. It serves one
teacher and one split, and only plain forward passes (not BiBERT's, which also records the
teacher's projections). A cache made for one student keeps only the teacher `layers` that
student is matched to: every example of the reviews then fits with a BERT-base teacher (about
0.3 MB each for a 2-layer student instead of 1.3 MB for all 13 states), so an export's later
epochs never run the teacher.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bortnas.data.encode import EncodedSplit

DEFAULT_MAX_BYTES = 4 * 2**30  # fp32 hidden states of MiniLM for all 10,150 reviews take about 2.4 GiB


@dataclasses.dataclass(frozen=True)
class TeacherOutputs:
    """What distillation reads from the teacher: its task output (`Objective.output`: logits
    (batch, labels), a token task's (batch, width, labels), or a pooled embedding (batch, hidden))
    and, when asked, the hidden states (embedding output, then every layer), each (batch, width,
    hidden); padded positions are zero."""

    output: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None
    masked_logits: torch.Tensor | None = None  # a masked-LM teacher's logits at the masked positions (never cached)


class TeacherCache:
    """Per-example teacher outputs on `data`, for `teacher` only (see the module docstring).

    Cached tensors live on the CPU and are moved to the batch's device when used.
    """

    def __init__(
        self, teacher: PreTrainedModel, data: EncodedSplit, max_bytes: int = DEFAULT_MAX_BYTES, layers: Sequence[int] | None = None
    ) -> None:
        """`layers`: the hidden states kept (0 is the embedding output, k the k-th layer's); None: all.
        The others come back as None, so only a student matched to those layers may use the cache."""
        self.teacher, self.data, self.max_bytes = teacher, data, max_bytes
        self.layers = None if layers is None else sorted(set(layers))
        self._outputs: dict[int, torch.Tensor] = {}  # a token task's per real token
        self._hidden: dict[int, torch.Tensor] = {}  # (layers + 1, length, hidden) per example
        self.bytes = 0
        self.hits = 0  # batches assembled from the cache
        self.misses = 0  # batches the teacher computed

    def serves(self, teacher: PreTrainedModel, data: EncodedSplit) -> bool:
        return teacher is self.teacher and data is self.data

    def outputs(
        self,
        indices: Sequence[int],
        attention_mask: torch.Tensor,
        hidden: bool,
        compute: Callable[[], TeacherOutputs],
    ) -> TeacherOutputs:
        """The teacher's outputs for the batch of examples `indices` (padded as `attention_mask`):
        assembled from the cache when every example is there, else `compute()`d and cached."""
        have = self._hidden if hidden else self._outputs
        if all(i in have for i in indices):
            self.hits += 1
            return self._assemble(indices, attention_mask, hidden)
        self.misses += 1
        out = compute()
        self._store(indices, attention_mask, out)
        return out

    def _store(self, indices: Sequence[int], attention_mask: torch.Tensor, out: TeacherOutputs) -> None:
        lengths = attention_mask.sum(-1).tolist()
        stacked = None
        if out.hidden_states is not None:
            states = out.hidden_states if self.layers is None else [out.hidden_states[k] for k in self.layers]
            stacked = torch.stack(states).detach().cpu()
        output = out.output.detach().cpu()
        per_token = output.dim() == 3
        for row, (i, length) in enumerate(zip(indices, lengths, strict=True)):
            if i in self._outputs and (stacked is None or i in self._hidden):
                continue
            kept = output[row, :length] if per_token else output[row]
            size = kept.nbytes + (0 if stacked is None else stacked[:, row, :length].nbytes)
            if self.bytes + size > self.max_bytes:
                return
            self._outputs[i] = kept.clone()
            if stacked is not None:
                self._hidden[i] = stacked[:, row, :length].clone()
            self.bytes += size

    def _assemble(self, indices: Sequence[int], attention_mask: torch.Tensor, hidden: bool) -> TeacherOutputs:
        device = attention_mask.device
        rows = [self._outputs[i] for i in indices]
        if rows[0].dim() == 2:  # per token: padded to the batch's width with zeros
            output = torch.zeros((len(rows), attention_mask.shape[1], rows[0].shape[-1]), dtype=rows[0].dtype)
            for row, cached in enumerate(rows):
                output[row, : cached.shape[0]] = cached
        else:
            output = torch.stack(rows)
        output = output.to(device)
        if not hidden:
            return TeacherOutputs(output, None)
        first = self._hidden[indices[0]]
        states = torch.zeros((first.shape[0], len(indices), attention_mask.shape[1], first.shape[-1]), dtype=first.dtype)
        for row, i in enumerate(indices):
            cached = self._hidden[i]
            states[:, row, : cached.shape[1]] = cached
        kept = states.to(device).unbind(0)
        if self.layers is None:
            return TeacherOutputs(output, tuple(kept))
        full: list[Any] = [None] * (max(self.layers) + 1)
        for k, state in zip(self.layers, kept, strict=True):
            full[k] = state
        return TeacherOutputs(output, tuple(full))
