"""quantize_ on real transformers models, the quantized layers, the distillation chain and DMD."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

from bortnas.core.space import QuantMode
from bortnas.quant.attention import IMPLEMENTATION
from bortnas.quant.distill import direction_matching_loss
from bortnas.quant.modules import BitLinear158, ElasticActivation, Int8Linear, QuantEmbedding, QuantLinear, quantize_
from bortnas.trial.recipe import chain_stages

QUANTIZED = [m for m in QuantMode if m is not QuantMode.FP32]
INTEGER = [m for m in QuantMode if m.config.kernel == "int8"]


def tiny(family: str = "bert") -> nn.Module:
    torch.manual_seed(0)
    common = dict(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=20,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    if family == "roberta":
        return RobertaForSequenceClassification(RobertaConfig(**common, pad_token_id=0, type_vocab_size=1))
    return BertForSequenceClassification(BertConfig(**common))


def batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 50, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 0])}


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("mode", QUANTIZED)
def test_quantize_swaps_modules_keeps_names_and_trains(family: str, mode: QuantMode) -> None:
    model = tiny(family)
    names = set(dict(model.named_parameters()))
    quantize_(model, mode)
    assert names <= set(dict(model.named_parameters()))  # the original parameters keep their names
    layer = (model.bert if family == "bert" else model.roberta).encoder.layer[0]
    linears = [
        layer.attention.self.query,
        layer.attention.self.key,
        layer.attention.self.value,
        layer.attention.output.dense,
        layer.intermediate.dense,
        layer.output.dense,
    ]
    assert all(isinstance(m, QuantLinear) for m in linears)
    assert not isinstance(model.classifier, QuantLinear) if family == "bert" else not isinstance(model.classifier.dense, QuantLinear)
    word = (model.bert if family == "bert" else model.roberta).embeddings.word_embeddings
    assert isinstance(word, QuantEmbedding) is (mode not in INTEGER)
    assert getattr(layer.attention.self, "bortnas_attention", "softmax") == mode.config.attention
    assert (model.config._attn_implementation == IMPLEMENTATION) is (mode not in INTEGER)
    assert isinstance(layer.intermediate.intermediate_act_fn, nn.ReLU) is mode.value.startswith("bit_")
    model.train()
    out = model(**batch())
    out.loss.backward()
    assert torch.isfinite(out.loss)
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_bitlinear_forward_by_hand() -> None:
    layer = BitLinear158(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0], [0.1, 2.0]]))
        layer.bias.zero_()
    # x -> [64/63.5, -2] (8-bit absmax); W -> 0.9 [[1, -1], [0, 1]]
    y = layer(torch.tensor([[1.0, -2.0]]))
    torch.testing.assert_close(y, torch.tensor([[0.9 * 64 / 63.5 + 1.8, -1.8]]))


def test_int8_forward_by_hand_on_the_kernel_and_in_the_simulation() -> None:
    layer = Int8Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0], [0.1, 2.0]]))
        layer.bias.copy_(torch.tensor([0.25, -0.5]))
    # W rows: scales 1/127 and 2/127, codes [64, -127] (63.5 rounds to even) and [6, 127]
    # x = [1, -2]: scale 127/2, codes [64, -127]
    expected = torch.tensor([[(64 * 64 + 127 * 127) / 63.5 / 127 + 0.25, (64 * 6 - 127 * 127) / 63.5 * 2 / 127 - 0.5]])
    x = torch.tensor([[1.0, -2.0]])
    torch.testing.assert_close(layer(x), expected)  # autograd on: the simulation
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected)  # the int8 kernel
        made_here = Int8Linear.from_linear(nn.Linear(2, 2))  # inference tensors: no version counter to key the cache on
        with torch.no_grad():
            made_here.weight.copy_(layer.weight)
            made_here.bias.copy_(layer.bias)
        torch.testing.assert_close(made_here(x), expected)


KERNEL_TOLERANCE = 1e-4  # float rounding between one int32 product rescaled once and fp32 products of the rescaled codes


@pytest.mark.parametrize("mode", INTEGER)
def test_integer_kernel_matches_the_simulation(mode: QuantMode, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    model = quantize_(BertForSequenceClassification(config), mode).eval()
    inputs = {k: v for k, v in batch().items() if k != "labels"}
    inputs["input_ids"] = torch.randint(3, 300, (3, 6), generator=torch.Generator().manual_seed(2))
    with torch.enable_grad():
        simulated = model(**inputs).logits.detach()
    calls = []
    int_mm = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: calls.append(a.shape) or int_mm(a, b))
    with torch.inference_mode():
        kernel = model(**inputs).logits
    assert len(calls) == 2 * 6  # every encoder projection of both layers ran on the integer kernel
    torch.testing.assert_close(kernel, simulated, rtol=0, atol=KERNEL_TOLERANCE)
    # a changed weight is re-quantized for the kernel, not served from the cache
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight.mul_(-1)
        simulated_after = model(**inputs).logits
    monkeypatch.setattr(torch, "_int_mm", int_mm)
    with torch.enable_grad():
        torch.testing.assert_close(simulated_after, model(**inputs).logits.detach(), rtol=0, atol=KERNEL_TOLERANCE)
    assert not torch.allclose(simulated_after, kernel)


def test_elastic_step_is_set_by_the_first_batch_and_again_after_loading_an_unset_state() -> None:
    act = ElasticActivation(bits=2, signed=True)
    unset = {k: v.clone() for k, v in act.state_dict().items()}
    act(torch.full((4,), 2.0))
    first = act.alpha.item()
    act(torch.full((4,), 8.0))
    assert act.alpha.item() == first != 1.0  # later batches leave the learned step alone
    trained = {k: v.clone() for k, v in act.state_dict().items()}
    act.load_state_dict(unset)
    act(torch.full((4,), 8.0))
    assert act.alpha.item() == pytest.approx(4 * first)  # 2 mean|x| / sqrt(Qp): four times the mean, four times the step
    act.load_state_dict(trained)
    act(torch.full((4,), 8.0))
    assert act.alpha.item() == first


def test_requantizing_moves_along_a_chain() -> None:
    model = quantize_(tiny(), QuantMode.BIT_W1A4)
    weight = model.bert.encoder.layer[0].output.dense.weight.detach().clone()
    quantize_(model, QuantMode.BIT_W1A2)
    layer = model.bert.encoder.layer[0]
    assert layer.output.dense.act.bits == 2 and layer.attention.self.probs_act.bits == 2
    torch.testing.assert_close(layer.output.dense.weight, weight)  # the latent weights carry over


def test_chain_stages_share_the_steps() -> None:
    chain = (QuantMode.BIT_W1A4, QuantMode.BIT_W1A2, QuantMode.BIT_W1A1)
    assert chain_stages(QuantMode.BIT_W1A1, chain, 61) == [(QuantMode.BIT_W1A4, 20), (QuantMode.BIT_W1A2, 20), (QuantMode.BIT_W1A1, 21)]
    assert chain_stages(QuantMode.BIT_W1A2, chain, 60) == [(QuantMode.BIT_W1A4, 30), (QuantMode.BIT_W1A2, 30)]
    assert chain_stages(QuantMode.BIBERT, chain, 60) == [(QuantMode.BIBERT, 60)]
    assert chain_stages(QuantMode.BIT_W1A1, (), 60) == [(QuantMode.BIT_W1A1, 60)]
    assert chain_stages(QuantMode.BIT_W1A1, chain, 2) == [(QuantMode.BIT_W1A2, 1), (QuantMode.BIT_W1A1, 1)]


def test_dmd_loss_on_known_matrices() -> None:
    # teacher X = I: P_T / ||P_T|| = I / sqrt 2; student X = [[1, 1], [0, 0]]: P_S / ||P_S|| = [[1, 0], [0, 0]]
    teacher = [{name: torch.eye(2).view(1, 2, 2) for name in ("query", "key", "value")}]
    student = [{name: torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]) for name in ("query", "key", "value")}]
    per_projection = math.sqrt((1 - 1 / math.sqrt(2)) ** 2 + 0.5)
    assert direction_matching_loss(student, teacher, [(0, 0)]).item() == pytest.approx(3 * per_projection)
    # scale-free, and a student of another width with the same relations scores 0
    scaled = [{k: 5 * v for k, v in student[0].items()}]
    assert direction_matching_loss(scaled, teacher, [(0, 0)]).item() == pytest.approx(3 * per_projection)
    wider = [
        {name: torch.tensor([[[0.0, 3.0, 0.0], [4.0, 0.0, 0.0]]]) * torch.tensor([[[1.0], [0.75]]]) for name in ("query", "key", "value")}
    ]
    assert direction_matching_loss(wider, teacher, [(0, 0)]).item() == pytest.approx(0.0, abs=1e-6)
    # a padded token is ignored
    mask = torch.tensor([[1, 0]])
    padded = [{name: torch.tensor([[[1.0, 0.0], [9.0, 9.0]]]) for name in ("query", "key", "value")}]
    reference = [{name: torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]) for name in ("query", "key", "value")}]
    assert direction_matching_loss(padded, reference, [(0, 0)], mask).item() == pytest.approx(0.0, abs=1e-6)
