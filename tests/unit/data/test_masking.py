"""Static masking of training windows for Bort's masked-token distillation."""

from __future__ import annotations

import torch

from bortnas.data.encode import IGNORE, EncodedSplit
from bortnas.data.masking import mask_tokens

MASK, SPECIALS = 4, (0, 2, 3)


def split_of(windows: list[list[int]]) -> EncodedSplit:
    return EncodedSplit(windows, None, torch.zeros(len(windows), dtype=torch.long), 0)


def test_fifteen_percent_of_ordinary_tokens_are_masked_and_labelled_with_the_original() -> None:
    windows = [[2, *range(10, 50), 3], [2, 7, 3], [2, 3]]
    given = split_of([list(w) for w in windows])
    masked = mask_tokens(given, MASK, SPECIALS, seed=0)
    assert masked.token_labels is not None
    first, labels = masked.input_ids[0], masked.token_labels[0]
    assert first[0] == 2 and first[-1] == 3  # specials are never masked
    hidden = [k for k, token in enumerate(first) if token == MASK]
    assert len(hidden) == 6  # round(0.15 x 40)
    assert [labels[k] for k in hidden] == [windows[0][k] for k in hidden]
    assert all(label == IGNORE for k, label in enumerate(labels) if k not in hidden)
    assert masked.input_ids[1] == [2, MASK, 3] and masked.token_labels[1] == [IGNORE, 7, IGNORE]  # at least one
    assert masked.input_ids[2] == [2, 3] and masked.token_labels[2] == [IGNORE, IGNORE]  # nothing to mask
    assert given.input_ids == windows and given.token_labels is None  # the split given is left as it was


def test_masks_are_the_same_for_the_same_seed_and_a_literal_mask_token_is_labelled() -> None:
    windows = [[2, *range(10, 50), 3]] * 3
    one, two = mask_tokens(split_of(windows), MASK, SPECIALS, seed=1), mask_tokens(split_of(windows), MASK, SPECIALS, seed=1)
    assert one.input_ids == two.input_ids and one.input_ids[0] != one.input_ids[1]  # each window draws its own
    literal = mask_tokens(split_of([[2, MASK, *range(10, 30), 3]]), MASK, SPECIALS, seed=0)
    assert literal.token_labels is not None and literal.token_labels[0][1] == MASK  # every mask position is scored
