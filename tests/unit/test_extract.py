from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bortnas.core.space import ArchSpec
from bortnas.cost import param_count
from bortnas.families.teacher_dirs import teacher_shape
from bortnas.model.extract import extract
from bortnas.model.importance import Importance, compute_importance, gated


def classifier(directory: Path, num_labels: int = 2) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(1)
    return AutoModelForSequenceClassification.from_pretrained(directory, num_labels=num_labels).eval()


def batch(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def random_importance(model: torch.nn.Module, seed: int = 0) -> Importance:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    return Importance(
        layers=torch.rand(c.num_hidden_layers, generator=g),
        heads=torch.rand(c.num_hidden_layers, c.num_attention_heads, generator=g),
        neurons=torch.rand(c.num_hidden_layers, c.intermediate_size, generator=g),
        hidden=torch.rand(c.hidden_size, generator=g),
    )


@pytest.mark.parametrize("teacher_fixture", ["tiny_bert", "tiny_roberta"])
def test_full_configuration_reproduces_the_teacher(teacher_fixture: str, request: pytest.FixtureRequest) -> None:
    teacher = classifier(request.getfixturevalue(teacher_fixture))
    c = teacher.config
    student, mapping = extract(
        teacher, random_importance(teacher), ArchSpec(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
    )
    inputs = batch(c.vocab_size)
    with torch.no_grad():
        diff = (student(**inputs).logits - teacher(**inputs).logits).abs().max().item()
    assert diff < 1e-5
    assert type(student) is type(teacher)
    assert mapping.layers == (0, 1)


@pytest.mark.parametrize("keep_heads", [2, 1])
def test_dropping_heads_equals_masking_them(tiny_bert: Path, keep_heads: int) -> None:
    teacher = classifier(tiny_bert)
    importance = random_importance(teacher, seed=keep_heads)
    c = teacher.config
    student, _ = extract(teacher, importance, ArchSpec(c.num_hidden_layers, c.hidden_size, keep_heads, c.intermediate_size))
    inputs = batch(c.vocab_size)
    with torch.no_grad(), gated(teacher) as gates:
        for layer in range(c.num_hidden_layers):
            dropped = torch.topk(importance.heads[layer], c.num_attention_heads - keep_heads, largest=False).indices
            gates.heads[layer, dropped] = 0.0
        masked = teacher(**inputs).logits
        student_logits = student(**inputs).logits
    assert (student_logits - masked).abs().max().item() < 1e-5
    # and masking really changes the teacher, so the comparison is not vacuous
    with torch.no_grad():
        assert (teacher(**inputs).logits - masked).abs().max().item() > 1e-4


@pytest.mark.parametrize("spec", [ArchSpec(1, 16, 2, 32), ArchSpec(2, 24, 3, 40), ArchSpec(1, 24, 2, 16), ArchSpec(2, 8, 1, 8)])
def test_parameter_count_equals_the_formula(tiny_bert: Path, spec: ArchSpec) -> None:
    teacher = classifier(tiny_bert)
    student, mapping = extract(teacher, random_importance(teacher), spec)
    assert sum(p.numel() for p in student.parameters()) == param_count(spec, teacher_shape(teacher.config, 2)).total
    assert len(mapping.layers) == spec.layers and mapping.hidden.numel() == spec.hidden
    with torch.no_grad():
        assert torch.isfinite(student(**batch(teacher.config.vocab_size)).logits).all()


def test_extraction_keeps_the_most_important_units(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    importance = random_importance(teacher)
    importance.layers = torch.tensor([0.1, 0.9])
    importance.hidden = torch.arange(32.0)
    student, mapping = extract(teacher, importance, ArchSpec(1, 16, 4, 64))
    assert mapping.layers == (1,)
    assert mapping.hidden.tolist() == list(range(16, 32))
    t_layer, s_layer = teacher.bert.encoder.layer[1], student.bert.encoder.layer[0]
    assert torch.equal(s_layer.output.LayerNorm.weight, t_layer.output.LayerNorm.weight[16:])
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight[:, 16:])


def test_first_layer_at_full_width_is_the_teacher_cut_at_depth_one(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    importance = random_importance(teacher)
    importance.layers = torch.tensor([0.1, 0.9])  # importance alone would keep layer 1
    c = teacher.config
    student, mapping = extract(teacher, importance, ArchSpec(1, c.hidden_size, c.num_attention_heads, c.intermediate_size), layers=[0])
    assert mapping.layers == (0,)
    inputs = batch(c.vocab_size)
    with torch.no_grad():
        s_out = student(**inputs, output_hidden_states=True)
        t_hidden = teacher(**inputs, output_hidden_states=True).hidden_states
        with gated(teacher) as gates:
            gates.layers[1] = 0.0  # the teacher without its second layer
            truncated = teacher(**inputs).logits
    assert len(s_out.hidden_states) == 2
    assert (s_out.hidden_states[1] - t_hidden[1]).abs().max().item() < 1e-5
    assert (s_out.logits - truncated).abs().max().item() < 1e-5


def test_given_layers_keep_their_order(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    student, mapping = extract(teacher, random_importance(teacher), ArchSpec(2, 16, 2, 64), layers=[1, 0])
    assert mapping.layers == (1, 0)
    kept = mapping.hidden
    for s_layer, t_index in zip(student.bert.encoder.layer, (1, 0), strict=True):
        # every FFN neuron is kept, so the output projection is the teacher layer's with only its rows sliced
        assert torch.equal(s_layer.output.dense.weight, teacher.bert.encoder.layer[t_index].output.dense.weight[kept])
    assert not torch.equal(teacher.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[1].output.dense.weight)


@pytest.mark.parametrize(
    ("spec", "layers"),
    [(ArchSpec(2, 32, 4, 64), [0, 0]), (ArchSpec(1, 32, 4, 64), [2]), (ArchSpec(1, 32, 4, 64), [-1]), (ArchSpec(1, 32, 4, 64), [0, 1])],
)
def test_bad_layer_lists_are_refused(tiny_bert: Path, spec: ArchSpec, layers: list[int]) -> None:
    teacher = classifier(tiny_bert)
    with pytest.raises(ValueError, match=rf"give {spec.layers} distinct teacher layer indices in 0\.\.1"):
        extract(teacher, random_importance(teacher), spec, layers=layers)


def test_scratch_init_has_the_shape_but_not_the_weights(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    c = teacher.config
    spec = ArchSpec(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
    student, _ = extract(teacher, random_importance(teacher), spec, init="scratch")
    assert not torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)


def test_too_large_a_candidate_is_refused(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    with pytest.raises(ValueError, match="teacher only 2"):
        extract(teacher, random_importance(teacher), ArchSpec(3, 32, 4, 64))


def test_importance_gates_leave_the_model_unchanged_and_score_units(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    inputs = batch(teacher.config.vocab_size)
    with torch.no_grad():
        before = teacher(**inputs).logits
        with gated(teacher):
            gated_logits = teacher(**inputs).logits
        after = teacher(**inputs).logits
    assert torch.allclose(before, gated_logits, atol=1e-6) and torch.equal(before, after)
    labelled = [dict(inputs, labels=torch.tensor([0, 1, 1]))]
    scores = compute_importance(teacher, labelled)
    assert scores.heads.shape == (2, 4) and scores.neurons.shape == (2, 64) and scores.hidden.shape == (32,)
    assert (scores.layers > 0).all() and all(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_zero_layer_gate_skips_the_layer(tiny_bert: Path) -> None:
    teacher = classifier(tiny_bert)
    inputs = batch(teacher.config.vocab_size)
    with torch.no_grad(), gated(teacher) as gates:
        gates.layers[1] = 0.0
        skipped = teacher(**inputs).logits
    layer = teacher.bert.encoder.layer.pop(1)
    teacher.config.num_hidden_layers = 1
    with torch.no_grad():
        assert (teacher(**inputs).logits - skipped).abs().max().item() < 1e-6
    assert layer is not None


@pytest.mark.integration
def test_real_minilm_full_extraction_is_exact() -> None:
    from bortnas.core.default_teacher import default_teacher_dir

    teacher = classifier(default_teacher_dir())
    c = teacher.config
    student, _ = extract(
        teacher, random_importance(teacher), ArchSpec(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
    )
    inputs = batch(c.vocab_size)
    with torch.no_grad():
        assert (student(**inputs).logits - teacher(**inputs).logits).abs().max().item() < 1e-5
