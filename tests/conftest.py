"""Shared fixtures: tiny random teachers of every supported family with tokenizers, and a small labelled task."""

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


FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "mpnet", "deberta-v2", "modernbert")


def tiny_config(family: str, **overrides: object) -> object:
    """A 2-layer (ModernBERT: 3, so both attention types occur), hidden-32, 4-head, FFN-64 random
    config of `family` with its particular parts switched on, built offline."""
    import transformers as tf

    common: dict[str, object] = dict(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,
        pad_token_id=0,
    )
    builders = {
        "bert": lambda: tf.BertConfig(**common, type_vocab_size=2),
        "roberta": lambda: tf.RobertaConfig(**common, type_vocab_size=1),
        "xlm-roberta": lambda: tf.XLMRobertaConfig(**common, type_vocab_size=1),
        "electra": lambda: tf.ElectraConfig(**common, embedding_size=16, type_vocab_size=2),
        "mpnet": lambda: tf.MPNetConfig(**common),  # 32 relative buckets: MPNet computes buckets for 32 whatever the table
        "deberta-v2": lambda: tf.DebertaV2Config(
            **common,
            type_vocab_size=0,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            position_buckets=8,
            max_relative_positions=16,
            share_att_key=True,
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
        ),
        "distilbert": lambda: tf.DistilBertConfig(
            vocab_size=len(VOCAB),
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            max_position_embeddings=64,
            dropout=0.0,
            attention_dropout=0.0,
            initializer_range=0.2,
            pad_token_id=0,
        ),
        "modernbert": lambda: tf.ModernBertConfig(
            vocab_size=len(VOCAB),
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            global_attn_every_n_layers=2,
            local_attention=8,
            initializer_range=0.2,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            cls_token_id=2,
            sep_token_id=3,
        ),
    }
    config = builders[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def make_teacher(directory: Path, family: str = "bert", seed: int = 0, **overrides: object) -> Path:
    """A tiny random encoder of `family` (`tiny_config`) saved with a word-level tokenizer."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(family, **overrides))
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


# Scored trials without training: (layers, hidden, heads, ffn, quant, p in bits, i in FLOP-equivalents, latency ms, error).
# Trials 2 (FAIL) and 4 (PRUNED) sit between them, so trial numbers and record positions differ.
FAKE_SCORES = (
    (2, 32, 4, 64, "fp32", 8.0e6, 4.0e6, 1.9, 0.10),  # trial 0: lowest error
    (1, 32, 4, 64, "fp32", 4.0e6, 2.0e6, 1.1, 0.20),  # trial 1
    (1, 16, 2, 32, "fp32", 1.2e6, 0.8e6, 0.7, 0.30),  # trial 3: argmax W
    (2, 16, 4, 64, "fp32", 5.0e6, 2.5e6, 1.3, 0.25),  # trial 5: dominated by trial 1
    (2, 32, 4, 64, "bitnet158", 0.3e6, 0.2e6, 1.6, 0.45),  # trial 6: smallest p and i, highest error (`make_scored_study`'s mode)
    (1, 16, 4, 32, "fp32", 1.5e6, 1.0e6, 0.9, 0.32),  # trial 7: dominated by trial 3
)
FAKE_FRONT = (0, 1, 3, 6)
FAKE_TEACHER_DEV_ACCURACY = 0.85  # so the trials' dev accuracy is 5 points above (trial 0) to 30 below (trial 6) it
FAKE_BEST = 3


def make_scored_study(storage_url: str, name: str = "fake", quantized: str = "bitnet158") -> None:
    """A bortnas study `name` holding FAKE_SCORES as COMPLETE trials with the attributes `score_candidate` stores, plus trial 2
    FAILED and trial 4 PRUNED; no training. Trial 6 is of mode `quantized`."""
    import optuna

    from bortnas.algo.objective import w_coefficient
    from bortnas.core.settings import RunSettings
    from bortnas.core.space import ArchSpec, parse_search_space
    from bortnas.search import create_or_resume
    from bortnas.search.storage import open_storage

    space = parse_search_space(
        {"name": name, "layers": [1, 2], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64], "quant": ["fp32", quantized]},
        "make_scored_study",
    )
    study = create_or_resume(open_storage(storage_url), name, space, RunSettings(), optuna.samplers.RandomSampler(seed=0))
    scores = iter(FAKE_SCORES)
    for number in range(len(FAKE_SCORES) + 2):
        trial = study.ask()
        if number == 2:
            trial.set_user_attr("fail_reason", "training diverged: loss is nan at step 1 of 8")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        if number == 4:
            trial.set_user_attr("skip_reason", "repeats finished trial 0")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        layers, hidden, heads, ffn, quant, p, i, latency_ms, error = next(scores)
        spec = ArchSpec(layers=layers, hidden=hidden, heads=heads, ffn=ffn, quant=quantized if quant != "fp32" else quant)
        w = w_coefficient(p, i, error, 10.0e6, 5.0e6)
        attrs = {
            "params_total": int(p / 32) + 1000,
            "params_non_embedding": int(p / 32),
            "size_bits_non_embedding": p,
            "size_mib": (p + 32_000) / 8 / 2**20,
            "flops": i,
            "latency_ms": latency_ms,
            "dev_accuracy": 1.0 - error,
            "error": error,
            "w": w,
            "steps": 8,
            "seed": 0,
            "seconds": 0.5,
            "candidate": spec.to_dict(),
            "arch_id": spec.arch_id,
            "key": spec.key,
            "teacher_dev_accuracy": FAKE_TEACHER_DEV_ACCURACY,
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, w)
