"""Masked windows for Bort's masked-token distillation: which tokens the teacher and the student both
predict.

Torch layer (the split's labels are tensors). A teacher with a masked-language-model head is
distilled on its predictions where the input hides a token, as Bort and DistilBERT were. The
masks are drawn once per window with a fixed seed (static masking, as BERT's original data
was): a window is the same batch row in every epoch, so the teacher's targets for it are the
same whichever student learns from it, and a resumed export sees the same inputs.

Every chosen token becomes the mask token (no 80/10/10 mix): the teacher reads the same input as
the student, so the mix's purpose in pre-training, keeping the representation of unmasked
tokens useful for fine-tuning, is served by the teacher's targets for those tokens being its
own. The labels are the original tokens at every position that holds the mask token, and
`IGNORE` elsewhere, so a model finds the positions it is scored on from its input alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

import torch

from bortnas.data.encode import IGNORE, EncodedSplit

__all__ = ["MASK_RATE", "mask_tokens"]

MASK_RATE = 0.15  # BERT's and Bort's share of tokens masked


def mask_tokens(split: EncodedSplit, mask_id: int, special_ids: Collection[int], rate: float = MASK_RATE, seed: int = 0) -> EncodedSplit:
    """`split` with `rate` of each window's ordinary tokens (at least one) replaced by `mask_id`,
    and the original tokens as per-token labels there (`IGNORE` elsewhere). Special tokens
    (`special_ids`: [CLS], [SEP], padding) are never masked."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), not {rate}")
    generator = torch.Generator().manual_seed(seed)
    specials = set(special_ids) - {mask_id}
    masked_ids: list[list[int]] = []
    labels: list[list[int]] = []
    for ids in split.input_ids:
        ordinary = [k for k, token in enumerate(ids) if token not in specials]
        count = max(1, round(rate * len(ordinary))) if ordinary else 0
        chosen = {ordinary[k] for k in torch.randperm(len(ordinary), generator=generator)[:count].tolist()}
        row = [mask_id if k in chosen else token for k, token in enumerate(ids)]
        masked_ids.append(row)
        labels.append([ids[k] if token == mask_id else IGNORE for k, token in enumerate(row)])
    return dataclasses.replace(split, input_ids=masked_ids, token_labels=labels)
