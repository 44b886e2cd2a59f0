"""The task registry: which task a teacher's config.json declares, task lookup, and W's error e."""

from __future__ import annotations

from typing import Any

import pytest

from bortnas.core.errors import ParameterError
from bortnas.core.tasks import TASKS, head_of, task_named, teacher_task


def _config(architecture: str | None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"model_type": "bert", **extra}
    if architecture is not None:
        config["architectures"] = [architecture]
    return config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (_config("BertForTokenClassification", id2label={"0": "O", "1": "B-PER"}), "token_classification"),
        # a token head stays token classification whatever problem_type says
        (_config("RobertaForTokenClassification", problem_type="regression"), "token_classification"),
        (_config("BertForSequenceClassification", problem_type="regression", id2label={"0": "a", "1": "b"}), "regression"),
        (_config("BertForSequenceClassification", problem_type="multi_label_classification"), "multi_label"),
        (_config("BertForSequenceClassification", problem_type="single_label_classification", id2label={"0": "x"}), "classification"),
        (_config("BertForSequenceClassification", id2label={"0": "score"}), "regression"),
        (_config("BertForSequenceClassification", id2label={"0": "neg", "1": "pos"}), "classification"),
        (_config("XLMRobertaForSequenceClassification", id2label={"0": "a", "1": "b", "2": "c"}), "classification"),
        (_config("DebertaV2ForSequenceClassification", problem_type=None, id2label={"0": "LABEL_0"}), "regression"),
    ],
)
def test_teacher_task_reads_head_then_problem_type_then_label_count(config: dict[str, Any], expected: str) -> None:
    task = teacher_task(config)
    assert task is not None
    assert task.name == expected
    assert task is TASKS[expected]


@pytest.mark.parametrize(
    "config",
    [
        _config("BertModel", id2label={"0": "score"}),
        _config("BertForMaskedLM"),
        _config("BertForPreTraining", problem_type="regression"),
        _config(None, id2label={"0": "a", "1": "b"}),
        {"architectures": []},
        {"architectures": None},
    ],
)
def test_teacher_task_of_a_bare_or_pretraining_model_is_none(config: dict[str, Any]) -> None:
    assert teacher_task(config) is None


@pytest.mark.parametrize(
    ("architectures", "expected"),
    [
        (["BertForSequenceClassification"], "sequence"),
        (["ElectraForTokenClassification"], "token"),
        (["BertModel"], None),
        (["BertForMaskedLM"], None),
        ([], None),
    ],
)
def test_head_of(architectures: list[str], expected: str | None) -> None:
    assert head_of({"architectures": architectures}) == expected


def test_head_of_a_config_without_architectures_is_none() -> None:
    assert head_of({"model_type": "bert"}) is None


def test_task_named_returns_the_registered_task() -> None:
    assert task_named("regression") is TASKS["regression"]
    assert task_named("embedding").name == "embedding"


def test_task_named_rejects_an_unknown_name_naming_the_parameter_and_listing_the_tasks() -> None:
    with pytest.raises(ParameterError) as info:
        task_named("sentiment")
    message = str(info.value)
    assert message.startswith("task='sentiment' is not a task")
    assert info.value.parameter == "task"
    for name in ("classification", "regression", "multi_label", "token_classification", "embedding"):
        assert name in message


def test_task_named_names_the_callers_parameter() -> None:
    with pytest.raises(ParameterError, match=r"^teacher_task='nope' is not a task") as info:
        task_named("nope", parameter="teacher_task")
    assert info.value.parameter == "teacher_task"


@pytest.mark.parametrize(("score", "error"), [(0.83, 0.17), (-0.2, 1.0), (1.3, 0.0), (0.0, 1.0), (1.0, 0.0), (0.5, 0.5)])
def test_error_is_one_minus_the_clamped_score(score: float, error: float) -> None:
    for task in TASKS.values():
        assert task.error(score) == pytest.approx(error, abs=1e-12)


@pytest.mark.parametrize(
    ("name", "metric", "auto_class", "problem_type", "labelled"),
    [
        ("classification", "accuracy", "AutoModelForSequenceClassification", "single_label_classification", True),
        ("regression", "pearson", "AutoModelForSequenceClassification", "regression", True),
        ("multi_label", "micro_f1", "AutoModelForSequenceClassification", "multi_label_classification", True),
        ("token_classification", "entity_f1", "AutoModelForTokenClassification", None, True),
        ("embedding", "cosine_spearman", "AutoModel", None, False),
    ],
)
def test_each_tasks_headline_metric_and_transformers_side(
    name: str, metric: str, auto_class: str, problem_type: str | None, labelled: bool
) -> None:
    task = TASKS[name]
    assert task.metric == metric
    assert task.metrics[0] == metric
    assert task.auto_class == auto_class
    assert task.problem_type == problem_type
    assert task.labelled is labelled
    assert task.sequence_head is (auto_class == "AutoModelForSequenceClassification")


def test_every_tasks_metrics_are_listed_headline_first() -> None:
    assert {name: task.metrics for name, task in TASKS.items()} == {
        "classification": ("accuracy",),
        "regression": ("pearson", "spearman"),
        "multi_label": ("micro_f1", "macro_f1"),
        "token_classification": ("entity_f1", "entity_precision", "entity_recall"),
        "embedding": ("cosine_spearman", "recall_at_10"),
        "general": ("relation_agreement", "relation_kl"),
    }
    assert TASKS["regression"].describe() == "regression (pearson, spearman)"


def test_an_export_checks_embeddings_by_recall_and_every_other_task_by_its_headline() -> None:
    # an embedding's headline (cosine Spearman) compares the student with the teacher itself, which scores 1 on it
    assert {name: task.check_metric for name, task in TASKS.items()} == {
        "classification": "accuracy",
        "regression": "pearson",
        "multi_label": "micro_f1",
        "token_classification": "entity_f1",
        "embedding": "recall_at_10",
        "general": "relation_agreement",
    }
    # the general objective's agreement is the teacher's own 1 by definition: its export checks nothing
    assert {name for name, task in TASKS.items() if not task.checkable} == {"general"}
