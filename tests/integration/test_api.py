"""The public Python API end to end on a tiny random teacher: the same trials as the CLI, then
trials, export and load; and the README's Python example, run verbatim (slow)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, bortnas, one_line_error, search_args, tiny_settings

import bortnas as api
from bortnas.api.export import ACCEPT_DROP, CLIMBS

pytestmark = pytest.mark.integration


def test_search_in_python_gives_the_cli_s_trials_then_exports_and_loads(
    tiny_bert: Path, tiny_task: Path, tiny_space: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"  # the CLI's too (conftest.cli_env)
    cli_storage, api_storage = f"sqlite:///{tmp_path / 'cli.db'}", f"sqlite:///{tmp_path / 'api.db'}"
    fptas = ("--strategy", "fptas", "--epsilon", "0.5", "--fptas-n0", "2")
    argv = search_args(
        tiny_bert, tiny_task, tiny_space, *fptas, "--device", "cpu", "--storage", cli_storage, strategy=None, trial_steps=None
    )
    proc = bortnas(*argv, cwd=tmp_path)
    settings = tiny_settings(tiny_bert, tiny_task, teacher_steps=40, teacher_lr=3e-3, lr=3e-3, batch_size=16, max_length=24)
    result = api.search(
        tiny_space,
        storage=api_storage,
        settings=settings,
        strategy=api.FPTAS(epsilon=0.5, n0=2),
        execution=api.Execution(device="cpu", cache_dir=cache),
    )
    from_cli = [(t.number, t.state, t.candidate) for t in api.trials("tiny", storage=cli_storage)]
    from_api = [(t.number, t.state, t.candidate) for t in api.trials(result.study, storage=api_storage)]
    assert result.fptas is not None and from_api == from_cli and len(from_api) == len(result.fptas["representatives"])
    assert re.search(rf"best trial {result.best.number}: {re.escape(str(result.best.candidate))} ", proc.stdout)
    assert result.best.best and result.fptas["steps"] == 4  # n = ceil(n0 / epsilon) = ceil(2 / 0.5)
    out = tmp_path / "model"
    report = api.export(
        result.study, out, storage=api_storage, finetune=api.Distil(steps=6), execution=api.Execution(device="cpu", cache_dir=cache)
    )
    # the export starts from W's pick and climbs the frontier while its trained dev score is over 2 points short
    attempts = json.loads((out / "bortnas.json").read_text())["attempts"]
    assert attempts[0]["trial"] == result.best.number and attempts[0]["candidate"] == result.best.candidate
    assert len(attempts) <= 1 + CLIMBS and all(a["dev_drop_points"] > ACCEPT_DROP for a in attempts[:-1])
    written = next(a for a in attempts if a["trial"] == report.trial)  # the model written is the one scored
    assert written["dev_score"] == pytest.approx(report.model.dev_score)
    model = api.load(str(out))
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    assert model(input_ids=ids).logits.shape == (2, 2)


def test_parameter_errors_name_the_parameter_in_python_and_the_flag_in_the_cli(tmp_path: Path) -> None:
    with pytest.raises(api.ParameterError, match=r"^epsilon=2.0 must be in \(0, 1\)"):
        api.FPTAS(epsilon=2.0)
    proc = bortnas("search", "--space", str(REPO / "search_spaces" / "minilm_quick.yaml"), "--epsilon", "2", cwd=tmp_path, check=False)
    one_line_error(proc, 2, "bortnas search: error: --epsilon=2.0 must be in (0, 1), e.g. 0.1 for a 90 % guarantee.")
    with pytest.raises(api.ParameterError, match=r"^accept_drop=-1 must be a finite number of points >= 0, or None"):
        api.export("any", tmp_path / "m", accept_drop=-1)
    for value, message in (("-1", "=-1.0 must be a finite number of points >= 0"), ("two", "='two' is not a number of points")):
        proc = bortnas("export", "--study", "any", "--out", "m", "--accept-drop", value, cwd=tmp_path, check=False)
        one_line_error(proc, 2, f"bortnas export: error: --accept-drop{message}")
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
