"""The task-teacher cache: the hash of a teacher's files, entries written once and reused, staging never taken as an entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import bortnas.trial.teacher as teacher_module
from bortnas.core.errors import UserInputError
from bortnas.core.settings import TrainConfig
from bortnas.data.encode import EncodedSplit, encode
from bortnas.data.tasks import load_table
from bortnas.train.objectives import Objective
from bortnas.trial.teacher import prepare_teacher, teacher_files_hash

CONFIG = TrainConfig(steps=2, batch_size=16)


def copy_teacher(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_the_files_hash_is_stable_and_follows_the_weights(tiny_bert: Path, tmp_path: Path) -> None:
    digest = teacher_files_hash(tiny_bert)
    assert digest == teacher_files_hash(tiny_bert) and len(digest) == 16 and int(digest, 16) >= 0
    copy = copy_teacher(tiny_bert, tmp_path / "copy")
    assert teacher_files_hash(copy) == digest  # the files, not where they lie
    (copy / "README.md").write_text("notes")  # not a config, weight or vocabulary file
    assert teacher_files_hash(copy) == digest
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of one weight
    weights.write_bytes(bytes(data))
    assert teacher_files_hash(copy) != digest
    (copy / "config.json").write_text((tiny_bert / "config.json").read_text().replace("}", ', "note": 1}', 1))
    assert teacher_files_hash(copy) not in (digest, teacher_files_hash(tiny_bert))


def test_the_files_hash_refuses_a_directory_without_weights(tiny_bert: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_bert / "config.json", bare / "config.json")
    with pytest.raises(UserInputError, match=rf"teacher directory {bare} holds no weights \(model.safetensors or pytorch_model.bin\)"):
        teacher_files_hash(bare)


@pytest.fixture(scope="module")
def splits(tiny_bert: Path, tiny_task: Path) -> tuple[Any, EncodedSplit, EncodedSplit]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = load_table(tiny_task, "sentence", "sentiment")
    return tokenizer, encode(task.train, tokenizer, 32), encode(task.dev, tokenizer, 32)


@pytest.fixture()
def fine_tunes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The teacher directories `_fine_tune` was called on, in order."""
    calls: list[Path] = []
    real = teacher_module._fine_tune

    def counting(directory: Path, *args: Any, **kwargs: Any) -> Any:
        calls.append(directory)
        return real(directory, *args, **kwargs)

    monkeypatch.setattr(teacher_module, "_fine_tune", counting)
    return calls


def prepare(
    tiny_bert: Path, splits: tuple[Any, EncodedSplit, EncodedSplit], cache: Path, data: str = "data-a", config: TrainConfig = CONFIG
) -> teacher_module.TaskTeacher:
    tokenizer, train_split, dev_split = splits
    objective = Objective(label_names=("negative", "positive"))
    return prepare_teacher(tiny_bert, tokenizer, objective, train_split, dev_split, dev_split, data, config, cache)


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "teachers").iterdir())


def test_an_entry_is_written_once_and_reused(
    tiny_bert: Path,
    splits,
    tmp_path: Path,
    fine_tunes: list[Path],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    first = prepare(tiny_bert, splits, cache)
    assert fine_tunes == [tiny_bert]
    assert first.path == cache / "teachers" / first.key and entries(cache) == [first.key]  # no staging left behind
    assert first.source_hash == teacher_files_hash(tiny_bert)
    meta_file = first.path / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert meta["dev_accuracy"] == first.dev_score and meta["source_hash"] == first.source_hash
    assert meta["settings"]["data"] == "data-a" and meta["settings"]["train"] == CONFIG.to_dict() and meta["settings"]["labels"] == 2
    assert {"config.json", "model.safetensors", "importance.safetensors", "meta.json"} <= {p.name for p in first.path.iterdir()}
    written = meta_file.stat().st_mtime_ns

    def no_second_fine_tune(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached teacher was fine-tuned again")

    monkeypatch.setattr(teacher_module, "_fine_tune", no_second_fine_tune)
    second = prepare(tiny_bert, splits, cache)
    assert (second.key, second.path, second.dev_score, second.source_hash) == (
        first.key,
        first.path,
        first.dev_score,
        first.source_hash,
    )
    assert meta_file.stat().st_mtime_ns == written and entries(cache) == [first.key]
    for name in ("layers", "heads", "neurons", "hidden"):
        assert torch.equal(getattr(second.importance, name), getattr(first.importance, name))
    reloaded, trained = second.model.state_dict(), first.model.state_dict()
    assert reloaded.keys() == trained.keys() and all(torch.equal(reloaded[k], trained[k]) for k in trained)
    assert not second.model.training


def test_the_key_follows_data_and_training_config_not_the_cache_place(
    tiny_bert: Path,
    splits,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    fine_tunes: list[Path],
) -> None:
    cache = tmp_path / "cache"
    base = prepare(tiny_bert, splits, cache).key
    other_data = prepare(tiny_bert, splits, cache, data="data-b").key
    other_steps = prepare(tiny_bert, splits, cache, config=TrainConfig(steps=3, batch_size=16)).key
    assert len({base, other_data, other_steps}) == 3
    assert len(fine_tunes) == 3 and entries(cache) == sorted({base, other_data, other_steps})
    assert prepare(tiny_bert, splits, tmp_path / "elsewhere").key == base


def test_a_killed_staging_directory_is_never_an_entry(
    tiny_bert: Path,
    splits,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    fine_tunes: list[Path],
) -> None:
    done = prepare(tiny_bert, splits, tmp_path / "first")
    # a process killed right before its rename leaves a complete staging directory `<key>.<random>`
    cache = tmp_path / "cache"
    staging = cache / "teachers" / f"{done.key}.killed"
    shutil.copytree(done.path, staging)
    meta = json.loads((staging / "meta.json").read_text())
    (staging / "meta.json").write_text(json.dumps({**meta, "dev_metrics": {"accuracy": -1.0}}))
    teacher = prepare(tiny_bert, splits, cache)
    assert len(fine_tunes) == 2  # fine-tuned anew, the staging directory ignored
    assert teacher.key == done.key and teacher.path == cache / "teachers" / done.key and teacher.dev_score != -1.0
    assert json.loads((teacher.path / "meta.json").read_text())["dev_accuracy"] == teacher.dev_score


def test_a_failed_write_leaves_no_entry(
    tiny_bert: Path,
    splits,
    tmp_path: Path,
    fine_tunes: list[Path],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    real_save_file = teacher_module.save_file
    monkeypatch.setattr(teacher_module, "save_file", interrupted)  # dies writing the importance scores
    with pytest.raises(KeyboardInterrupt):
        prepare(tiny_bert, splits, cache)
    assert entries(cache) == []  # the staging directory is removed, nothing is taken as an entry
    monkeypatch.setattr(teacher_module, "save_file", real_save_file)
    teacher = prepare(tiny_bert, splits, cache)
    assert len(fine_tunes) == 2 and entries(cache) == [teacher.key] and (teacher.path / "meta.json").is_file()


def test_a_directory_at_the_key_without_meta_is_replaced_by_a_complete_entry(
    tiny_bert: Path,
    splits,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    fine_tunes: list[Path],
) -> None:
    key = prepare(tiny_bert, splits, tmp_path / "first").key
    cache = tmp_path / "cache"
    half = cache / "teachers" / key
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # meta.json is written last: without it the entry is incomplete
    teacher = prepare(tiny_bert, splits, cache)
    assert len(fine_tunes) == 2 and teacher.key == key
    assert teacher.dev_score == json.loads((tmp_path / "first" / "teachers" / key / "meta.json").read_text())["dev_accuracy"]
    assert (half / "meta.json").is_file() and (half / "model.safetensors").is_file()  # repaired: the next call reuses it
    prepare(tiny_bert, splits, cache)
    assert len(fine_tunes) == 2
