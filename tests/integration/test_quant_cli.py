"""Quantized candidates through the real CLI: search a mixed space, export packed weights, reload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from test_cli import bortnas, search_args

pytestmark = pytest.mark.integration


def test_mixed_precision_search_export_and_load(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    space = tmp_path / "q.yaml"
    space.write_text("name: q\nlayers: [1]\nhidden: [32]\nheads: [4]\nffn: [64]\nquant: [fp32, bitnet158, bit_w1a1, bibert]\n")
    bortnas(*search_args(tiny_bert, tiny_task, space, "--strategy", "grid", "--n-trials", "4"), cwd=tmp_path)
    trials = optuna.load_study(study_name="q", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").get_trials()
    by_mode = {t.user_attrs["candidate"]["quant"]: t for t in trials}
    assert set(by_mode) == {"fp32", "bitnet158", "bit_w1a1", "bibert"}
    fp, w1a1 = by_mode["fp32"].user_attrs, by_mode["bit_w1a1"].user_attrs
    # the same shape: equal parameter counts, far fewer bits and FLOP-equivalents for the binarized one
    assert fp["params_non_embedding"] == w1a1["params_non_embedding"]
    assert w1a1["size_bits_non_embedding"] < fp["size_bits_non_embedding"] / 3 and w1a1["flops"] < fp["flops"] / 3

    trial = by_mode["bit_w1a1"].number
    out = json.loads(
        bortnas(
            "export", "--study", "q", "--trial", str(trial), "--out", "w1a1", "--steps", "12", "--format", "json", "-q", cwd=tmp_path
        ).stdout
    )
    directory = tmp_path / "w1a1"
    meta = json.loads((directory / "bortnas.json").read_text())
    assert meta["candidate"]["quant"] == "bit_w1a1" and meta["training"]["bit_chain"] == "bit_w1a4,bit_w1a2,bit_w1a1"
    assert out["model"]["size_mib"] < out["teacher"]["size_mib"] / 3

    check = f"""
import csv, json, random, torch, bortnas
from transformers import AutoTokenizer
model = bortnas.load({str(directory)!r})
tok = AutoTokenizer.from_pretrained({str(directory)!r})
rows = list(csv.DictReader(open({str(tiny_task)!r})))
random.Random(0).shuffle(rows)
n = len(rows); dev = rows[n - 2 * round(n * 0.1): n - round(n * 0.1)]
labels = sorted({{r['sentiment'] for r in rows}})
enc = tok([r['sentence'] for r in dev], padding=True, truncation=True, max_length=24, return_tensors='pt')
with torch.no_grad():
    pred = model(**enc).logits.argmax(-1)
print(json.dumps({{'acc': sum(int(p) == labels.index(r['sentiment']) for p, r in zip(pred, dev)) / len(dev)}}))
"""
    reloaded = json.loads(subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout)
    assert reloaded["acc"] == pytest.approx(meta["metrics"]["dev_accuracy"])


def test_bad_bit_chain_exits_2(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--bit-chain", "bit_w1a3"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--bit-chain='bit_w1a3' has an unknown mode" in proc.stderr
    assert not (tmp_path / "bortnas.db").exists()
