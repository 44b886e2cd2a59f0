"""Agora with real students on the tiny task: teacher labels, clean dev, best model; and the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest
import torch
from conftest import bortnas, search_args, tiny_settings

import bortnas.trial.finetune as finetune_module
from bortnas.core.errors import UserInputError
from bortnas.core.finetuning import AgoraSettings
from bortnas.core.space import ArchSpec
from bortnas.data.augment import normalise
from bortnas.data.encode import EncodedSplit, encode
from bortnas.data.tasks import SOFT_ONLY, Example
from bortnas.train.loop import evaluate, predict, probabilities
from bortnas.trial.context import Context, build_context
from bortnas.trial.finetune import run_agora

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One teacher cache for the module: the tiny teacher is fine-tuned once (per xdist worker), then loaded."""
    return tmp_path_factory.mktemp("agora_cache")


def tiny_context(cache: Path, teacher: Path, task: Path) -> Context:
    """The tiny task with a quickly fine-tuned tiny teacher, as Agora's tests run it."""
    settings = tiny_settings(teacher, task, teacher_steps=40, teacher_lr=3e-3, batch_size=16, max_length=24, lr=3e-3)
    return build_context(settings, cache_dir=cache)


def test_agora_uses_teacher_labels_keeps_dev_clean_and_returns_the_best(
    teacher_cache: Path, tiny_bert: Path, tiny_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tiny_context(teacher_cache, tiny_bert, tiny_task)
    seen: list[list] = []
    real_encode = finetune_module.encode

    def spy(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> EncodedSplit:
        seen.append(list(examples))
        return real_encode(examples, tokenizer, max_length)

    monkeypatch.setattr(finetune_module, "encode", spy)
    result = run_agora(ctx, ArchSpec(1, 16, 2, 32), steps=6, settings=AgoraSettings(grid={"lr": [1e-3, 3e-3], "seed": [0, 1]}, replay=1))
    log = result.agora_log
    assert log is not None and log[-1].replay and not any(it.replay for it in log[:-1])
    for it in log[:-1]:  # "ties": each round drops exactly the sets tied for the worst dev accuracy
        worst = min(it.accuracies.values())
        assert sorted(it.pruned) == sorted(k for k, v in it.accuracies.items() if v == worst)
    assert sum(len(it.pruned) for it in log) == 4 and log[-1].accuracies.keys() == log[-2].accuracies.keys()
    assert sum(it.added for it in log) > 0
    train_texts = {ex.text for ex in ctx.data.train}
    protected = {normalise(ex.text) for ex in ctx.data.dev + ctx.data.test}
    training_sets = [examples for examples in seen if train_texts <= {ex.text for ex in examples}]
    assert len(training_sets) == sum(len(it.accuracies) for it in log)
    for examples in training_sets:
        assert not {normalise(ex.text) for ex in examples} & protected  # no dev / test example is trained on
    grown = training_sets[-1]
    generated = [ex for ex in grown if ex.text not in train_texts]
    assert len(generated) == sum(it.added for it in log[:-1])
    teacher_labels = predict(ctx.teacher.model, encode(generated, ctx.teacher.tokenizer, ctx.settings.max_length))
    assert [ex.label for ex in generated] == teacher_labels  # generated data carry the teacher's labels
    best = max(max(it.accuracies.values()) for it in log)
    assert evaluate(result.model, ctx.dev).accuracy == pytest.approx(best)


def test_agora_with_soft_labels_filtering_and_a_pool(
    teacher_cache: Path, tiny_bert: Path, tiny_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tiny_context(teacher_cache, tiny_bert, tiny_task)
    trained: list[tuple[list[Example], bool]] = []
    real_train = finetune_module.train

    def spy(model: object, data: EncodedSplit, config: object, **kwargs: object) -> object:
        trained.append((list(seen[-1]), kwargs.get("teacher") is not None))
        return real_train(model, data, config, **kwargs)  # type: ignore[arg-type]

    seen: list[list[Example]] = []
    real_encode = finetune_module.encode

    def encode_spy(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> EncodedSplit:
        seen.append(list(examples))
        return real_encode(examples, tokenizer, max_length)

    monkeypatch.setattr(finetune_module, "encode", encode_spy)
    monkeypatch.setattr(finetune_module, "train", spy)
    # a pool of unseen texts (train texts reversed) with the dev and test texts mixed in: those must never be trained on
    pool = [(" ".join(reversed(ex.text.split())), None) for ex in ctx.data.train] + [(ex.text, None) for ex in ctx.data.dev + ctx.data.test]
    agora_settings = AgoraSettings(grid={"lr": [1e-3, 3e-3]}, replay=1, soft_labels=True, min_confidence=0.55, pool_neighbours=3)
    result = run_agora(ctx, ArchSpec(1, 16, 2, 32), steps=6, settings=agora_settings, pool=pool)
    log = result.agora_log
    assert log is not None and sum(it.added for it in log) > 0
    assert all(with_teacher for _, with_teacher in trained)  # soft labels: every fine-tune distils from the teacher
    train_texts = {ex.text for ex in ctx.data.train}
    protected = {normalise(ex.text) for ex in ctx.data.dev + ctx.data.test}
    generated = list({ex.text: ex for examples, _ in trained for ex in examples if ex.text not in train_texts}.values())
    assert generated and all(ex.label == SOFT_ONLY for ex in generated)  # no hard label: the teacher's probabilities only
    assert not {normalise(ex.text) for examples, _ in trained for ex in examples} & protected
    assert {ex.text for ex in generated} & {text for text, _ in pool}  # the pool's neighbours joined the data
    confidence = probabilities(ctx.teacher.model, encode(generated, ctx.teacher.tokenizer, ctx.settings.max_length)).max(-1).values
    assert bool((confidence >= 0.55).all())


def test_agora_warm_starts_the_whole_pool_in_the_data_and_a_split_dev(
    teacher_cache: Path, tiny_bert: Path, tiny_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tiny_context(teacher_cache, tiny_bert, tiny_task)
    starts: list[tuple[float, int]] = []  # (weight sum the fine-tune starts from, |D|)
    ends: list[float] = []
    real_train = finetune_module.train

    def weight_sum(model: torch.nn.Module) -> float:
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    def spy(model: torch.nn.Module, data: EncodedSplit, config: object, **kwargs: object) -> object:
        starts.append((weight_sum(model), len(data.labels)))
        out = real_train(model, data, config, **kwargs)  # type: ignore[arg-type]
        ends.append(weight_sum(model))
        return out

    monkeypatch.setattr(finetune_module, "train", spy)
    scored: list[int] = []  # sizes of the splits students are chosen on
    predicted: list[int] = []  # sizes of the splits mistakes are taken from
    real_evaluate, real_predict = finetune_module.evaluate, finetune_module.predict
    monkeypatch.setattr(finetune_module, "evaluate", lambda m, split, **kw: scored.append(len(split)) or real_evaluate(m, split, **kw))
    monkeypatch.setattr(finetune_module, "predict", lambda m, split, **kw: predicted.append(len(split)) or real_predict(m, split, **kw))
    pool = [(" ".join(reversed(ex.text.split())), None) for ex in ctx.data.train] + [(ex.text, None) for ex in ctx.data.dev]
    settings = AgoraSettings(
        grid={"lr": [1e-3, 3e-3]}, replay=0, rule="prefix", soft_labels=True, warm_start=True, pool_in_data=True, split_dev=True
    )
    result = run_agora(ctx, ArchSpec(1, 16, 2, 32), steps=4, settings=settings, pool=pool)
    log = result.agora_log
    assert log is not None and [len(it.accuracies) for it in log] == [2, 1]
    # the pool joined D before the first round, without the dev texts mixed into it
    fresh = {normalise(text) for text, _ in pool} - {normalise(ex.text) for ex in ctx.data.dev + ctx.data.test + ctx.data.train}
    assert log[0].train_size == len(ctx.data.train) + len(fresh) == starts[0][1]
    # round 1 fine-tunes both sets from the extracted student; round 2's survivor continues its round-1 student
    survivor = list(log[0].accuracies).index(next(k for k in log[0].accuracies if k not in log[0].pruned))  # "prefix" drops one set
    assert starts[0][0] == pytest.approx(starts[1][0])
    assert starts[2][0] == pytest.approx(ends[survivor]) and starts[2][0] != pytest.approx(starts[0][0])
    # split dev: students are chosen on the first half, mistakes come from the second
    half = len(ctx.data.dev) // 2
    assert set(scored) == {half} and set(predicted) == {len(ctx.data.dev) - half} and len(scored) == 3
    with pytest.raises(UserInputError, match="pool_in_data=True needs soft_labels=True"):
        AgoraSettings(pool_in_data=True)


def test_agora_pool_weighting_adds_copies_of_the_mistakes_neighbours_and_no_edits(
    teacher_cache: Path, tiny_bert: Path, tiny_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = tiny_context(teacher_cache, tiny_bert, tiny_task)
    seen: list[list[tuple[str, int]]] = []  # (text, label) of D at every fine-tune
    real_train = finetune_module.train

    def spy(model: torch.nn.Module, data: EncodedSplit, config: object, **kwargs: object) -> object:
        texts = ctx.teacher.tokenizer.batch_decode(data.input_ids, skip_special_tokens=True)
        seen.append(list(zip(texts, data.labels.tolist(), strict=True)))
        return real_train(model, data, config, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(finetune_module, "train", spy)
    pool = [(" ".join(reversed(ex.text.split())), None) for ex in ctx.data.train]
    settings = AgoraSettings(
        grid={"lr": [1e-3, 3e-3]}, replay=0, rule="prefix", soft_labels=True, pool_in_data=True, pool_weighting=True, pool_neighbours=2
    )
    result = run_agora(ctx, ArchSpec(1, 16, 2, 32), steps=4, settings=settings, pool=pool)
    log = result.agora_log
    assert log is not None and log[0].mistakes > 0
    first, last = seen[0], seen[-1]
    assert len(first) == log[0].train_size and len(last) == log[1].train_size == len(first) + log[0].added
    # every addition is one more copy of a pool text already in D, learning from the teacher alone
    added = last[len(first) :]
    pool_texts = {text for text, label in first if label == SOFT_ONLY}
    assert added and {label for _, label in added} == {SOFT_ONLY} and {text for text, _ in added} <= pool_texts
    assert len({text for text, _ in added}) == len(added) <= 2 * log[0].mistakes
    with pytest.raises(UserInputError, match="pool_weighting=True needs pool_in_data=True"):
        AgoraSettings(soft_labels=True, pool_weighting=True)


def test_distillation_learns_from_an_unlabelled_pool(
    teacher_cache: Path, tiny_bert: Path, tiny_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bortnas.trial.recipe as recipe

    ctx = tiny_context(teacher_cache, tiny_bert, tiny_task)
    sizes: list[tuple[int, int]] = []  # (examples, of which without a label) per training stage
    real_train = recipe.train

    def spy(model: torch.nn.Module, data: EncodedSplit, config: object, **kwargs: object) -> object:
        sizes.append((len(data.labels), int((data.labels == SOFT_ONLY).sum())))
        return real_train(model, data, config, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(recipe, "train", spy)
    pool = [("the plot never moves", None), ("The plot  never moves", None), (ctx.data.dev[0].text, None), (ctx.data.train[0].text, None)]
    recipe.distil_student(ctx, ArchSpec(1, 16, 2, 32), steps=2, seed=0, pool=pool)
    assert sizes == [(len(ctx.data.train) + 1, 1)]  # one new text; its duplicate, a dev text and a train text are left out


def test_export_with_agora_and_plain_through_the_cli(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--strategy", "random", "--n-trials", "1"), cwd=tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("lr: [1.0e-3, 3.0e-3]\nseed: [0]\n")
    bortnas(
        "export", "--study", "tiny", "--out", "agora", "--steps", "6", "--finetune", "agora", "--agora-grid", str(grid), "-q", cwd=tmp_path
    )
    meta = json.loads((tmp_path / "agora" / "bortnas.json").read_text())
    assert meta["training"]["finetune"] == "agora" and meta["agora"]["settings"]["grid"] == {"lr": [1e-3, 3e-3], "seed": [0]}
    log = meta["agora"]["log"]
    assert len(log[0]["accuracies"]) == 2 and sum(len(it["pruned"]) for it in log) == 2 and log[-1]["replay"]
    trial = meta["trial"]
    attrs = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").user_attrs
    assert attrs[f"agora_trial_{trial}"]["log"] == meta["agora"]["log"]

    bortnas("export", "--study", "tiny", "--out", "plain", "--steps", "6", "--finetune", "plain", "-q", cwd=tmp_path)
    assert json.loads((tmp_path / "plain" / "bortnas.json").read_text())["training"]["finetune"] == "plain"
    # distillation with an unlabelled pool
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text('sentence\nthe plot never moves\n"an odd, warm little film"\n')
    bortnas("export", "--study", "tiny", "--out", "pooled", "--steps", "6", "--unlabeled", str(unlabelled), "-q", cwd=tmp_path)
    training = json.loads((tmp_path / "pooled" / "bortnas.json").read_text())["training"]
    assert training["finetune"] == "distil" and training["unlabeled_pool"] == 2

    for extra, message in (
        (["--finetune", "agora", "--unlabeled", "nope.csv"], "--unlabeled nope.csv does not exist"),
        (["--finetune", "plain", "--unlabeled", str(tiny_task)], "--unlabeled needs a teacher to learn from: use it with Distil or Agora"),
        (["--agora-pool-k", "3"], "--agora-pool-k applies to --finetune agora only"),
        (["--finetune", "agora", "--unlabeled", str(tiny_task), "--agora-min-confidence", "1.5"], "--agora-min-confidence=1.5 must"),
    ):
        proc = bortnas("export", "--study", "tiny", "--out", "bad", *extra, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1 and not (tmp_path / "bad").exists()
    pool = tmp_path / "pool.csv"
    pool.write_text("review\nnice\n")
    proc = bortnas("export", "--study", "tiny", "--out", "bad", "--finetune", "agora", "--unlabeled", str(pool), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "has no column 'sentence'" in proc.stderr and not (tmp_path / "bad").exists()

    grid.write_text("lr: [1.0e-3]\nmomentum: [0.9]\n")
    proc = bortnas("export", "--study", "tiny", "--out", "bad", "--finetune", "agora", "--agora-grid", str(grid), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "unknown key 'momentum'" in proc.stderr and not (tmp_path / "bad").exists()
