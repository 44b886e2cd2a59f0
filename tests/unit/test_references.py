"""The reference shapes `bortnas space` prices without weights are what the family adapters read
from each model's published config.json (the values below, copied from those files)."""

from __future__ import annotations

from typing import Any

import pytest

from bortnas.core.space import REFERENCE_SHAPES
from bortnas.families import family_of

BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512}
CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base": {"model_type": "bert", **BASE, "vocab_size": 30522, "type_vocab_size": 2},
    "bert-large": {
        "model_type": "bert",
        **BASE,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "vocab_size": 30522,
        "type_vocab_size": 2,
    },
    "roberta-large": {
        "model_type": "roberta",
        **BASE,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "vocab_size": 50265,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
    },
    "minilm-l6": {
        "model_type": "bert",
        **BASE,
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
        "vocab_size": 30522,
        "type_vocab_size": 2,
    },
    "distilbert-base": {
        "model_type": "distilbert",
        "dim": 768,
        "n_layers": 6,
        "n_heads": 12,
        "hidden_dim": 3072,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "sinusoidal_pos_embds": False,
    },
    "electra-small": {
        "model_type": "electra",
        **BASE,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        "embedding_size": 128,
        "vocab_size": 30522,
        "type_vocab_size": 2,
    },
    "electra-base": {"model_type": "electra", **BASE, "embedding_size": 768, "vocab_size": 30522, "type_vocab_size": 2},
    "xlm-roberta-base": {"model_type": "xlm-roberta", **BASE, "vocab_size": 250002, "max_position_embeddings": 514, "type_vocab_size": 1},
    "mpnet-base": {
        "model_type": "mpnet",
        **BASE,
        "vocab_size": 30527,
        "max_position_embeddings": 514,
        "relative_attention_num_buckets": 32,
    },
    "deberta-v3-base": {
        "model_type": "deberta-v2",
        **BASE,
        "vocab_size": 128100,
        "type_vocab_size": 0,
        "position_biased_input": False,
        "relative_attention": True,
        "pos_att_type": ["p2c", "c2p"],
        "position_buckets": 256,
        "max_relative_positions": -1,
        "share_att_key": True,
        "norm_rel_ebd": "layer_norm",
    },
    "modernbert-base": {
        "model_type": "modernbert",
        "hidden_size": 768,
        "num_hidden_layers": 22,
        "num_attention_heads": 12,
        "intermediate_size": 1152,
        "vocab_size": 50368,
        "max_position_embeddings": 8192,
        "norm_bias": False,
        "attention_bias": False,
        "mlp_bias": False,
        "classifier_bias": False,
        "global_attn_every_n_layers": 3,
        "local_attention": 128,
    },
}


@pytest.mark.parametrize("name", REFERENCE_SHAPES)
def test_reference_shape_is_the_adapters_reading_of_the_config(name: str) -> None:
    config = CONFIGS[name]
    assert REFERENCE_SHAPES[name] == family_of(config).shape(config, num_labels=2)


def test_every_family_has_a_reference() -> None:
    from bortnas.families import FAMILIES

    assert {shape.structure.family for shape in REFERENCE_SHAPES.values()} == set(FAMILIES)
