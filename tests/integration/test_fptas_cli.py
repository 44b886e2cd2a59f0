"""FPTAS in the product, Bort's space, and the search-efficiency benchmark at small scale."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import REPO, bortnas, completed, search_args

from bortnas.core.space import ArchSpec, TeacherShape, load_search_space
from bortnas.search.fptas_sampler import arch_sampler

pytestmark = pytest.mark.integration


def test_fptas_search_records_its_plan_and_guarantee(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    args = search_args(tiny_bert, tiny_task, tiny_space, "--strategy", "fptas", "--epsilon", "0.3", "--format", "json", trial_steps=None)
    out = json.loads(bortnas(*args, cwd=tmp_path).stdout)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}")
    plan = study.user_attrs["fptas"]
    assert plan["epsilon"] == 0.3 and plan["guarantee"] == pytest.approx(0.7)
    assert plan["steps"] == math.ceil(6 / 0.3) == 20
    trials = completed(tmp_path / "bortnas.db", "tiny")
    assert sorted(t.user_attrs["key"] for t in trials) == sorted(plan["representatives"])
    assert len(trials) <= plan["evaluation_bound"] < 16
    assert all(t.user_attrs["steps"] == 20 and t.user_attrs["strategy"] == "fptas" for t in trials)
    assert out["best_trial"] == max(trials, key=lambda t: t.value).number
    # resuming evaluates nothing; another epsilon on the same study is refused
    bortnas(*args, cwd=tmp_path)
    assert len(study.get_trials()) == len(trials)
    other = bortnas(*[a if a != "0.3" else "0.2" for a in args], cwd=tmp_path, check=False)
    assert other.returncode == 2 and "epsilon=0.3" in other.stderr
    # trials and export see the FPTAS trials like any other
    assert json.loads(bortnas("trials", "--study", "tiny", "--format", "json", cwd=tmp_path).stdout)
    bortnas("export", "--study", "tiny", "--out", "m", "--steps", "3", "-q", cwd=tmp_path)


def test_fptas_refinement_evaluates_the_members_by_their_bound(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    def args(refine: str) -> list[str]:
        extra = ("--strategy", "fptas", "--epsilon", "0.3", "--fptas-refine", refine, "--format", "json")
        return search_args(tiny_bert, tiny_task, tiny_space, *extra, trial_steps=None)

    out = json.loads(bortnas(*args("2"), cwd=tmp_path).stdout)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}")
    info = study.user_attrs["fptas"]
    trials = completed(tmp_path / "bortnas.db", "tiny")
    keys = [t.user_attrs["key"] for t in sorted(trials, key=lambda t: t.number)]
    assert len(info["refined"]) == 2 and keys == info["representatives"] + info["refined"]
    # one member at a time, each the best N(c) / e~(c) under the error model refitted to every error so far
    shape = TeacherShape(2, 32, 4, 64, vocab_size=40, max_positions=64, type_vocab_size=2)
    space = load_search_space(tiny_space)
    plan = arch_sampler(space, shape, 24, 0.3)
    errors = {ArchSpec.from_dict(t.user_attrs["candidate"]): t.user_attrs["error"] for t in trials}
    known = {c: e for c, e in errors.items() if c.key in info["representatives"]}
    for key in info["refined"]:
        assert [c.key for c in plan.next_members(list(known.items()), 1)] == [key]
        known.update({c: e for c, e in errors.items() if c.key == key})
    assert out["W"] == pytest.approx(max(t.value for t in trials))  # the argmax over representatives and refined members
    # resuming with a larger B extends the same order; a sampler cannot refine
    bortnas(*args("3"), cwd=tmp_path)
    info3 = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").user_attrs["fptas"]
    assert info3["refined"][:2] == info["refined"] and len(completed(tmp_path / "bortnas.db", "tiny")) == len(trials) + 1
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--fptas-refine", "2"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "applies to --strategy fptas only" in proc.stderr


def test_fptas_rejects_trial_steps_and_bad_epsilon(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--strategy", "fptas"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--trial-steps=8 does not apply to the FPTAS" in proc.stderr
    args = search_args(tiny_bert, tiny_task, tiny_space, "--strategy", "fptas", "--epsilon", "1.5", trial_steps=None)
    proc = bortnas(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--epsilon=1.5 must be in (0, 1)" in proc.stderr
    assert not (tmp_path / "bortnas.db").exists()


def test_scratch_init_is_pinned_and_recorded(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--init", "scratch", "--n-trials", "1"), cwd=tmp_path)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}")
    assert study.user_attrs["settings"]["init"] == "scratch"
    assert completed(tmp_path / "bortnas.db", "tiny")[0].user_attrs["init"] == "scratch"


def test_bort_space_prices_the_published_bort(tmp_path: Path) -> None:
    space = str(REPO / "search_spaces" / "bort_bert_large.yaml")
    proc = bortnas("space", space, "--format", "json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    summary = report["summary"]
    assert summary["candidates"] == 300 and summary["against"] == "bert-large"
    assert summary["maximum_point"] == "L12-H1024-A16-I3072-fp32"
    bort = summary["highlight"][0]
    assert bort["candidate"] == "L4-H1024-A8-I768-fp32"
    # 4 layers of H=1024, I=768: 4 * (4 * (1024^2 + 1024) + 2 * 1024 * 768 + 768 + 1024 + 4 * 1024)
    assert bort["params_encoder"] == 4 * (4 * (1024**2 + 1024) + 2 * 1024 * 768 + 768 + 1024 + 4 * 1024)
    assert 1 <= bort["rank_by_N"] <= 300
    text = bortnas("space", space, cwd=tmp_path).stdout
    assert "highlight L4-H1024-A8-I768-fp32: rank" in text


def test_search_efficiency_benchmark_small(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'table.db'}"
    script = str(REPO / "benchmarks" / "search_efficiency.py")
    env_args = [
        "--",
        "--teacher",
        str(tiny_bert),
        "--data",
        str(tiny_task),
        "--text-column",
        "sentence",
        "--label-column",
        "sentiment",
        "--teacher-steps",
        "10",
        "--max-length",
        "16",
        "-q",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    subprocess.run(
        [
            sys.executable,
            script,
            "build",
            "--space",
            str(tiny_space),
            "--storage",
            storage,
            "--study",
            "t",
            "--trial-steps",
            "2",
            *env_args,
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    assert len(completed(tmp_path / "table.db", "t")) == 16
    proc = subprocess.run(
        [
            sys.executable,
            script,
            "replay",
            "--storage",
            storage,
            "--study",
            "t",
            "--seeds",
            "2",
            "--budgets",
            "2",
            "4",
            "8",
            "--workers",
            "1",
            "4",
            "--plot",
            str(tmp_path / "regret.png"),
            "--json",
            str(tmp_path / "r.json"),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["strategies"]) == {"random", "tpe", "nsga2", "grid", "fptas", "fptas+refine"}
    refined = [report["strategies"]["fptas+refine"]["regret"][b]["median"] for b in ("2", "4", "8")]
    assert refined == sorted(refined, reverse=True)  # the refined FPTAS's regret never rises with the budget
    clock = report["wallclock"]["strategies"]
    assert set(clock) == {"random", "tpe", "nsga2", "grid", "fptas", "fptas+refine"}
    # on any number of workers, 1 % is reached by the time every candidate has been trained once in a row
    serial = sum(t.user_attrs["seconds"] for t in completed(tmp_path / "table.db", "t"))
    for name, entry in clock.items():
        for k in ("1", "4"):
            assert 0.0 < entry[k]["1%"]["max"] <= serial + 1e-6 or name == "fptas", (name, k, entry[k])
    assert (tmp_path / "regret_wallclock.png").stat().st_size > 1000
    for entry in report["strategies"].values():
        regrets = [entry["regret"][b]["median"] for b in ("2", "4", "8")]
        assert all(0.0 <= r <= 1.0 for r in regrets)
        assert entry["evaluations_to"]["1%"]["max"] <= 16
    # more budget never hurts a sampler (best-so-far is monotone)
    assert report["strategies"]["random"]["regret"]["8"]["median"] <= report["strategies"]["random"]["regret"]["2"]["median"]
    assert (tmp_path / "regret.png").stat().st_size > 1000
    assert "fptas" in proc.stdout and "regret@8" in proc.stdout
