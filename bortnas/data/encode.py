"""Tokenized splits and padded batches: tokenize once, batch many times.

Torch layer. Batches are padded to the longest sequence in the batch, not to `max_length`,
because review snippets are short and CPU time grows with the padded length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from bortnas.data.tasks import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

POOL_BATCHES = 50


@dataclasses.dataclass
class EncodedSplit:
    """Token ids of one split, unpadded, with labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: torch.Tensor
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def longest(self) -> int:
        """Tokens in the split's longest example: the width of its widest batch."""
        return max(map(len, self.input_ids), default=1)

    def batch(self, indices: Sequence[int], pad_to: int = 1) -> dict[str, torch.Tensor]:
        """The examples `indices`, padded to the longest of them rounded up to a multiple of `pad_to`."""
        longest = max(len(self.input_ids[i]) for i in indices)
        width = -(-longest // pad_to) * pad_to
        ids = torch.full((len(indices), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        types = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            seq = self.input_ids[i]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            if self.token_type_ids is not None:
                types[row, : len(seq)] = torch.tensor(self.token_type_ids[i])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": self.labels[list(indices)]}
        if self.token_type_ids is not None:
            batch["token_type_ids"] = types
        return batch

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, pad_to: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        """One pass over the split, in batches of similar lengths, each padded as in `batch`.

        Padding is most of the cost of short, uneven texts, so examples are grouped by length:
        evaluation goes shortest first; training shuffles with `seed`, sorts pools of
        `POOL_BATCHES` batches by length, and shuffles the resulting batches.
        """
        for indices in self.batch_indices(batch_size, shuffle, seed):
            yield self.batch(indices, pad_to)

    def batch_indices(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[list[int]]:
        """The example indices of each batch of `batches`, in the same order (the teacher's cache is keyed by them)."""
        by_length = lambda i: len(self.input_ids[i])
        if not shuffle:
            order = sorted(range(len(self)), key=by_length)
            for start in range(0, len(order), batch_size):
                yield order[start : start + batch_size]
            return
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator).tolist()
        pool = batch_size * POOL_BATCHES
        chunks = []
        for start in range(0, len(order), pool):
            ranked = sorted(order[start : start + pool], key=by_length)
            chunks += [ranked[k : k + batch_size] for k in range(0, len(ranked), batch_size)]
        for index in torch.randperm(len(chunks), generator=generator).tolist():
            yield chunks[index]

    def subset(self, indices: Sequence[int]) -> EncodedSplit:
        return EncodedSplit(
            input_ids=[self.input_ids[i] for i in indices],
            token_type_ids=None if self.token_type_ids is None else [self.token_type_ids[i] for i in indices],
            labels=self.labels[list(indices)],
            pad_id=self.pad_id,
        )


def encode(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> EncodedSplit:
    """Tokenize `examples` (text, optional pair) truncated to `max_length` tokens."""
    texts = [ex.text for ex in examples]
    pairs = [ex.pair or "" for ex in examples] if any(ex.pair is not None for ex in examples) else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    return EncodedSplit(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded.get("token_type_ids"),
        labels=torch.tensor([ex.label for ex in examples], dtype=torch.long),
        pad_id=tokenizer.pad_token_id or 0,
    )
