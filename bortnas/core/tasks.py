"""The tasks bortnas compresses a model for, their metrics, and how W's error e comes from a metric.

Pure layer: stdlib only. A task decides what a label is, which transformers class carries the
model, what distillation matches and which metric ranks candidates; everything task-specific
outside the torch objectives (`bortnas.train.objectives`) reads it from here.

W needs an error e in [0, 1] that grows as the model gets worse. Every task has one headline
metric, higher is better, on a 0-1 scale for the useful models (accuracy, F1, recall, a
correlation, the general objective's relation agreement exp(-KL));
e = 1 - max(0, score). A negative correlation is as useless as none, hence the
clamp. So "an accuracy drop of 2 points" and "a correlation drop of 0.02" are the same budget
(`max_accuracy_drop=2`): the headline score, in hundredths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bortnas.core.errors import ParameterError

__all__ = ["TASKS", "Task", "task_named"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One kind of task: its name, its metrics (the headline first), and its transformers side.

    `problem_type` is what transformers' sequence classifiers read to pick their loss;
    `auto_class` is the stock class an exported full-precision student loads with.
    """

    name: str
    metrics: tuple[str, ...]
    auto_class: str
    problem_type: str | None = None
    labelled: bool = True  # False: students learn from the teacher's outputs alone (embeddings)
    # the metric an export's dev check compares with the teacher's (None: the headline); the headline of
    # embeddings scores the student against the teacher itself (1 by definition), so theirs is recall@10
    checked: str | None = None
    # False: nothing to compare with the teacher's score (the general objective's agreement with the teacher is
    # the teacher's own 1 by definition), so an export trains its trial without a dev check or a climb
    checkable: bool = True

    @property
    def metric(self) -> str:
        """The headline metric: the one W's error and every budget on accuracy read."""
        return self.metrics[0]

    @property
    def check_metric(self) -> str:
        """The metric an export checks its trained model by, against the teacher's score on it."""
        return self.checked or self.metric

    @property
    def sequence_head(self) -> bool:
        """The model ends in one output row per example (a sequence classifier or regressor)."""
        return self.auto_class == "AutoModelForSequenceClassification"

    def error(self, score: float) -> float:
        """W's error e of a model whose headline metric is `score` (module docstring)."""
        return 1.0 - min(1.0, max(0.0, score))

    def describe(self) -> str:
        return f"{self.name} ({', '.join(self.metrics)})"


CLASSIFICATION = Task("classification", ("accuracy",), "AutoModelForSequenceClassification", "single_label_classification")
REGRESSION = Task("regression", ("pearson", "spearman"), "AutoModelForSequenceClassification", "regression")
MULTI_LABEL = Task("multi_label", ("micro_f1", "macro_f1"), "AutoModelForSequenceClassification", "multi_label_classification")
TOKEN_CLASSIFICATION = Task("token_classification", ("entity_f1", "entity_precision", "entity_recall"), "AutoModelForTokenClassification")
EMBEDDING = Task("embedding", ("cosine_spearman", "recall_at_10"), "AutoModel", labelled=False, checked="recall_at_10")
# task-agnostic distillation on unlabelled text (`--objective general`): a general encoder, fine-tuned per task later
GENERAL = Task("general", ("relation_agreement", "relation_kl"), "AutoModel", labelled=False, checkable=False)

TASKS: dict[str, Task] = {t.name: t for t in (CLASSIFICATION, REGRESSION, MULTI_LABEL, TOKEN_CLASSIFICATION, EMBEDDING, GENERAL)}

# transformers' problem_type of a sequence classifier -> bortnas's task
_BY_PROBLEM_TYPE = {t.problem_type: t for t in TASKS.values() if t.problem_type}


def task_named(name: str, parameter: str = "task") -> Task:
    """The task called `name`.

    Raises:
        ParameterError: no such task (naming `parameter`).
    """
    if name not in TASKS:
        raise ParameterError(parameter, f"={name!r} is not a task: use one of {', '.join(TASKS)}.")
    return TASKS[name]


def head_of(config: Mapping[str, Any]) -> str | None:
    """The task head a teacher's `config.json` (as a dict) declares: "sequence", "token" or None.

    transformers records the class a model was saved from in `architectures`; a bare encoder
    (`BertModel`) or a pre-training head (`BertForMaskedLM`, `BertForPreTraining`) is no task head.
    """
    names = config.get("architectures") or []
    if any(str(n).endswith("ForSequenceClassification") for n in names):
        return "sequence"
    if any(str(n).endswith("ForTokenClassification") for n in names):
        return "token"
    return None


def teacher_task(config: Mapping[str, Any]) -> Task | None:
    """The task a teacher with a head was fine-tuned for, or None when its head does not say.

    A token head is token classification. A sequence head says its task through `problem_type`
    (regression, single- or multi-label); without one, transformers itself treats one output as
    regression and several as single-label classification, and so does bortnas.
    """
    head = head_of(config)
    if head == "token":
        return TOKEN_CLASSIFICATION
    if head != "sequence":
        return None
    problem = config.get("problem_type")
    if problem in _BY_PROBLEM_TYPE:
        return _BY_PROBLEM_TYPE[problem]
    labels = config.get("id2label") or {}
    return REGRESSION if len(labels) == 1 else CLASSIFICATION
