"""The BoolQ task file of the second search-efficiency table: labelled rows only, yes / no labels."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("boolq_data", Path(__file__).resolve().parents[2] / "benchmarks" / "boolq_data.py")
assert _SPEC is not None and _SPEC.loader is not None
boolq_data = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(boolq_data)


def test_convert_keeps_labelled_pairs(tmp_path: Path) -> None:
    source = tmp_path / "combined.jsonl"
    rows = [
        {"question": "is it", "passage": "It is.", "idx": 0, "label": True},
        {"question": "is it not", "passage": "It is.", "idx": 1, "label": False},
        {"question": "test row", "passage": "unlabelled", "idx": 2, "label": None},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sub" / "boolq.jsonl"
    assert boolq_data.convert(source, out) == (2, 1)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == [
        {"question": "is it", "passage": "It is.", "label": "yes"},
        {"question": "is it not", "passage": "It is.", "label": "no"},
    ]
