"""On the real all-MiniLM-L6-v2 teacher and the real Rotten Tomatoes reviews."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, bortnas

from bortnas.core.settings import RunSettings
from bortnas.core.space import load_search_space
from bortnas.trial.inputs import resolve_inputs


@pytest.mark.integration
def test_shipped_spaces_fit_the_real_teacher_and_data() -> None:
    inputs = resolve_inputs(RunSettings())
    shape, data = inputs.shape, inputs.data
    assert (shape.layers, shape.hidden, shape.heads, shape.ffn, shape.vocab_size) == (6, 384, 12, 1536, 30522)
    assert data.num_labels == 2 and len(data.dev) > 1000
    for name in ("minilm_quick", "minilm_full"):
        load_search_space(REPO / "search_spaces" / f"{name}.yaml").check_fits(shape)


@pytest.mark.slow
@pytest.mark.integration
def test_real_search_and_export(tmp_path: Path) -> None:
    space = tmp_path / "two.yaml"
    space.write_text("layers: [2]\nhidden: [192, 384]\nheads: [6]\nffn: [768]\n")

    def run(*args: str) -> str:
        return bortnas(*args, "-q", cwd=tmp_path, timeout=3600).stdout  # the real teacher: minutes on a CPU

    run("search", "--space", str(space), "--teacher-steps", "150", "--trial-steps", "30", "--n-trials", "2", "--strategy", "grid")
    out = json.loads(run("export", "--study", "two", "--out", "model", "--steps", "100", "--format", "json"))
    # a 2-layer cut of a task-tuned MiniLM learns real reviews well above chance and runs faster than the teacher
    assert out["teacher"]["test_score"] > 0.7
    assert out["model"]["test_score"] > 0.65
    assert out["model"]["params_non_embedding"] < out["teacher"]["params_non_embedding"] / 2
    assert out["ratios"]["latency"] > 1.5
