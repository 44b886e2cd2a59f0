"""Device choice: --device parsing, the CPU default, batch placement, the GPU memory bound, the CLI's exit code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import search_args

from bortnas.app.cli import main
from bortnas.core.errors import ParameterError, UserInputError
from bortnas.runtime.device import CUDA_SYNC_EVERY, Device, limit_memory_fraction, resolve_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA device")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_is_the_gpu_when_there_is_one_else_the_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_a_user_error(name: str) -> None:
    with pytest.raises(ParameterError, match=f"^device={name} asks for a GPU but torch .* sees no CUDA device: use cpu"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(ParameterError, match=f"^device={name} is unknown: use auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_the_cpu_device_is_the_behaviour_before_devices() -> None:
    device = Device.from_name("cpu")
    assert device == Device()
    assert (device.autocast_dtype, device.sync_every, device.compile, device.describe()) == (None, 1, False, "cpu")
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long)}
    assert device.put(batch)["input_ids"] is batch["input_ids"]


def test_cpu_autocast_is_usable_for_testing_the_gpu_code_path() -> None:
    device = Device(autocast_dtype=torch.bfloat16)
    with device.autocast():
        out = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert out.dtype == torch.bfloat16 and device.describe() == "cpu (bf16)"


def test_sync_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sync_every=0 must be at least 1"):
        Device(sync_every=0)


def test_a_memory_fraction_needs_a_cuda_device() -> None:
    with pytest.raises(ValueError, match="bounds a CUDA device's memory; cpu has none to bound"):
        limit_memory_fraction(Device(), 0.5)


@pytest.mark.gpu
@needs_gpu
def test_cuda_device_runs_bf16_with_deferred_checks() -> None:
    device = Device.from_name("cuda")
    assert (device.autocast_dtype, device.sync_every) == (torch.bfloat16, CUDA_SYNC_EVERY)
    assert device.describe().startswith(torch.cuda.get_device_name(0)) and "cuda:0, bf16" in device.describe()
    moved = device.put({"input_ids": torch.ones(2, 3, dtype=torch.long)})
    assert moved["input_ids"].device.type == "cuda"


@pytest.mark.gpu
@needs_gpu
def test_memory_fraction_bounds_the_allocator() -> None:
    device = Device.from_name("cuda")
    with pytest.raises(ValueError, match="fraction=1.5 must be in"):
        limit_memory_fraction(device, 1.5)
    limit_memory_fraction(device, 0.01)
    try:
        total = torch.cuda.get_device_properties(device.torch_device).total_memory
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(total * 0.02), dtype=torch.uint8, device=device.torch_device)
    finally:
        limit_memory_fraction(device, 1.0)


@no_gpu
@pytest.mark.parametrize("device", ["cuda", "tpu"])
def test_search_with_an_unusable_device_exits_2_and_writes_nothing(
    device: str, tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "s.db"
    code = main(search_args(tiny_bert, tiny_task, tiny_space, "--storage", f"sqlite:///{storage}", "--device", device))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"bortnas search: error: --device={device}")
    assert not storage.exists()


def test_a_ray_trial_without_a_gpu_share_runs_on_the_cpu() -> None:
    from bortnas.ray.tune import worker_device

    assert worker_device(0.0) == Device()
    assert worker_device(0.0, compile=True) == Device(compile=True)


@no_gpu
def test_a_ray_trial_with_a_gpu_share_but_no_visible_gpu_fails_clearly() -> None:
    from bortnas.ray.tune import worker_device

    with pytest.raises(UserInputError, match="device=cuda asks for a GPU"):
        worker_device(0.5)


@pytest.mark.gpu
@needs_gpu
def test_a_fractional_ray_trial_is_capped_at_its_share_of_the_gpu() -> None:
    from bortnas.ray.tune import worker_device

    device = worker_device(0.01)
    try:
        total = torch.cuda.get_device_properties(device.torch_device).total_memory
        assert device.autocast_dtype == torch.bfloat16
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(total * 0.02), dtype=torch.uint8, device=device.torch_device)
    finally:
        limit_memory_fraction(device, 1.0)


@pytest.mark.parametrize(("device", "gpus"), [("cuda", "0"), ("cuda:0", "0"), ("cpu", "0.5")])
def test_ray_search_refuses_a_device_its_trials_cannot_use(
    device: str, gpus: str, tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "s.db"
    ray = ("--backend", "ray", "--device", device, "--gpus-per-trial", gpus)
    code = main(search_args(tiny_bert, tiny_task, tiny_space, "--storage", f"sqlite:///{storage}", *ray))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"--device='{device}' with --gpus-per-trial={float(gpus):g}" in err[0]
    assert not storage.exists()


def test_inference_batch_is_the_largest_power_of_two_whose_layer_activations_fit() -> None:
    from bortnas.runtime.device import inference_batch_size

    # BERT-base at 128 tokens in bf16: 2 bytes * 128 * (5*768 + 2*3072 + 2*12*128) = 3,342,336 bytes per example
    per_example = 2 * 128 * (5 * 768 + 2 * 3072 + 2 * 12 * 128)
    assert per_example == 3_342_336
    assert inference_batch_size(10 * 2**30, 128, 768, 3072, 12) == 2048  # 3212 fit
    assert inference_batch_size(2048 * per_example, 128, 768, 3072, 12) == 2048  # exactly 2048 fit
    assert inference_batch_size(2048 * per_example - 1, 128, 768, 3072, 12) == 1024
    assert inference_batch_size(2**30, 128, 768, 3072, 12, dtype_bytes=4) == 128  # 160 fit in fp32: 128, the largest power of two
    assert inference_batch_size(2**31, 128, 768, 3072, 12, dtype_bytes=4) == 256  # 321 fit
    assert inference_batch_size(2**20, 128, 768, 3072, 12) == 128  # nothing fits: the floor
    assert inference_batch_size(10**15, 64, 384, 1536, 12) == 4096  # everything fits: the ceiling


def test_evaluation_batches_stay_at_128_on_the_cpu_and_the_share_is_checked() -> None:
    assert Device().inference_batch_size(torch.nn.Linear(2, 2), 512) == 128
    with pytest.raises(ValueError, match="memory_share=1.5"):
        Device(memory_share=1.5)


@pytest.mark.gpu
@needs_gpu
def test_a_gpu_evaluation_batch_follows_the_memory_share() -> None:
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=2))
    whole = Device.from_name("cuda").inference_batch_size(model, 128)
    tiny = dataclasses.replace(Device.from_name("cuda"), memory_share=0.001).inference_batch_size(model, 128)
    assert whole > 128 and tiny == 128
