"""bibert: BiBERT (docs/algorithms.md §4.3).

Row-scaled binary weights and word embeddings, sign activations, Bi-Attention (bool attention, no
softmax), and the direction-matching distillation loss on Q, K and V while training.
"""

from bortnas.modes.base import QuantConfig, register

BIBERT = register(
    QuantConfig(
        name="bibert",
        summary="BiBERT: binary weights and activations, Bi-Attention",
        weight_bits=1,
        activation_bits=1,
        attention_bits=1,
        word_embedding_bits=1,
        weight_scales="row",
        word_embedding_scales="row",
        linear="bibert_sign",
        attention="bi",
        packing="binary1",
        kernel="simulated",
        dmd_weight=1.0,
    )
)
