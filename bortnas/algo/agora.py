"""Agora (de Wynter 2020, arXiv 2010.07990): grow the training set from the best student's dev
mistakes, labelled by the teacher, while pruning the hyperparameter grid Theta.

Pure layer: no torch, no I/O. Fine-tuning, evaluation, generation and labelling are injected,
so the loop is tested with plain functions and run by `bortnas.trial.finetune` with real models.

The loop (docs/algorithms.md §3), with t hyperparameter sets remaining:
1. fine-tune one student per theta on the current data D; score each on dev;
2. take the best student; collect its dev mistakes;
3. generate new inputs from the mistakes; the teacher labels them; they join D;
4. sort Theta by dev accuracy and prune it (below); repeat until Theta is empty.
Replay: re-run the last `replay` iterations (each with the Theta it had) on the grown D.
The best student seen (on dev) is returned with a log of every iteration.

Pruning [U]: the source says "remove the hyperparameter sets in the longest common sequence,
rooted at the first element" after sorting by accuracy. Two readings are implemented:
- "ties" (default): sort ascending (worst first) and drop the run of sets, starting at the
  worst, whose dev accuracy equals the worst's: at least one set per round, so at most |Theta|
  rounds and |Theta| (|Theta| + 1) / 2 fine-tunes, the |Theta|^2 term of the stated cost;
- "prefix": drop the worst set and every set sharing with it the longest prefix of
  hyperparameter values that it shares with any other set (only the worst when that is empty);
  faster, it removes whole branches of the grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

Model = TypeVar("Model")
Item = TypeVar("Item")  # a labelled example
Input = TypeVar("Input", bound=Hashable)  # what the teacher labels
Theta = Mapping[str, Any]
PRUNE_RULES = ("ties", "prefix")


def theta_key(theta: Theta) -> str:
    """A stable, readable name of a hyperparameter set (its values in the grid's key order)."""
    return ",".join(f"{k}={v}" for k, v in theta.items())


def prune(ranked: Sequence[Theta], accuracy: Mapping[str, float], rule: str = "ties") -> list[Theta]:
    """The sets to drop, given `ranked` sorted by dev accuracy ascending (worst first).

    Raises:
        ValueError: unknown rule or empty `ranked`.
    """
    if rule not in PRUNE_RULES:
        raise ValueError(f"unknown pruning rule {rule!r}: use one of {', '.join(PRUNE_RULES)}")
    if not ranked:
        raise ValueError("nothing to prune")
    worst = ranked[0]
    if rule == "ties":
        floor = accuracy[theta_key(worst)]
        return [t for t in ranked if accuracy[theta_key(t)] == floor]

    def common(a: Theta, b: Theta) -> int:
        n = 0
        for key in a:
            if b.get(key) != a[key]:
                break
            n += 1
        return n

    longest = max((common(worst, t) for t in ranked[1:]), default=0)
    if longest == 0:
        return [worst]
    return [worst] + [t for t in ranked[1:] if common(worst, t) >= longest]


@dataclasses.dataclass(frozen=True)
class Iteration:
    """What one round of the loop did (stored with the export)."""

    index: int
    replay: bool
    accuracies: dict[str, float]  # dev accuracy per theta key
    best_theta: str
    best_accuracy: float
    train_size: int  # |D| the students were trained on
    mistakes: int
    generated: int
    added: int  # new, teacher-labelled examples after deduplication
    pruned: list[str]
    dropped: int = 0  # new inputs the labeller left out (the teacher was unsure of them)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class AgoraResult(Generic[Model]):
    model: Model
    accuracy: float
    theta: str
    iteration: int
    log: list[Iteration]
    train_size: int
    before_replay: AgoraResult[Model] | None = None  # the best seen when the pruning loop ended


def agora(
    thetas: Sequence[Theta],
    train: Sequence[Item],
    finetune: Callable[[Theta, Sequence[Item]], Model],
    evaluate: Callable[[Model], float],
    mistakes: Callable[[Model], Sequence[Item]],
    generate: Callable[[Sequence[Item], int], Sequence[Input]],
    label: Callable[[Sequence[Input]], Sequence[Item]],
    input_of: Callable[[Item], Input],
    rule: str = "ties",
    replay: int = 0,
    on_iteration: Callable[[Iteration], None] | None = None,
) -> AgoraResult[Model]:
    """Run Agora; see the module docstring.

    `generate(mistakes, round)` returns new unlabelled inputs (seeded by the round number);
    `label(inputs)` returns them as examples with the teacher's labels, leaving out any it should
    not add (confidence filtering: counted as `dropped`); `input_of(example)` is an example's
    input. Inputs already in D, or dropped before, are not offered again, so D grows only by new ones.

    Raises:
        ValueError: empty Theta, duplicate hyperparameter sets, a negative replay count or an unknown rule.
    """
    keys = [theta_key(t) for t in thetas]
    if not thetas:
        raise ValueError("Agora needs at least one hyperparameter set")
    if len(set(keys)) != len(keys):
        raise ValueError("the hyperparameter grid has duplicate sets")
    if replay < 0:
        raise ValueError(f"replay={replay} must be >= 0")
    if rule not in PRUNE_RULES:
        raise ValueError(f"unknown pruning rule {rule!r}: use one of {', '.join(PRUNE_RULES)}")
    data = list(train)
    seen = {input_of(x) for x in data}
    best: AgoraResult[Model] | None = None
    log: list[Iteration] = []
    history: list[list[Theta]] = []

    def round_(remaining: list[Theta], is_replay: bool) -> list[Theta]:
        nonlocal best
        index = len(log)
        size = len(data)
        accuracy: dict[str, float] = {}
        top: tuple[float, Theta, Model] | None = None
        for theta in remaining:
            model = finetune(theta, data)
            score = evaluate(model)
            accuracy[theta_key(theta)] = score
            if top is None or score > top[0]:
                top = (score, theta, model)
        assert top is not None
        score, theta, model = top
        if best is None or score > best.accuracy:
            best = AgoraResult(model, score, theta_key(theta), index, log, size)
        wrong = list(mistakes(model))
        generated = list(generate(wrong, index)) if wrong else []
        fresh = [x for x in dict.fromkeys(generated) if x not in seen]
        labelled = list(label(fresh)) if fresh else []
        seen.update(fresh)
        data.extend(labelled)
        ranked = sorted(remaining, key=lambda t: accuracy[theta_key(t)])
        dropped = [] if is_replay else prune(ranked, accuracy, rule)
        entry = Iteration(
            index,
            is_replay,
            accuracy,
            theta_key(theta),
            score,
            size,
            len(wrong),
            len(generated),
            len(labelled),
            [theta_key(t) for t in dropped],
            len(fresh) - len(labelled),
        )
        log.append(entry)
        if on_iteration is not None:
            on_iteration(entry)
        gone = {theta_key(t) for t in dropped}
        return [t for t in ranked if theta_key(t) not in gone]

    remaining = list(thetas)
    while remaining:
        history.append(remaining)
        remaining = round_(remaining, is_replay=False)
    assert best is not None
    first_pass = dataclasses.replace(best)
    for past in history[len(history) - min(replay, len(history)) :]:
        round_(list(past), is_replay=True)
    best = dataclasses.replace(best, before_replay=first_pass)
    return best
