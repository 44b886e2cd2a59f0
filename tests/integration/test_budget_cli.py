"""Budgets through the real CLI on a tiny random teacher: refused budgets write nothing, searches train only inside
the budget, the latency table is measured once per study, and export / trials choose by budget."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import bortnas, completed, search_args

from bortnas.core.space import TeacherShape, load_search_space
from bortnas.cost import param_count

pytestmark = pytest.mark.integration

# the tiny teacher of tests/conftest.py (make_teacher) with the two labels of make_task
SHAPE = TeacherShape(2, 32, 4, 64, vocab_size=40, max_positions=64, type_vocab_size=2)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-latency-ms", "-1", "--max-latency-ms='-1' must be a positive finite number"),
        ("--max-size-mib", "0", "--max-size-mib='0' must be a positive finite number"),
        ("--max-params", "many", "--max-params='many' is not a number"),
        # which candidate times fastest is up to the machine: the message names one, with its latency
        ("--max-latency-ms", "1e-6", "tiny.yaml meets the budget (latency <= 1e-06 ms): the cheapest, L"),
        ("--max-flops", "10", "tiny.yaml meets the budget (FLOPs <= 10 FLOPs): the cheapest, L1-H16-"),
    ],
)
def test_bad_budgets_are_one_line_exit_2_and_write_nothing(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path, flag: str, value: str, message: str
) -> None:
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, flag, value), cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert not (tmp_path / "bortnas.db").exists()


def test_search_trains_inside_the_budget_and_export_chooses_by_it(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    space = load_search_space(tiny_space)
    limit = sorted({param_count(c, SHAPE).total for c in space.candidates()})[3]  # admits the smaller part of the space
    inside = {c.key for c in space.candidates() if param_count(c, SHAPE).total <= limit}
    args = search_args(tiny_bert, tiny_task, tiny_space, "--n-trials", "3", "--max-params", str(limit))
    bortnas(*args, cwd=tmp_path)
    storage = f"sqlite:///{tmp_path / 'bortnas.db'}"
    study = optuna.load_study(study_name="tiny", storage=storage)
    trials = completed(tmp_path / "bortnas.db", "tiny")
    assert len(trials) == 3 and all(t.user_attrs["params_total"] <= limit and t.user_attrs["key"] in inside for t in trials)
    table = study.user_attrs["latency_table"]
    assert set(table["ms"]) == {c.key for c in space.candidates()} and table["threads"] == 1 and table["seq_len"] == 24
    assert study.metric_names == ["W"]
    for t in trials:  # W under both costs, the study's (FLOPs) as the objective
        assert t.user_attrs["latency_table_ms"] == table["ms"][t.user_attrs["key"]]
        assert t.value == t.user_attrs["w"] == t.user_attrs["w_flops"]
        p_ratio = t.user_attrs["size_bits_non_embedding"] / (32 * param_count(space.maximum_point, SHAPE).non_embedding)
        n_latency = (1 - p_ratio) * (1 - t.user_attrs["latency_table_ms"] / table["maximum_point_ms"])
        assert t.user_attrs["w_latency"] == pytest.approx(n_latency / t.user_attrs["error"])

    # resuming reuses the table (measured once), another budget is refused and names it
    bortnas(*args[:-4], "--n-trials", "4", "--max-params", str(limit), cwd=tmp_path)
    assert optuna.load_study(study_name="tiny", storage=storage).user_attrs["latency_table"] == table
    other = bortnas(*args[:-2], "--max-params", str(limit + 1), cwd=tmp_path, check=False)
    assert other.returncode == 2 and f"max_params: {float(limit)!r} -> {float(limit + 1)!r}" in other.stderr

    # export by budget: the most accurate trial within the latency budget, as timed again by the export
    # (the trials within 1.5x of the bound, side by side with the teacher); `trials` marks by the table
    trials = completed(tmp_path / "bortnas.db", "tiny")
    budget = round(2 * min(t.user_attrs["latency_table_ms"] for t in trials), 2)  # room for timing noise: the fastest stays in
    out = bortnas(
        "export", "--study", "tiny", "--out", "m", "--steps", "2", "--max-latency-ms", str(budget), "--format", "json", cwd=tmp_path
    )
    recorded = json.loads((tmp_path / "m" / "bortnas.json").read_text())["budget"]
    assert recorded["selection"] == f"latency <= {budget:.2f} ms"
    retimed = recorded["retimed"]["ms"]
    assert set(retimed) == {t.user_attrs["key"] for t in trials if t.user_attrs["latency_table_ms"] <= 1.5 * budget}

    def now(t: optuna.trial.FrozenTrial) -> float:
        return float(retimed.get(t.user_attrs["key"], t.user_attrs["latency_table_ms"]))

    within_now = [t for t in trials if now(t) <= budget]
    expected = min(within_now, key=lambda t: (-t.user_attrs["dev_score"], now(t), t.number))
    assert json.loads(out.stdout)["trial"] == expected.number
    within = [t for t in trials if t.user_attrs["latency_table_ms"] <= budget]
    rows = json.loads(bortnas("trials", "--study", "tiny", "--max-latency-ms", str(budget), "--format", "json", cwd=tmp_path).stdout)
    assert {r["trial"] for r in rows if r["in_budget"]} == {t.number for t in within}
    none = bortnas("export", "--study", "tiny", "--out", "n", "--max-latency-ms", "1e-6", cwd=tmp_path, check=False)
    assert none.returncode == 2 and "the closest, trial" in none.stderr and not (tmp_path / "n").exists()
