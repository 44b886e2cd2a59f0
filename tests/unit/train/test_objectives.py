"""`Objective`: each task's supervised, distillation and importance losses and its metrics, against
values computed by hand on tiny tensors."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
import torch

from bortnas.core.tasks import TASKS
from bortnas.data.encode import IGNORE, EncodedSplit, encode
from bortnas.data.tasks import SOFT_ONLY, Example
from bortnas.runtime.device import CPU
from bortnas.train.objectives import Objective

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LN2, LN3 = math.log(2.0), math.log(3.0)

CLASSIFICATION = Objective(TASKS["classification"], ("neg", "pos"))
REGRESSION = Objective(TASKS["regression"], ("score",))
MULTI_LABEL = Objective(TASKS["multi_label"], ("a", "b", "c"))
TAGS = ("O", "B-PER", "I-PER", "B-LOC")
TOKENS = Objective(TASKS["token_classification"], TAGS)
EMBEDDING = Objective(TASKS["embedding"])


def _split(n: int, labels: torch.Tensor, **extra: object) -> EncodedSplit:
    return EncodedSplit(input_ids=[[101, 7, 102]] * n, token_type_ids=None, labels=labels, pad_id=0, **extra)  # type: ignore[arg-type]


# --- classification ---------------------------------------------------------------------------


def test_classification_supervised_loss_is_the_mean_cross_entropy_of_labelled_rows() -> None:
    logits = torch.tensor([[0.0, LN3], [5.0, -5.0], [LN2, 0.0]])
    labels = torch.tensor([1, IGNORE, 0])
    # row 0: p(1) = 3/4 -> ln(4/3); row 2: p(0) = 2/3 -> ln(3/2); mean of the two = ln(2)/2
    assert float(CLASSIFICATION.supervised_loss(logits, labels)) == pytest.approx(LN2 / 2)
    assert float(CLASSIFICATION.supervised_loss(logits, torch.full((3,), IGNORE))) == 0.0


def test_classification_distillation_is_kl_of_teacher_from_student_times_t_squared() -> None:
    student = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[2 * LN3, 0.0], [4.0, 4.0]])
    # at T=2 row 0: teacher (3/4, 1/4), student (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 3/4 ln3 - ln2;
    # row 1: both uniform, 0. batchmean over 2 rows, times T^2 = 4
    expected = 4 * (0.75 * LN3 - LN2) / 2
    mask = torch.ones(2, 1)
    assert float(CLASSIFICATION.distillation_loss(student, teacher, mask, 2.0)) == pytest.approx(expected)
    assert float(CLASSIFICATION.distillation_loss(teacher, teacher, mask, 2.0)) == pytest.approx(0.0, abs=1e-7)


def test_classification_importance_loss_is_the_supervised_loss() -> None:
    logits, labels = torch.tensor([[0.0, LN3], [LN2, 0.0]]), torch.tensor([1, 0])
    assert float(CLASSIFICATION.importance_loss(logits, labels)) == pytest.approx(LN2 / 2)


# --- token classification ---------------------------------------------------------------------


def _token_logits() -> torch.Tensor:
    logits = torch.zeros(2, 3, 2)
    logits[0, 1] = torch.tensor([0.0, LN3])
    logits[1, 1] = torch.tensor([LN2, 0.0])
    return logits


def test_token_supervised_loss_reads_only_labelled_tokens() -> None:
    labels = torch.tensor([[IGNORE, 1, IGNORE], [IGNORE, 0, IGNORE]])
    logits = _token_logits()
    assert float(TOKENS.supervised_loss(logits, labels)) == pytest.approx(LN2 / 2)
    logits[0, 0] = torch.tensor([9.0, -9.0])
    logits[1, 2] = torch.tensor([-9.0, 9.0])
    assert float(TOKENS.supervised_loss(logits, labels)) == pytest.approx(LN2 / 2)


def test_token_distillation_averages_kl_over_real_tokens_only() -> None:
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    student = torch.zeros(2, 3, 2)
    teacher = torch.zeros(2, 3, 2)
    teacher[0, 0] = torch.tensor([2 * LN3, 0.0])
    teacher[1, 2] = torch.tensor([50.0, -50.0])  # a padded position: must not count
    # one real token with KL 3/4 ln3 - ln2 at T=2, four with 0; batchmean over the 5 real tokens, times 4
    expected = 4 * (0.75 * LN3 - LN2) / 5
    assert float(TOKENS.distillation_loss(student, teacher, mask, 2.0)) == pytest.approx(expected)
    student[1, 2] = torch.tensor([-7.0, 7.0])
    assert float(TOKENS.distillation_loss(student, teacher, mask, 2.0)) == pytest.approx(expected)


# --- regression -------------------------------------------------------------------------------


def test_regression_supervised_loss_is_mse_skipping_unknown_scores() -> None:
    output = torch.tensor([[1.0], [2.0], [5.0]])
    labels = torch.tensor([2.0, math.nan, 1.0])
    # ((1-2)^2 + (5-1)^2) / 2
    assert float(REGRESSION.supervised_loss(output, labels)) == pytest.approx(8.5)
    none = REGRESSION.supervised_loss(output.requires_grad_(), torch.full((3,), math.nan))
    assert float(none.detach()) == 0.0
    none.backward()  # a batch without scores still backpropagates (to zero)
    assert output.grad is not None and float(output.grad.abs().sum()) == 0.0


def test_regression_distillation_is_mse_of_the_scores() -> None:
    student, teacher = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]])
    assert float(REGRESSION.distillation_loss(student, teacher, torch.ones(2, 1), 2.0)) == pytest.approx(2.5)


def _tokenizer() -> PreTrainedTokenizerBase:
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good"])})


def test_an_unlabelled_regression_example_adds_nothing_to_the_supervised_loss() -> None:
    tokenizer = _tokenizer()
    split = encode([Example("good", 0.5), Example("good", SOFT_ONLY)], tokenizer, 16, "regression", 1)
    # only the labelled example counts: (0 - 0.5)^2
    assert float(REGRESSION.supervised_loss(torch.zeros(2, 1), split.labels)) == pytest.approx(0.25)


# --- multi-label ------------------------------------------------------------------------------


def test_multi_label_supervised_loss_is_bce_with_logits_per_cell() -> None:
    logits = torch.tensor([[0.0, LN3], [LN3, -LN3]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # cells: p=1/2 -> ln2; p=3/4 with label 0 -> ln4; p=3/4 with label 0 -> ln4; p=1/4 with label 1 -> ln4
    assert float(MULTI_LABEL.supervised_loss(logits, labels)) == pytest.approx((LN2 + 3 * 2 * LN2) / 4)


def test_multi_label_supervised_loss_skips_rows_without_labels() -> None:
    logits = torch.tensor([[0.0, LN3], [9.0, -9.0]])
    labels = torch.tensor([[1.0, 0.0], [math.nan, math.nan]])
    # only row 0: (ln2 + ln4) / 2
    assert float(MULTI_LABEL.supervised_loss(logits, labels)) == pytest.approx(1.5 * LN2)
    assert float(MULTI_LABEL.supervised_loss(logits, torch.full((2, 2), math.nan))) == 0.0


def test_multi_label_distillation_is_bce_against_the_teachers_probabilities() -> None:
    student, teacher = torch.tensor([[0.0, LN3]]), torch.tensor([[LN3, 0.0]])
    # targets (3/4, 1/2): cell 0 at p=1/2 -> ln2; cell 1 at p=3/4 -> -(1/2 ln(3/4) + 1/2 ln(1/4)) = 1/2 ln(16/3)
    expected = (LN2 + 0.5 * math.log(16 / 3)) / 2
    assert float(MULTI_LABEL.distillation_loss(student, teacher, torch.ones(1, 1), 2.0)) == pytest.approx(expected)


def test_an_unlabelled_multi_label_example_adds_nothing_to_the_supervised_loss() -> None:
    tokenizer = _tokenizer()
    split = encode([Example("good", (0,)), Example("good", SOFT_ONLY)], tokenizer, 16, "multi_label", 2)
    logits = torch.full((2, 2), LN3)
    # only the labelled row counts: label 1 at p=3/4 -> ln(4/3), label 0 at p=3/4 -> ln4
    expected = (math.log(4 / 3) + 2 * LN2) / 2
    assert float(MULTI_LABEL.supervised_loss(logits, split.labels)) == pytest.approx(expected)


# --- embeddings -------------------------------------------------------------------------------


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed)))
    return q


def test_embedding_distillation_ignores_scale_rotation_and_width() -> None:
    teacher = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(5, 1)
    same = [teacher * 3.5, teacher @ _orthogonal(6, 1), torch.cat([teacher, torch.zeros(5, 2)], dim=1) @ _orthogonal(8, 2)]
    for student in same:
        assert float(EMBEDDING.distillation_loss(student, teacher, mask, 2.0)) == pytest.approx(0.0, abs=1e-10)
    other = torch.randn(5, 6, generator=torch.Generator().manual_seed(3))
    assert float(EMBEDDING.distillation_loss(other, teacher, mask, 2.0)) > 1e-3


def test_embedding_distillation_is_the_mse_of_cosine_similarity_matrices() -> None:
    teacher = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # cosines: identity
    student = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # cosines: all ones
    # the off-diagonal cells differ by 1: 2 of 4 cells
    assert float(EMBEDDING.distillation_loss(student, teacher, torch.ones(2, 1), 2.0)) == pytest.approx(0.5)


def test_embedding_supervised_loss_is_zero() -> None:
    assert float(EMBEDDING.supervised_loss(torch.randn(3, 4), torch.zeros(3, dtype=torch.long))) == 0.0


def test_embedding_importance_loss_is_cross_entropy_of_similarities_at_temperature_005() -> None:
    embeddings = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    cosines = [[1.0, 0.0, c], [0.0, 1.0, c], [c, c, 1.0]]
    expected = sum(math.log(sum(math.exp(x / 0.05) for x in row)) - row[i] / 0.05 for i, row in enumerate(cosines)) / 3
    assert float(EMBEDDING.importance_loss(embeddings, torch.zeros(3))) == pytest.approx(expected, rel=1e-5)
    # two embeddings in the same direction cannot pick themselves out: each row is CE of (20, 20) -> ln2
    same = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert float(EMBEDDING.importance_loss(same, torch.zeros(2))) == pytest.approx(LN2)


# --- metrics ----------------------------------------------------------------------------------


def test_accuracy_skips_examples_without_a_label() -> None:
    outputs = [torch.tensor(row) for row in ([2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [5.0, 0.0])]
    split = _split(4, torch.tensor([0, 0, SOFT_ONLY, 0]))
    # predictions 0, 1, -, 0 against 0, 0, -, 0
    assert CLASSIFICATION.metrics(outputs, split) == {"accuracy": pytest.approx(2 / 3)}
    assert CLASSIFICATION.metrics(outputs, _split(4, torch.full((4,), SOFT_ONLY))) == {"accuracy": 0.0}


def test_regression_metrics_are_pearson_and_spearman() -> None:
    outputs = [torch.tensor([v]) for v in (1.0, 2.0, 3.0)]
    scores = REGRESSION.metrics(outputs, _split(3, torch.tensor([1.0, 1.0, 4.0])))
    # centred predictions (-1, 0, 1), gold (-1, -1, 2): r = 3 / sqrt(2 * 6);
    # ranks (1, 2, 3) and (1.5, 1.5, 3): centred (-1, 0, 1), (-.5, -.5, 1): rho = 1.5 / sqrt(2 * 1.5)
    assert scores == {"pearson": pytest.approx(3 / math.sqrt(12)), "spearman": pytest.approx(1.5 / math.sqrt(3))}


def test_multi_label_metrics_threshold_logits_at_zero() -> None:
    outputs = [torch.tensor(row) for row in ([2.0, -1.0, 0.0], [-3.0, 0.5, 1.0], [0.1, -0.2, -5.0])]
    gold = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    # predicted (1,0,0), (0,1,1), (1,0,0): label a F1 1, b 2/3 (1 of 2 found), c 0 (a 0 logit is no prediction);
    # micro: 3 true positives of 4 predicted and 5 gold -> P 3/4, R 3/5, F1 2/3
    assert MULTI_LABEL.metrics(outputs, _split(3, gold)) == {"micro_f1": pytest.approx(2 / 3), "macro_f1": pytest.approx(5 / 9)}


def test_entity_metrics_read_a_words_first_subword_only() -> None:
    o, b_per, i_per, b_loc = (torch.nn.functional.one_hot(torch.tensor(k), 4).float() * 5 for k in range(4))
    # sentence 0: [CLS] Ann ##e Lee ran [SEP] (+ a padded position); gold B-PER I-PER O
    first = torch.stack([b_loc, b_per, b_loc, i_per, o, b_loc, b_loc])
    # sentence 1: [CLS] Paris rains [SEP]; gold B-LOC O, predicted O B-LOC
    second = torch.stack([b_loc, o, b_loc, b_loc])
    token_labels = [[IGNORE, 1, IGNORE, 2, 0, IGNORE], [IGNORE, 3, 0, IGNORE]]
    split = _split(2, torch.zeros(2, dtype=torch.long), token_labels=token_labels)
    # gold entities PER(0, 2) and LOC(0, 1); predicted PER(0, 2) and LOC(1, 2): 1 of 2 each way
    assert TOKENS.metrics([first, second], split) == {
        "entity_f1": pytest.approx(0.5),
        "entity_precision": pytest.approx(0.5),
        "entity_recall": pytest.approx(0.5),
    }


def test_cosine_spearman_is_one_for_the_teachers_embeddings_up_to_scale_and_rotation() -> None:
    reference = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    split = _split(6, torch.zeros(6, dtype=torch.long), pairs=[(0, 4), (1, 5)], reference=reference)
    for student in (reference, reference * 2.5, reference @ _orthogonal(5, 1)):
        assert EMBEDDING.metrics(list(student), split)["cosine_spearman"] == pytest.approx(1.0)
    other = torch.randn(6, 5, generator=torch.Generator().manual_seed(4))
    assert EMBEDDING.metrics(list(other), split)["cosine_spearman"] < 0.99


def test_cosine_spearman_without_pairs_has_no_recall() -> None:
    reference = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert EMBEDDING.metrics(list(reference), _split(4, torch.zeros(4, dtype=torch.long), reference=reference)) == {
        "cosine_spearman": pytest.approx(1.0)
    }


def _retrieval(rank_of_first: int) -> torch.Tensor:
    """12 queries (sentences 0-11) and their 12 documents (12-23) in 13 dimensions: every query's own
    document ranks first except query 0's, which ranks `rank_of_first` (10 or 11) among the 12."""
    e = torch.eye(13)
    queries = [e[i] for i in range(12)]
    documents = [e[0] + 2 * e[12]]  # cosine to query 0: 1/sqrt(5)
    documents += [e[j] + e[0] for j in range(1, 11)]  # cosine to query 0: 1/sqrt(2), above its own document
    documents += [e[11]]  # cosine to query 0: 0
    if rank_of_first == 10:
        documents[10] = e[10] - e[0]  # now below query 0's own document
    return torch.stack(queries + documents)


@pytest.mark.parametrize(("rank_of_first", "recall"), [(11, 11 / 12), (10, 1.0)])
def test_recall_at_10_counts_queries_whose_document_is_in_their_top_ten(rank_of_first: int, recall: float) -> None:
    embeddings = _retrieval(rank_of_first)
    split = _split(24, torch.zeros(24, dtype=torch.long), pairs=[(i, 12 + i) for i in range(12)], reference=embeddings)
    scores = EMBEDDING.metrics(list(embeddings), split)
    assert scores["recall_at_10"] == pytest.approx(recall)
    assert scores["cosine_spearman"] == pytest.approx(1.0)


def test_task_outputs_keep_no_autograd_graph() -> None:
    # a graph kept per batch held every activation of the teacher: a 29k-example embedding corpus ran out of 24 GiB
    from transformers import BertConfig, BertModel

    from bortnas.data.sentence_dirs import Pooling
    from bortnas.train.loop import task_outputs

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=128, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    embedding = Objective(TASKS["embedding"], pooling=Pooling("mean", True))
    outputs = task_outputs(model, _split(3, torch.zeros(3)), embedding, 2, CPU)
    assert len(outputs) == 3 and outputs[0].shape == (16,)
    assert not any(o.requires_grad or o.grad_fn is not None for o in outputs)
