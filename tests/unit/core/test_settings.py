"""Run settings and strategies resolve every implied default in one pure place, and refuse bad values
naming the parameter (`ParameterError`; the CLI shows the flag instead)."""

from __future__ import annotations

import pytest

from bortnas.core.budget import Budget
from bortnas.core.errors import ParameterError
from bortnas.core.settings import DEFAULT_LR, Execution, RaySettings, RunSettings
from bortnas.modes import QuantMode
from bortnas.search.strategies import FPTAS, TPE, Grid


def test_the_learning_rate_follows_init_unless_given() -> None:
    assert RunSettings().lr == DEFAULT_LR["inherit"] == 2e-4
    assert RunSettings(init="scratch").lr == DEFAULT_LR["scratch"] == 1e-3  # random weights need a larger step
    assert RunSettings(init="scratch", lr=5e-3).lr == 5e-3
    scratch = RunSettings(init="scratch").student_train_config(10)
    # AdamW, not Bort's SGD (which left scratch students at the majority class), still clipped and distilled alike
    fields = (scratch.optimizer, scratch.lr, scratch.clip_weights, scratch.hidden_weight, scratch.warmup_fraction)
    assert fields == ("adamw", 1e-3, 1.0, 1.0, 0.1)
    inherit = RunSettings().student_train_config(10, seed=3, dmd_weight=QuantMode.BIBERT.config.dmd_weight)
    assert (inherit.optimizer, inherit.lr, inherit.clip_weights, inherit.seed, inherit.dmd_weight) == ("adamw", 2e-4, None, 3, 1.0)


def test_settings_round_trip_and_an_old_study_without_encoding_resumes() -> None:
    settings = RunSettings(data="/tmp/x.csv", encoding="latin-1", init="scratch", latency_backend="onnxruntime")
    assert RunSettings.from_dict(settings.to_dict()) == settings and settings.to_dict()["latency_backend"] == "onnxruntime"
    # the pinned dict of studies made before --encoding and --latency-backend existed
    assert "encoding" not in RunSettings().to_dict() and "latency_backend" not in RunSettings().to_dict()
    assert RunSettings.from_dict({**RunSettings().to_dict(), "unknown_future_key": 1}) == RunSettings()


def test_the_hidden_weight_reaches_every_student_and_is_pinned_only_off_its_default() -> None:
    assert "hidden_weight" not in RunSettings().to_dict()  # studies made before the setting resume unchanged
    relations_only = RunSettings(task="general", hidden_weight=0.0)
    assert relations_only.to_dict()["hidden_weight"] == 0.0 and RunSettings.from_dict(relations_only.to_dict()) == relations_only
    assert relations_only.student_train_config(10).hidden_weight == 0.0
    assert RunSettings(hidden_weight=2.5).student_train_config(10).hidden_weight == 2.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trial_steps": 0}, "trial_steps=0 must be a positive integer"),
        ({"lr": -1.0}, "lr=-1.0 must be positive"),
        ({"hidden_weight": -0.5}, "hidden_weight=-0.5 must be a finite number, 0 or more"),
        ({"hidden_weight": float("nan")}, "hidden_weight=nan must be a finite number"),
        ({"init": "zeros"}, "init='zeros' is unknown"),
        ({"encoding": "klingon"}, "encoding='klingon' is not a known text encoding"),
        ({"encoding": "\x00"}, r"encoding='\\x00' is not a known text encoding"),
        ({"latency_backend": "tensorrt"}, "latency_backend='tensorrt' is unknown: use torch or onnxruntime"),
        ({"bit_chain": "bit_w1a4,int3"}, "unknown mode 'int3'"),
        ({"bit_chain": "fp32,bit_w1a1"}, "fp32 is the task teacher"),
    ],
)
def test_bad_run_settings_name_their_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        RunSettings(**kwargs)  # type: ignore[arg-type]


def test_the_bit_chain_is_parsed_into_modes() -> None:
    assert RunSettings().chain() == (QuantMode.BIT_W1A4, QuantMode.BIT_W1A2, QuantMode.BIT_W1A1)
    assert RunSettings(bit_chain="").chain() == ()


def test_the_budget_is_pinned_flat_so_older_studies_resume() -> None:
    settings = RunSettings(budget=Budget(max_latency_ms="4", max_params=5e6))
    pinned = settings.to_dict()
    assert pinned["max_latency_ms"] == 4.0 and pinned["max_params"] == 5e6 and "budget" not in pinned and "max_flops" not in pinned
    assert RunSettings.from_dict(pinned) == settings


def test_strategies_resolve_the_trial_steps() -> None:
    assert TPE().trial_steps(60) == 60
    assert Grid().trial_steps(12) == 12
    assert FPTAS(epsilon=0.1).trial_steps(60) == 60  # ceil(6 / (0.1 * 1^1.5))
    assert FPTAS(epsilon=0.25, n0=3.0, s=4.0).steps == 2  # ceil(3 / (0.25 * 8))
    with pytest.raises(ParameterError, match="trial_steps=30 does not apply to the FPTAS"):
        FPTAS().trial_steps(30)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TPE(n_trials=0), "n_trials=0 must be a positive integer"),
        (lambda: FPTAS(epsilon=1.0), r"epsilon=1.0 must be in \(0, 1\)"),
        (lambda: FPTAS(n0=0.0), "n0=0.0 must be positive"),
        (lambda: FPTAS(refine=-1), "refine=-1 must be an integer >= 0"),
        (lambda: Execution(heartbeat_interval=10, grace_period=10), "grace_period=10 must be longer than heartbeat_interval=10"),
    ],
)
def test_bad_strategies_and_execution_name_their_parameter(make: object, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        make()  # type: ignore[operator]


def test_ray_settings_refuse_bad_shares_and_devices_the_trials_cannot_honour() -> None:
    with pytest.raises(ParameterError, match="cpus_per_trial=0 must be positive"):
        RaySettings(cpus_per_trial=0)
    with pytest.raises(ParameterError, match="device='cuda' with gpus_per_trial=0"):
        RaySettings().check_device("cuda")
    with pytest.raises(ParameterError, match="device='cpu' with gpus_per_trial=0.5"):
        RaySettings(gpus_per_trial=0.5).check_device("cpu")
    with pytest.raises(ParameterError, match="device='cuda' with gpus_per_trial=0"):
        Execution(device="cuda", ray=RaySettings())
    RaySettings(gpus_per_trial=0.25).check_device("cuda:0")
    RaySettings().check_device("auto")
