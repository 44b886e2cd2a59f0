"""The CLI holds no second copy of a default: its flags fall back to the library's dataclasses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bortnas import FPTAS, Execution, ParameterError, RaySettings, RunSettings, UserInputError
from bortnas.app.cli import build_parser, flag_for, main, settings_from

REPO = Path(__file__).resolve().parents[2]


def test_space_prices_at_the_sequence_length_a_search_uses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", str(REPO / "search_spaces" / "minilm_quick.yaml"), "--format", "json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["seq_len"] == RunSettings().max_length == 64 and summary["epsilon"] == FPTAS().epsilon


def test_left_out_flags_leave_the_dataclass_defaults() -> None:
    args = build_parser().parse_args(["search", "--space", "x.yaml"])
    # None means "not given": the library's default applies, so no default is typed twice
    given = ("n_trials", "epsilon", "fptas_n0", "fptas_s", "fptas_refine", "heartbeat_interval", "cpus_per_trial", "gpus_per_trial")
    assert all(getattr(args, name) is None for name in given + ("hidden_weight",))
    assert settings_from(args).hidden_weight == RunSettings().hidden_weight == 1.0
    relations_only = build_parser().parse_args(["search", "--space", "x.yaml", "--objective", "general", "--hidden-weight", "0"])
    assert settings_from(relations_only).hidden_weight == 0.0
    assert (args.max_length, args.batch_size, args.strategy) == (RunSettings().max_length, RunSettings().batch_size, FPTAS.name)
    assert Execution().heartbeat_interval == 20 and RaySettings().cpus_per_trial == 1.0


def test_parameters_map_to_their_flags() -> None:
    assert flag_for("epsilon") == "--epsilon" and flag_for("max_latency_ms") == "--max-latency-ms"
    assert flag_for("n0") == "--fptas-n0" and flag_for("pair_column") == "--text-pair-column" and flag_for("num_cpus") == "--ray-cpus"
    parser_flags = {
        opt for action in build_parser()._subparsers._group_actions[0].choices["search"]._actions for opt in action.option_strings
    }  # type: ignore[union-attr]
    for parameter in ("n0", "s", "refine", "pair_column", "num_cpus", "epsilon", "trial_steps", "heartbeat_interval", "grace_period"):
        assert flag_for(parameter) in parser_flags


def test_errors_show_flags_for_the_parameters_they_name() -> None:
    error = ParameterError("device", "='cpu' with gpus_per_trial=0.5: use gpus_per_trial=0", mentions=("gpus_per_trial",))
    assert str(error) == "device='cpu' with gpus_per_trial=0.5: use gpus_per_trial=0"
    assert error.named(flag_for) == "--device='cpu' with --gpus-per-trial=0.5: use --gpus-per-trial=0"
    # a name inside a longer one (n0 in fptas_n0) is left alone
    other = UserInputError("set n0=2 or fptas_n0=2", mentions=("n0",))
    assert other.named(flag_for) == "set --fptas-n0=2 or fptas_n0=2"
