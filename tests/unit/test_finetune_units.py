"""The teacher units an exported encoder was cut from: written to `bortnas.json` by the export and read
back by `bortnas finetune`, which distils the teacher's hidden states there only where they still
name the teacher's units."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import cast

import pytest
import torch

from bortnas.export.writer import units_record
from bortnas.model.extract import Extraction
from bortnas.trial.context import Context
from bortnas.trial.finetune import UNALIGNED, recorded_units

TEACHER_HASH = "a1b2c3"


def context(layers: int = 6, hidden: int = 8, source_hash: str = TEACHER_HASH) -> Context:
    shape = types.SimpleNamespace(layers=layers, hidden=hidden)
    return cast(Context, types.SimpleNamespace(shape=shape, teacher=types.SimpleNamespace(source_hash=source_hash)))


def write_encoder(directory: Path, extraction: Extraction, teacher_hash: str = TEACHER_HASH) -> Path:
    directory.mkdir()
    record = {"training": {"steps": 10, **units_record(extraction)}, "provenance": {"teacher_hash": teacher_hash}}
    (directory / "bortnas.json").write_text(json.dumps(record))
    return directory


CUT = Extraction(layers=(1, 4), hidden=torch.tensor([0, 2, 3, 7]))


def test_the_units_an_export_records_read_back_as_the_same_extraction(tmp_path: Path) -> None:
    encoder = write_encoder(tmp_path / "enc", CUT)
    assert json.loads((encoder / "bortnas.json").read_text())["training"]["teacher_hidden"] == [0, 2, 3, 7]
    units = recorded_units(encoder, context(), layers=2, hidden=4)
    assert units is not None
    assert units.layers == (1, 4) and units.hidden.tolist() == [0, 2, 3, 7] and units.hidden.dtype == torch.long


@pytest.mark.parametrize(
    ("why", "ctx", "layers", "hidden"),
    [
        ("another teacher's files", context(source_hash="ffff"), 2, 4),
        ("a deeper encoder than the units recorded", context(), 3, 4),
        ("a wider encoder than the units recorded", context(), 2, 5),
        ("a teacher layer the task teacher lacks", context(layers=4), 2, 4),
        ("a teacher unit the task teacher lacks", context(hidden=7), 2, 4),
    ],
)
def test_units_that_no_longer_name_the_teachers_are_not_used(tmp_path: Path, why: str, ctx: Context, layers: int, hidden: int) -> None:
    assert recorded_units(write_encoder(tmp_path / "enc", CUT), ctx, layers, hidden) is None, why


def test_an_encoder_without_recorded_units_is_distilled_without_the_hidden_term(tmp_path: Path) -> None:
    assert recorded_units(tmp_path, context(), 2, 4) is None  # no bortnas.json
    older = tmp_path / "older"
    older.mkdir()
    (older / "bortnas.json").write_text(json.dumps({"training": {"teacher_layers": [1, 4]}, "provenance": {"teacher_hash": TEACHER_HASH}}))
    assert recorded_units(older, context(), 2, 4) is None  # written before the units were: layers but no hidden units
    (older / "bortnas.json").write_text("{not json")
    assert recorded_units(older, context(), 2, 4) is None
    # a model whose units descend from no recorded teacher units records empty lists, which fit no encoder
    assert recorded_units(write_encoder(tmp_path / "plain", UNALIGNED), context(), 2, 4) is None
