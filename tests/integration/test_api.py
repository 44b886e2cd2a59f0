"""The public Python API end to end on a tiny random teacher: the same trials as the CLI, then
trials, export and load; and the README's Python example, run verbatim (slow)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bortnas

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def tiny_settings(teacher: Path, task: Path) -> bortnas.RunSettings:
    return bortnas.RunSettings(
        teacher=str(teacher),
        data=str(task),
        text_column="sentence",
        label_column="sentiment",
        teacher_steps=40,
        teacher_lr=3e-3,
        lr=3e-3,
        batch_size=16,
        max_length=24,
    )


def test_search_in_python_gives_the_cli_s_trials_then_exports_and_loads(
    tiny_bert: Path, tiny_task: Path, tiny_space: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cli_storage, api_storage = f"sqlite:///{tmp_path / 'cli.db'}", f"sqlite:///{tmp_path / 'api.db'}"
    argv = [
        "search",
        "--space",
        str(tiny_space),
        "--teacher",
        str(tiny_bert),
        "--data",
        str(tiny_task),
        "--text-column",
        "sentence",
        "--label-column",
        "sentiment",
        "--teacher-steps",
        "40",
        "--teacher-lr",
        "3e-3",
        "--lr",
        "3e-3",
        "--batch-size",
        "16",
        "--max-length",
        "24",
        "--epsilon",
        "0.5",
        "--fptas-n0",
        "2",
        "--device",
        "cpu",
        "--storage",
        cli_storage,
        "-q",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "bortnas", *argv],
        env=dict(os.environ, BORTNAS_CACHE=str(cache)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = bortnas.search(
        tiny_space,
        storage=api_storage,
        settings=tiny_settings(tiny_bert, tiny_task),
        strategy=bortnas.FPTAS(epsilon=0.5, n0=2),
        execution=bortnas.Execution(device="cpu", cache_dir=cache),
    )
    from_cli = [(t.number, t.state, t.candidate) for t in bortnas.trials("tiny", storage=cli_storage)]
    from_api = [(t.number, t.state, t.candidate) for t in bortnas.trials(result.study, storage=api_storage)]
    assert from_api == from_cli and len(from_api) == len(result.fptas["representatives"])  # type: ignore[index]
    assert re.search(rf"best trial {result.best.number}: {re.escape(str(result.best.candidate))} ", proc.stdout)
    assert result.best.best and result.fptas is not None and result.fptas["steps"] == 4  # n = ceil(n0 / epsilon) = ceil(2 / 0.5)
    out = tmp_path / "model"
    report = bortnas.export(
        result.study,
        out,
        storage=api_storage,
        finetune=bortnas.Distil(steps=6),
        execution=bortnas.Execution(device="cpu", cache_dir=cache),
    )
    assert report.trial == result.best.number and report.spec.key == result.best.candidate
    model = bortnas.load(str(out))
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    assert model(input_ids=ids).logits.shape == (2, 2)


def test_parameter_errors_name_the_parameter_in_python_and_the_flag_in_the_cli(tmp_path: Path) -> None:
    with pytest.raises(bortnas.ParameterError, match=r"^epsilon=2.0 must be in \(0, 1\)"):
        bortnas.FPTAS(epsilon=2.0)
    proc = subprocess.run(
        [sys.executable, "-m", "bortnas", "search", "--space", str(REPO / "search_spaces" / "minilm_quick.yaml"), "--epsilon", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.strip().endswith("e.g. 0.1 for a 90 % guarantee.")
    assert proc.stderr.count("\n") == 1 and "bortnas search: error: --epsilon=2.0 must be in (0, 1)" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_the_readme_python_example_runs_verbatim(tmp_path: Path) -> None:
    block = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None, "README.md has no python example"
    shutil.copytree(REPO / "search_spaces", tmp_path / "search_spaces")
    (tmp_path / "out").mkdir()
    proc = subprocess.run([sys.executable, "-c", block.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "minilm_quick" / "bortnas.json").exists()
