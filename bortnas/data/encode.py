"""Tokenized splits and padded batches: tokenize once, batch many times.

Torch layer. Batches are padded to the longest sequence in the batch, not to `max_length`,
because review snippets are short and CPU time grows with the padded length.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from bortnas.data.tasks import SOFT_ONLY, Example
from bortnas.data.tokens import first_subword_labels, truncated_words

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

POOL_BATCHES = 50


IGNORE = -100  # the label of a token no loss or metric reads (later sub-words, special tokens): PyTorch's ignore index


@dataclasses.dataclass
class EncodedSplit:
    """Token ids of one split, unpadded, with labels.

    `labels` has one row per example: a class index (long), a score (float), or a multi-hot row
    (float, one column per label). Token classification keeps one label per token instead, in
    `token_labels` (`IGNORE` on every token but a word's first sub-word), padded per batch;
    `labels` then holds nothing useful. `truncated` counts the examples cut to `max_length`.
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: torch.Tensor
    pad_id: int
    token_labels: list[list[int]] | None = None
    truncated: int = 0
    # embeddings: every sentence is one sequence (texts, then the distinct pair texts); `pairs` are
    # (text, its pair) indices, `reference` the teacher's embedding of each sentence, set once the
    # teacher is known (an embedding student is scored against it)
    pairs: list[tuple[int, int]] | None = None
    reference: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def mean_tokens(self) -> float:
        """Real tokens per example, on average (what a token budget counts)."""
        return sum(map(len, self.input_ids)) / max(1, len(self.input_ids))

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
        if self.token_labels is None:
            labels = self.labels[list(indices)]
        else:
            labels = torch.full((len(indices), width), IGNORE, dtype=torch.long)
            for row, i in enumerate(indices):
                labels[row, : len(self.token_labels[i])] = torch.tensor(self.token_labels[i], dtype=torch.long)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
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
            token_labels=None if self.token_labels is None else [self.token_labels[i] for i in indices],
        )


def _label_tensor(examples: Sequence[Example], task: str, num_labels: int) -> torch.Tensor:
    """One row per example: what the task's loss and metric read (see `EncodedSplit`)."""
    # an example that learns from the teacher alone (SOFT_ONLY: an unlabelled pool's) has NaN for a
    # score or a label set, which the supervised loss skips
    if task == "regression":
        # a score is a float (`load_table`), so a score of -100.0 is not taken for the int SOFT_ONLY
        unlabelled = [type(ex.label) is int and ex.label == SOFT_ONLY for ex in examples]
        return torch.tensor([math.nan if u else float(ex.label) for ex, u in zip(examples, unlabelled, strict=True)], dtype=torch.float)  # type: ignore[arg-type]
    if task == "multi_label":
        rows = torch.zeros((len(examples), num_labels))
        for row, ex in enumerate(examples):
            if isinstance(ex.label, tuple):
                rows[row, list(ex.label)] = 1.0
            else:
                rows[row] = math.nan
        return rows
    if task in ("token_classification", "embedding", "general"):
        return torch.zeros(len(examples), dtype=torch.long)
    return torch.tensor([ex.label for ex in examples], dtype=torch.long)


def encode(
    examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int, task: str = "classification", num_labels: int = 2
) -> EncodedSplit:
    """Tokenize `examples` (text, optional pair; a token task's words) truncated to `max_length` tokens.

    Token classification labels a word's first sub-word with the word's tag and ignores the rest
    (and special tokens); words cut off by truncation lose their tags, and `truncated` counts the
    examples that lost anything.
    """
    if task == "token_classification":
        return _encode_words(examples, tokenizer, max_length)
    if task == "embedding":
        return _encode_sentences(examples, tokenizer, max_length)
    if task == "general":
        return _encode_windows(examples, tokenizer, max_length)
    texts = [ex.text for ex in examples]
    pairs = [ex.pair or "" for ex in examples] if any(ex.pair is not None for ex in examples) else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    full = tokenizer(texts, pairs, truncation=False, verbose=False)["input_ids"] if examples else []
    return EncodedSplit(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded.get("token_type_ids"),
        labels=_label_tensor(examples, task, num_labels),
        pad_id=tokenizer.pad_token_id or 0,
        truncated=sum(len(ids) > max_length for ids in full),
    )


def _encode_sentences(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> EncodedSplit:
    """Each text, and each distinct pair text, as a sequence of its own: an embedding model embeds sentences one by one."""
    texts = [ex.text for ex in examples]
    documents: dict[str, int] = {}
    pairs = []
    for i, ex in enumerate(examples):
        if ex.pair:
            pairs.append((i, documents.setdefault(ex.pair, len(texts) + len(documents))))
    sentences = texts + list(documents)
    encoded = tokenizer(sentences, truncation=True, max_length=max_length)
    full = tokenizer(sentences, truncation=False, verbose=False)["input_ids"] if sentences else []
    return EncodedSplit(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded.get("token_type_ids"),
        labels=torch.zeros(len(sentences), dtype=torch.long),
        pad_id=tokenizer.pad_token_id or 0,
        truncated=sum(len(ids) > max_length for ids in full),
        pairs=pairs or None,
    )


def _encode_windows(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> EncodedSplit:
    """Each document cut into consecutive windows of at most `max_length` tokens (special tokens
    included), one sequence each: unlabelled text is read whole, so nothing counts as truncated."""
    encoded = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length, return_overflowing_tokens=True)
    return EncodedSplit(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded.get("token_type_ids"),
        labels=torch.zeros(len(encoded["input_ids"]), dtype=torch.long),
        pad_id=tokenizer.pad_token_id or 0,
    )


def _encode_words(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> EncodedSplit:
    words = [list(ex.words) if ex.words is not None else ex.text.split() for ex in examples]  # an unlabelled text: its words
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    token_labels, truncated = [], 0
    for row, ex in enumerate(examples):
        word_ids = encoded.word_ids(row)
        if isinstance(ex.label, tuple) and ex.label:
            token_labels.append(first_subword_labels(word_ids, ex.label, IGNORE))
        else:  # an example without tags of its own learns from the teacher alone
            token_labels.append([IGNORE] * len(word_ids))
        truncated += truncated_words(word_ids, len(words[row])) > 0
    return EncodedSplit(
        input_ids=encoded["input_ids"],
        token_type_ids=encoded.get("token_type_ids"),
        labels=torch.zeros(len(examples), dtype=torch.long),
        pad_id=tokenizer.pad_token_id or 0,
        token_labels=token_labels,
        truncated=truncated,
    )
