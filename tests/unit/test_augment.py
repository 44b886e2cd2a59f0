"""Agora's transformation function: seeded edits, embedding neighbours, protected splits."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch
from conftest import VOCAB, write_tokenizer
from torch import nn

from bortnas.data.augment import Augmenter, EmbeddingNeighbours, PoolNeighbours, combined, unlabelled_examples
from bortnas.data.tasks import SOFT_ONLY, Example


def tokenizer(tmp_path: Path) -> object:
    from transformers import AutoTokenizer

    write_tokenizer(tmp_path)
    return AutoTokenizer.from_pretrained(tmp_path)


def test_embedding_neighbours_are_the_nearest_whole_words(tmp_path: Path) -> None:
    tok = tokenizer(tmp_path)
    table = nn.Embedding(len(VOCAB), 3)
    with torch.no_grad():
        table.weight.copy_(torch.tensor([[0.0, 0.0, 1.0]]).repeat(len(VOCAB), 1))
        table.weight[VOCAB.index("good")] = torch.tensor([1.0, 0.0, 0.0])
        table.weight[VOCAB.index("great")] = torch.tensor([0.9, 0.1, 0.0])
        table.weight[VOCAB.index("fun")] = torch.tensor([0.5, 0.5, 0.0])
        table.weight[VOCAB.index("[CLS]")] = torch.tensor([1.0, 0.0, 0.0])  # special tokens are never offered
    neighbours = EmbeddingNeighbours(table, tok, k=2)
    assert neighbours("good") == ["great", "fun"]
    assert neighbours("Good") == ["great", "fun"]
    assert neighbours("unseenword") == []


def test_edits_are_seeded_and_shaped_as_documented() -> None:
    augmenter = Augmenter(neighbours=lambda w: ["X"], p=0.5)
    text = "one two three four five"
    rng = random.Random(0)
    dropped = augmenter.edit(text, "dropout", rng)
    assert 1 <= len(dropped.split()) <= 5 and set(dropped.split()) <= set(text.split())
    swapped = augmenter.edit(text, "swap", random.Random(1)).split()
    diff = [k for k in range(5) if swapped[k] != text.split()[k]]
    assert len(diff) == 2 and diff[1] == diff[0] + 1
    replaced = augmenter.edit(text, "neighbour", random.Random(2)).split()
    assert "X" in replaced and len(replaced) == 5
    mistakes = [Example("a fine movie with a dull plot", 1), Example("the best film", 0, pair="q")]
    assert augmenter(mistakes, 3) == augmenter(mistakes, 3)
    assert augmenter(mistakes, 3) != augmenter(mistakes, 4)
    assert all(pair in (None, "q") for _, pair in augmenter(mistakes, 3))


def test_protected_texts_and_originals_are_never_generated() -> None:
    # every single-word deletion of "a b c" that could come out is protected, as is the original
    protected = ["B C", "a c", "a b", "a  b c"]
    augmenter = Augmenter(neighbours=None, protected=protected, variants=50, p=0.4, operations=("dropout",))
    out = augmenter([Example("a b c", 1)], 0)
    texts = {" ".join(t.lower().split()) for t, _ in out}
    assert texts and not texts & {"b c", "a c", "a b", "a b c"}
    assert len(out) == len(set(out))


def test_pool_neighbours_are_the_nearest_unused_pool_inputs_and_never_protected() -> None:
    # 2-d embeddings by hand: a mistake at angle 0 is nearest to "east", then "north-east"
    vectors = {"east": (1.0, 0.0), "north-east": (1.0, 1.0), "north": (0.0, 1.0), "west": (-1.0, 0.0), "dev text": (1.0, 0.01)}
    vectors["a mistake"] = (2.0, 0.0)

    def embed(inputs: Sequence[tuple[str, str | None]]) -> torch.Tensor:
        return torch.tensor([vectors[text] for text, _ in inputs])

    pool = [(t, None) for t in ("east", "north-east", "north", "west", "Dev  Text", "east")]
    neighbours = PoolNeighbours(pool, embed, k=2, protected=["dev text"])
    assert [x for x, _ in neighbours.inputs] == ["east", "north-east", "north", "west"]  # deduplicated, dev text dropped
    mistake = [Example("a mistake", 0)]
    assert neighbours(mistake, 0) == [("east", None), ("north-east", None)]
    assert neighbours(mistake, 1) == [("north", None), ("west", None)]  # each round brings inputs not drawn before
    assert neighbours(mistake, 2) == [] and neighbours([], 3) == []
    both = combined(lambda m, r: [("edit", None), ("east", None)], lambda m, r: [("east", None), ("pool", None)])
    assert both(mistake, 0) == [("edit", None), ("east", None), ("pool", None)]


def test_unlabelled_examples_drop_duplicates_labelled_inputs_and_protected_texts() -> None:
    labelled = [Example("Good film", 1), Example("a", 0, "b")]
    pool = [("good  FILM", None), ("new text", None), ("New text", None), ("a", "c"), ("a", "B"), ("secret", None), ("  ", None)]
    examples = unlabelled_examples(pool, labelled, protected=["SECRET"])
    assert examples == [Example("new text", SOFT_ONLY, None), Example("a", SOFT_ONLY, "c")]
