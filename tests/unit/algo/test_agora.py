"""The Agora loop with plain functions: pruning, termination, teacher labels, replay, best model."""

from __future__ import annotations

import pytest

from bortnas.algo.agora import agora, prune, theta_key

GRID = [{"lr": lr, "seed": seed} for lr in (1, 2) for seed in (0, 1)]


def test_prune_ties_drops_the_worst_run() -> None:
    ranked = [{"x": 1}, {"x": 2}, {"x": 3}]
    acc = {"x=1": 0.5, "x=2": 0.5, "x=3": 0.7}
    assert prune(ranked, acc, "ties") == [{"x": 1}, {"x": 2}]
    assert prune(ranked, {"x=1": 0.4, "x=2": 0.5, "x=3": 0.7}, "ties") == [{"x": 1}]


def test_prune_prefix_drops_the_worst_branch() -> None:
    ranked = [{"lr": 1, "seed": 0}, {"lr": 2, "seed": 0}, {"lr": 1, "seed": 1}, {"lr": 2, "seed": 1}]
    acc = {theta_key(t): k / 10 for k, t in enumerate(ranked)}
    # the worst (lr=1, seed=0) shares lr=1 (a prefix of length 1) with (lr=1, seed=1); nothing longer
    assert prune(ranked, acc, "prefix") == [{"lr": 1, "seed": 0}, {"lr": 1, "seed": 1}]
    assert prune([{"a": 1}, {"a": 2}], {"a=1": 0.1, "a=2": 0.2}, "prefix") == [{"a": 1}]
    with pytest.raises(ValueError, match="unknown pruning rule"):
        prune(ranked, acc, "halving")


class Fake:
    """A task where accuracy depends on theta and on how much data the student saw."""

    def __init__(self, bonus_at_round: int | None = None) -> None:
        self.calls: list[tuple[str, int, tuple[str, ...]]] = []
        self.labelled: list[tuple[str, int]] = []
        self.bonus_at_round = bonus_at_round

    def finetune(self, theta: dict, data: list[tuple[str, int]]) -> dict:
        self.calls.append((theta_key(theta), len(data), tuple(x for x, _ in data)))
        return {"theta": theta_key(theta), "size": len(data), "round": len({c[1] for c in self.calls}) - 1}

    def evaluate(self, model: dict) -> float:
        base = {"lr=1,seed=0": 0.50, "lr=1,seed=1": 0.55, "lr=2,seed=0": 0.60, "lr=2,seed=1": 0.65}[model["theta"]]
        if self.bonus_at_round is not None:
            return base + (0.3 if model["round"] == self.bonus_at_round else 0.0)
        return base + model["size"] / 1000

    def mistakes(self, model: dict) -> list[tuple[str, int]]:
        return [("dev one", 1), ("dev two", 0)]

    def generate(self, wrong: list[tuple[str, int]], round_: int) -> list[str]:
        return [f"{text} variant {round_}" for text, _ in wrong] + [f"{wrong[0][0]} variant {round_}"]  # a duplicate

    def label(self, inputs: list[str]) -> list[tuple[str, int]]:
        out = [(x, 7) for x in inputs]  # 7: the teacher's label, distinguishable from the data's
        self.labelled += out
        return out


def run(fake: Fake, **kwargs: object) -> object:
    train = [("train a", 0), ("train b", 1)]
    return agora(GRID, train, fake.finetune, fake.evaluate, fake.mistakes, fake.generate, fake.label, lambda x: x[0], **kwargs)


def test_loop_prunes_one_set_per_round_and_terminates() -> None:
    fake = Fake()
    result = run(fake)
    log = result.log
    # distinct accuracies: ties drops exactly the worst each round -> 4 rounds, 4 + 3 + 2 + 1 fine-tunes
    assert [len(it.accuracies) for it in log] == [4, 3, 2, 1]
    assert len(fake.calls) == 10
    assert [it.pruned for it in log] == [["lr=1,seed=0"], ["lr=1,seed=1"], ["lr=2,seed=0"], ["lr=2,seed=1"]]
    # each round adds the two new variants (the duplicate is dropped), labelled by the teacher
    assert [it.added for it in log] == [2, 2, 2, 2] and [it.generated for it in log] == [3, 3, 3, 3]
    assert [it.train_size for it in log] == [2, 4, 6, 8]
    last_data = fake.calls[-1][2]
    assert "dev one variant 0" in last_data and "dev one" not in last_data
    assert all(label == 7 for _, label in fake.labelled)
    assert result.theta == "lr=2,seed=1" and result.iteration == 3 and result.train_size == 8


def test_returns_the_best_model_seen_not_the_last() -> None:
    fake = Fake(bonus_at_round=1)
    result = run(fake)
    assert result.iteration == 1 and result.model["round"] == 1
    assert result.accuracy == pytest.approx(0.65 + 0.3)
    assert result.accuracy == max(max(it.accuracies.values()) for it in result.log)


def test_replay_reruns_the_last_rounds_on_the_grown_data() -> None:
    fake = Fake()
    result = run(fake, replay=2)
    replays = [it for it in result.log if it.replay]
    assert len(result.log) == 6 and len(replays) == 2
    assert [sorted(it.accuracies) for it in replays] == [["lr=2,seed=0", "lr=2,seed=1"], ["lr=2,seed=1"]]
    assert all(it.pruned == [] for it in replays)
    assert replays[0].train_size == 10 and result.train_size == 12  # the replayed students saw more data
    assert result.before_replay is not None and result.before_replay.train_size == 8 and result.before_replay.iteration == 3


def test_bad_arguments() -> None:
    fake = Fake()
    with pytest.raises(ValueError, match="at least one"):
        agora([], [], fake.finetune, fake.evaluate, fake.mistakes, fake.generate, fake.label, lambda x: x[0])
    with pytest.raises(ValueError, match="duplicate"):
        agora([GRID[0], GRID[0]], [], fake.finetune, fake.evaluate, fake.mistakes, fake.generate, fake.label, lambda x: x[0])
    with pytest.raises(ValueError, match="replay"):
        run(fake, replay=-1)


def test_inputs_the_labeller_leaves_out_are_counted_as_dropped_and_not_offered_again() -> None:
    fake = Fake()
    unsure = {"dev one variant 0", "dev two variant 1"}

    def label(inputs: list[str]) -> list[tuple[str, int]]:
        return [(x, 7) for x in inputs if x not in unsure]  # the teacher is unsure of these

    result = agora(GRID, [("train a", 0)], fake.finetune, fake.evaluate, fake.mistakes, fake.generate, label, lambda x: x[0])
    assert [it.dropped for it in result.log] == [1, 1, 0, 0] and [it.added for it in result.log] == [1, 1, 2, 2]
    assert not unsure & set(fake.calls[-1][2])
