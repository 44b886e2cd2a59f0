"""One conformance suite over every supported family, on tiny random teachers built offline from
their transformers configs: extraction, head dropping, parameter counts, FLOPs, importance and
quantization all go through the family adapter and must agree with the real modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FAMILIES as FAMILY_NAMES
from conftest import tiny_config
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from bortnas.core.errors import UnsupportedArchitectureError
from bortnas.core.space import ArchSpec, TeacherShape
from bortnas.cost import flops, param_count
from bortnas.families import FAMILIES, family_of
from bortnas.model.extract import extract
from bortnas.model.importance import Importance, compute_importance, gated
from bortnas.quant import functional as Q
from bortnas.quant import pack
from bortnas.quant.distill import ProjectionRecorder
from bortnas.quant.modules import QuantLinear, quantize_

# every family, plus the layouts a family switches by config
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    **{name: (name, {}) for name in FAMILY_NAMES},
    "electra-unprojected": ("electra", {"embedding_size": 32}),
    "deberta-v2-separate": (
        "deberta-v2",
        {"share_att_key": False, "embedding_size": 16, "position_biased_input": True, "type_vocab_size": 2},
    ),
    "modernbert-biased": ("modernbert", {"attention_bias": True, "mlp_bias": True, "norm_bias": True, "classifier_bias": True}),
}
NUM_LABELS = 3


def teacher(variant: str, seed: int = 0) -> PreTrainedModel:
    family, overrides = VARIANTS[variant]
    torch.manual_seed(seed)
    config = tiny_config(family, **overrides)
    config.num_labels = NUM_LABELS
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="eager").eval()


def shape_of(model: PreTrainedModel) -> TeacherShape:
    return family_of(model.config).shape(model.config, NUM_LABELS)


def inputs(model: PreTrainedModel, length: int = 12, batch: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 30, (batch, length), generator=generator)
    ids[:, 0] = 2  # [CLS]
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[1, -3:] = 0
    out = {"input_ids": ids, "attention_mask": mask}
    if family_of(model.config).token_types and shape_of(model).type_vocab_size > 1:
        out["token_type_ids"] = (torch.arange(length) >= length // 2).long().expand(batch, -1)
    return out


def random_importance(shape: TeacherShape, seed: int = 0) -> Importance:
    g = torch.Generator().manual_seed(seed)
    return Importance(
        layers=torch.rand(shape.layers, generator=g),
        heads=torch.rand(shape.layers, shape.heads, generator=g),
        neurons=torch.rand(shape.layers, shape.ffn, generator=g),
        hidden=torch.rand(shape.hidden, generator=g),
    )


def logits(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("variant", VARIANTS)
def test_extracting_the_full_configuration_reproduces_the_teacher(variant: str) -> None:
    model = teacher(variant)
    shape = shape_of(model)
    student, mapping = extract(model, random_importance(shape), shape.as_spec())
    assert type(student) is type(model) and mapping.layers == tuple(range(shape.layers))
    batch = inputs(model)
    assert (logits(student, batch) - logits(model, batch)).abs().max() < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_dropping_heads_equals_masking_them(variant: str) -> None:
    """Half the heads (so each kept head is padded to twice its size, which must change nothing)."""
    model = teacher(variant)
    shape, family = shape_of(model), family_of(model.config)
    importance = random_importance(shape, seed=3)
    spec = ArchSpec(shape.layers, shape.hidden, shape.heads // 2, shape.ffn)
    student, _ = extract(model, importance, spec)
    if family.shared_heads:
        kept = [torch.topk(importance.heads.sum(0), spec.heads).indices] * shape.layers
    else:
        kept = [torch.topk(scores, spec.heads).indices for scores in importance.heads]
    batch = inputs(model)
    with gated(model) as gates:
        gates.heads.zero_()
        for layer, heads in enumerate(kept):
            gates.heads[layer, heads] = 1.0
        masked = logits(model, batch)
    assert (logits(student, batch) - masked).abs().max() < 1e-5
    assert (logits(model, batch) - masked).abs().max() > 1e-4  # the masking did something


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count_of_a_cut_equals_the_formula(variant: str) -> None:
    model = teacher(variant)
    shape, family = shape_of(model), family_of(model.config)
    assert param_count(shape.as_spec(), shape).total == sum(p.numel() for p in model.parameters())
    spec = ArchSpec(1, 16, 2, 24)
    student, _ = extract(model, random_importance(shape), spec)
    counted = param_count(spec, shape)
    assert counted.total == sum(p.numel() for p in student.parameters())
    assert counted.embedding == sum(m.weight.numel() for m in student.modules() if isinstance(m, torch.nn.Embedding))
    assert counted.encoder == sum(p.numel() for view in family.layers(student) for p in view.layer.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("spec", [None, ArchSpec(1, 16, 2, 24)], ids=["teacher", "cut"])
def test_matmul_flops_equal_torch_flop_counter(variant: str, spec: ArchSpec | None) -> None:
    model = teacher(variant)
    shape = shape_of(model)
    if spec is not None:
        model, _ = extract(model, random_importance(shape), spec)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(**inputs(model, length=12, batch=1))
    assert counter.get_total_flops() == flops(spec or shape.as_spec(), shape, 12).matmul


@pytest.mark.parametrize("variant", VARIANTS)
def test_importance_scores_every_unit(variant: str) -> None:
    model = teacher(variant)
    shape = shape_of(model)
    batch = {**inputs(model), "labels": torch.tensor([0, 2])}
    scores = compute_importance(model, [batch])
    assert scores.layers.shape == (shape.layers,) and scores.heads.shape == (shape.layers, shape.heads)
    assert scores.neurons.shape == (shape.layers, shape.ffn) and scores.hidden.shape == (shape.hidden,)
    for tensor in (scores.layers, scores.heads, scores.neurons, scores.hidden):
        assert torch.isfinite(tensor).all() and (tensor > 0).float().mean() > 0.5
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_bitnet158_swaps_every_projection(variant: str) -> None:
    model = teacher(variant)
    shape, family = shape_of(model), family_of(model.config)
    student, _ = extract(model, random_importance(shape), ArchSpec(2, 16, 2, 24))
    batch = inputs(student)
    before = logits(student, batch)
    quantize_(student, "bitnet158")
    views = family.layers(student)
    assert all(isinstance(slot.get(), QuantLinear) for view in views for slot, _ in view.linears())
    after = logits(student, batch)
    assert torch.isfinite(after).all() and not torch.equal(after, before)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["bit_w1a2", "bibert"])
def test_binary_modes_quantize_the_attention_of_every_family(variant: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every layer's attention runs quantized: BiT's step sizes get gradients, Bi-Attention's bool() runs once per layer."""
    model = teacher(variant)
    shape = shape_of(model)
    quantize_(model, mode)
    calls = []
    bool_attention = Q.BoolAttention.apply
    monkeypatch.setattr(Q.BoolAttention, "apply", lambda scores: calls.append(1) or bool_attention(scores))
    model.train()
    out = model(**inputs(model), labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    attentions = [view.attention for view in family_of(model.config).layers(model)]
    if mode == "bibert":
        assert len(calls) == shape.layers
    else:
        for attention in attentions:
            for name in ("query", "key", "value", "probs"):
                assert getattr(attention, f"{name}_act").alpha.grad.abs() > 0, name


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["fp32", "bibert"])
def test_a_cut_saved_reloads_with_the_same_logits(variant: str, mode: str, tmp_path: Path) -> None:
    """What an export writes for each family: a full-precision cut is read back by stock transformers
    (no bortnas code), a binary one by `bortnas.load`, and both compute what the saved model did.
    The CLI round trip of each family (tests/integration/test_families_cli.py) is in the slow set."""
    model = teacher(variant)
    student, _ = extract(model, random_importance(shape_of(model)), ArchSpec(1, 16, 2, 24))
    if mode != "fp32":
        quantize_(student, mode)
    batch = inputs(student)
    pack.save(student, tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path) if mode == "fp32" else pack.load(tmp_path)
    assert type(reloaded) is type(student) and reloaded.config.num_hidden_layers == 1
    assert (logits(reloaded.eval(), batch) - logits(student, batch)).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["bit_w1a2", "bibert"])
def test_the_two_attention_routes_agree(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """BERT's attention quantized by the registered function equals it quantized by projection hooks
    and the softmax swap (the route MPNet and DeBERTa take), so both compute the same arithmetic."""
    by_function = quantize_(teacher("bert"), mode)
    monkeypatch.setattr(type(family_of(by_function.config)), "attention_interface", False)
    by_hooks = quantize_(teacher("bert"), mode)
    assert by_hooks.config._attn_implementation == "eager"
    batch = inputs(by_function)
    assert (logits(by_function, batch) - logits(by_hooks, batch)).abs().max() < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_direction_matching_records_query_key_value(variant: str) -> None:
    model = teacher(variant)
    shape = shape_of(model)
    with ProjectionRecorder(model) as recorder:
        logits(model, inputs(model))
    assert len(recorder.outputs) == shape.layers
    assert all(set(layer) == {"query", "key", "value"} for layer in recorder.outputs)
    assert all(t.shape == (2, 12, shape.hidden) for layer in recorder.outputs for t in layer.values())


def test_every_family_has_a_variant_here() -> None:
    assert set(FAMILY_NAMES) == set(FAMILIES)


@pytest.mark.parametrize(
    ("config", "name"),
    [
        ({"model_type": "albert", "architectures": ["AlbertModel"]}, "AlbertModel"),
        ({"model_type": "funnel"}, "funnel"),
        ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "T5ForConditionalGeneration"),
        ({"model_type": "gpt2"}, "gpt2"),
    ],
)
def test_unsupported_families_are_refused_naming_the_supported_ones(config: dict[str, object], name: str) -> None:
    with pytest.raises(UnsupportedArchitectureError) as raised:
        family_of(config, "teacher/")
    message = str(raised.value)
    assert name in message and all(family in message for family in FAMILIES) and "\n" not in message


def test_deberta_with_a_convolution_is_refused() -> None:
    config = tiny_config("deberta-v2", conv_kernel_size=3)
    with pytest.raises(UnsupportedArchitectureError, match="conv_kernel_size=3"):
        family_of(config)


MLM_VARIANTS = [*VARIANTS, "deberta-v2-unified-head"]


def mlm_teacher(variant: str) -> PreTrainedModel:
    from transformers import AutoModelForMaskedLM

    family, overrides = VARIANTS.get(variant, ("deberta-v2", {"legacy": False}))
    torch.manual_seed(0)
    return AutoModelForMaskedLM.from_config(tiny_config(family, **overrides), attn_implementation="eager").eval()


@pytest.mark.parametrize("variant", MLM_VARIANTS)
def test_the_masked_lm_head_is_cut_with_the_encoder(variant: str) -> None:
    """Bort's general distillation reads the MLM head on the masked positions alone: the view's
    `logits` must be the model's own head, and a full-size cut must reproduce the teacher's."""
    model = mlm_teacher(variant)
    family, shape = family_of(model.config), shape_of(model)
    batch = inputs(model)
    view = family.masked_lm(model)
    assert view is not None and family.masked_lm(teacher(variant if variant in VARIANTS else "deberta-v2")) is None
    with torch.no_grad():
        states = family.base(model)(**batch).last_hidden_state
        assert (view.logits(states) - logits(model, batch)).abs().max() < 1e-5
    full, _ = extract(model, random_importance(shape), shape.as_spec())
    assert (logits(full, batch) - logits(model, batch)).abs().max() < 1e-5

    cut, mapping = extract(model, random_importance(shape, seed=1), ArchSpec(1, shape.hidden // 2, shape.heads // 2, shape.ffn // 2))
    cut_view = family.masked_lm(cut)
    assert cut_view is not None
    with torch.no_grad():
        cut_states = family.base(cut)(**batch).last_hidden_state
        assert torch.equal(cut_view.logits(cut_states), logits(cut, batch))
    # the head reads the kept residual dimensions; it writes into the word table's space, cut only where the table is
    projected = cut_view.dense.out_features == view.dense.out_features
    rows = torch.arange(view.dense.out_features) if projected else mapping.hidden
    assert torch.equal(cut_view.dense.weight, view.dense.weight[rows][:, mapping.hidden])
