"""Shared fixtures: tiny random BERT / RoBERTa teachers with tokenizers, and a small labelled task."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

POSITIVE = ["good", "great", "fun", "love", "best", "moving", "superb"]
NEGATIVE = ["bad", "awful", "boring", "hate", "worst", "dull", "mess"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "was", "is", "and", "story", "very", "quite", "really", "scene"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]


def write_tokenizer(directory: Path) -> None:
    from transformers import BertTokenizerFast

    BertTokenizerFast(vocab={word: i for i, word in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(directory)


def make_teacher(directory: Path, family: str = "bert", seed: int = 0) -> Path:
    """A 2-layer, hidden-32, 4-head, FFN-64 random encoder saved with a word-level tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(seed)
    common = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  initializer_range=0.2)
    if family == "roberta":
        model = RobertaModel(RobertaConfig(**common, pad_token_id=0, type_vocab_size=1))
    else:
        model = BertModel(BertConfig(**common, type_vocab_size=2))
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    write_tokenizer(directory)
    return directory


def make_task(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """Sentences whose label is whether they hold more positive than negative words."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "sentiment"])
        for _ in range(rows):
            label = rng.random() < 0.5
            words = rng.choices(FILLER, k=rng.randint(3, 8)) + rng.choices(POSITIVE if label else NEGATIVE, k=2)
            rng.shuffle(words)
            writer.writerow([" ".join(words), "pos" if label else "neg"])
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("tiny_bert"), "bert")


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("tiny_roberta"), "roberta")


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_task(tmp_path_factory.mktemp("task") / "reviews.csv")


@pytest.fixture()
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nlayers: [1, 2]\nhidden: [16, 32]\nheads: [2, 4]\nffn: [32, 64]\n")
    return path
