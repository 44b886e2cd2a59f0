"""A training length given in tokens: the steps it resolves to, and the configs that refuse it."""

from __future__ import annotations

import pytest

import bortnas
from bortnas.core.errors import ParameterError
from bortnas.core.finetuning import steps_for_tokens


def test_steps_for_tokens_rounds_up_to_whole_steps() -> None:
    # 32 examples of 100 tokens read 3,200 tokens a step: 10,000 tokens need 3.125 steps, so 4
    assert steps_for_tokens(10_000, 32, 100.0) == 4
    assert steps_for_tokens(6_400, 32, 100.0) == 2  # exactly two steps' worth
    assert steps_for_tokens(1, 32, 100.0) == 1  # never zero steps


def test_a_method_resolves_its_length_from_steps_or_tokens() -> None:
    assert bortnas.Distil().steps_for(32, 100.0) == 1500  # the method's default
    assert bortnas.Distil(steps=7).steps_for(32, 100.0) == 7
    assert bortnas.Plain(tokens=10_000).steps_for(32, 100.0) == 4


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: bortnas.Distil(steps=5, tokens=100), "two lengths for one training"),
        (lambda: bortnas.Distil(tokens=0), "must be a positive integer"),
        (lambda: bortnas.Agora(tokens=1000), "does not fit Agora"),
    ],
    ids=["both", "zero", "agora"],
)
def test_bad_token_budgets_are_refused(make: object, fragment: str) -> None:
    with pytest.raises(ParameterError, match=fragment):
        make()  # type: ignore[operator]
