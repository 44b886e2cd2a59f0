"""Agora's transformation function: new inputs near a student's dev mistakes, offline.

Torch layer (through the embedding neighbours). Three seeded, word-level edits that need no
masked-language-model head, so they work on any teacher:
- dropout: delete each word with probability p (at least one word stays);
- swap: exchange two adjacent words;
- neighbour: replace words (each with probability p, at least one) by one of the k nearest
  neighbours of their token in the teacher's input-embedding space (cosine), among the
  vocabulary's whole alphabetic words.
With an unlabelled pool (`PoolNeighbours`), each mistake also brings its nearest pool inputs in
the task teacher's embedding space: real text of the same kind, where edits make near copies.
Generated texts are deduplicated and never equal to any text of the protected splits (dev and
test, compared after lower-casing and collapsing whitespace), so no dev or test example is
copied into training verbatim; pool texts equal to a protected one are dropped the same way.
The inputs they are made from are dev mistakes: the dev set then no longer measures
generalisation independently of those neighbours, which is why reports use the test split, from
which nothing is generated.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from bortnas.data.tasks import SOFT_ONLY, Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

OPERATIONS = ("dropout", "swap", "neighbour")
Input = tuple[str, str | None]  # (text, optional pair): what the teacher labels


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


class EmbeddingNeighbours:
    """Nearest whole-word neighbours of a word in a model's input embeddings (cached)."""

    def __init__(self, embeddings: nn.Embedding, tokenizer: PreTrainedTokenizerBase, k: int = 5) -> None:
        self.tokenizer, self.k = tokenizer, k
        vocab = tokenizer.get_vocab()
        special = self.special = set(getattr(tokenizer, "all_special_ids", []))
        words: dict[int, str] = {}
        for token, index in vocab.items():
            text = tokenizer.convert_tokens_to_string([token]).strip()
            if index not in special and len(text) > 1 and text.isalpha() and not token.startswith("##"):
                words[index] = text
        self.ids = torch.tensor(sorted(words))
        self.words = [words[i] for i in self.ids.tolist()]
        weight = embeddings.weight.detach().float()
        self.unit = weight / weight.norm(dim=1, keepdim=True).clamp(min=1e-12)
        self._cache: dict[str, list[str]] = {}

    def __call__(self, word: str) -> list[str]:
        key = word.lower()
        if key not in self._cache:
            ids = self.tokenizer.encode(" " + word, add_special_tokens=False)
            if len(ids) != 1 or ids[0] in self.special or len(self.ids) == 0:
                self._cache[key] = []
            else:
                scores = self.unit[self.ids] @ self.unit[ids[0]]
                order = scores.topk(min(self.k + 1, len(self.ids))).indices.tolist()
                self._cache[key] = [self.words[i] for i in order if self.words[i].lower() != key][: self.k]
        return self._cache[key]


@dataclasses.dataclass
class Augmenter:
    """Agora's `generate(mistakes, round)`: `variants` edited copies of every mistake."""

    neighbours: Callable[[str], list[str]] | None
    protected: Iterable[str] = ()
    variants: int = 4
    p: float = 0.15
    operations: Sequence[str] = OPERATIONS
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [op for op in self.operations if op not in OPERATIONS]
        if unknown or not self.operations:
            raise ValueError(f"unknown transformation {unknown}: use some of {', '.join(OPERATIONS)}")
        if self.neighbours is None:
            self.operations = [op for op in self.operations if op != "neighbour"] or ["dropout"]
        self._protected = {normalise(t) for t in self.protected}

    def edit(self, text: str, operation: str, rng: random.Random) -> str:
        words = text.split()
        if operation == "dropout" and len(words) > 1:
            kept = [w for w in words if rng.random() >= self.p]
            return " ".join(kept or [rng.choice(words)])
        if operation == "swap" and len(words) > 1:
            k = rng.randrange(len(words) - 1)
            words[k], words[k + 1] = words[k + 1], words[k]
            return " ".join(words)
        if operation == "neighbour" and self.neighbours is not None and words:
            positions = [k for k in range(len(words)) if rng.random() < self.p] or [rng.randrange(len(words))]
            for k in positions:
                options = self.neighbours(words[k])
                if options:
                    words[k] = rng.choice(options)
            return " ".join(words)
        return text

    def __call__(self, mistakes: Sequence[Example], round_: int) -> list[Input]:
        rng = random.Random(f"agora:{self.seed}:{round_}")
        out: dict[Input, None] = {}
        for example in mistakes:
            for _ in range(self.variants):
                text = self.edit(example.text, rng.choice(list(self.operations)), rng)
                key = normalise(text)
                if key and key != normalise(example.text) and key not in self._protected:
                    out[(text, example.pair)] = None
        return list(out)


@dataclasses.dataclass
class PoolNeighbours:
    """Agora's `generate(mistakes, round)` from an unlabelled pool: for every mistake, its `k`
    nearest pool inputs by cosine of `embed` (the task teacher's mean-pooled last hidden state),
    among those not drawn in an earlier round, so every round brings new text."""

    pool: Sequence[Input]
    embed: Callable[[Sequence[Input]], torch.Tensor]  # one row per input
    k: int = 4
    protected: Iterable[str] = ()

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k} must be at least 1")
        protected = {normalise(t) for t in self.protected}
        self.inputs = [x for x in dict.fromkeys(self.pool) if normalise(x[0]) and normalise(x[0]) not in protected]
        self._unit: torch.Tensor | None = None
        self._drawn = torch.zeros(len(self.inputs), dtype=torch.bool)

    def _normalised(self, inputs: Sequence[Input]) -> torch.Tensor:
        vectors = self.embed(inputs).float()
        return vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def __call__(self, mistakes: Sequence[Example], round_: int) -> list[Input]:
        if not mistakes or not self.inputs or bool(self._drawn.all()):
            return []
        if self._unit is None:
            self._unit = self._normalised(self.inputs)  # once: the pool does not change
        scores = self._normalised([(ex.text, ex.pair) for ex in mistakes]) @ self._unit.T
        scores[:, self._drawn] = -math.inf
        chosen: dict[int, None] = {}
        for row in scores:
            available = int((row > -math.inf).sum())
            chosen.update(dict.fromkeys(row.topk(min(self.k, available)).indices.tolist()))
        self._drawn[list(chosen)] = True
        return [self.inputs[i] for i in chosen]


def unlabelled_examples(pool: Iterable[Input], labelled: Iterable[Example], protected: Iterable[str]) -> list[Example]:
    """The pool as training examples with no label of their own (`SOFT_ONLY`: they learn from the
    teacher's probabilities), without duplicates, inputs already in `labelled`, or texts of the
    protected splits (compared as `normalise` does)."""
    hidden = {normalise(t) for t in protected}
    known = {(normalise(ex.text), normalise(ex.pair or "")) for ex in labelled}
    examples = []
    for text, pair in pool:
        key = (normalise(text), normalise(pair or ""))
        if key[0] and key[0] not in hidden and key not in known:
            known.add(key)
            examples.append(Example(text, SOFT_ONLY, pair))
    return examples


def combined(*sources: Callable[[Sequence[Example], int], list[Input]]) -> Callable[[Sequence[Example], int], list[Input]]:
    """One `generate` from several: each source's inputs in turn, duplicates dropped."""

    def generate(mistakes: Sequence[Example], round_: int) -> list[Input]:
        return list(dict.fromkeys(x for source in sources for x in source(mistakes, round_)))

    return generate
