"""What a model is trained and scored on, per task: its output, its losses, its metrics.

Torch layer. The training loop, evaluation, the teacher cache and export ask an `Objective` and
never branch on the task themselves (`bortnas.core.tasks` names the tasks and their metrics):

- output: the logits of a task head, an embedding model's pooled sentence embedding (pooled
  as its sentence-transformers configuration says, so the student is judged on the embedding a
  user's library would produce), or for the general objective the encoder's last hidden states;
- supervised loss (fine-tuning, and the label term of distillation): cross-entropy for classes and
  tags (only on a word's first sub-word), mean squared error for scores, binary cross-entropy for
  label sets; embeddings have none; an example without labels of its own (an unlabelled pool's:
  ignore index, or NaN) adds nothing to it;
- distillation of the teacher's output: KL divergence of the softened class or tag distributions
  (tags at every real token), MSE of the scores, BCE against the teacher's label probabilities, and
  for embeddings the MSE between the batch's cosine-similarity matrices (the student's width may
  differ from the teacher's; what a user reads from an embedding is its similarities); for the
  general objective the KL divergence between the teacher's and the student's self-relations of
  the last hidden states (`relation_kl`, MiniLM-v2 style, so widths and head counts may differ),
  plus, for a sentence-embedding teacher, the embeddings' similarity term, and for a teacher with
  a masked-language-model head Bort's masked-token loss (`masked_token_loss`): the model then runs
  through `forward_of`, which computes the head on the masked positions alone;
- metrics, computed by the pure `bortnas.core.task_metrics` on the outputs gathered on the host.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from bortnas.core import task_metrics
from bortnas.core.tasks import TASKS, Task
from bortnas.data.encode import IGNORE, EncodedSplit
from bortnas.data.tasks import SOFT_ONLY

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bortnas.data.sentence_dirs import Pooling

__all__ = ["MaskedTokens", "MaskedTokensOutput", "Objective", "relation_heads", "relation_kl"]

MAX_RELATION_HEADS = 12  # MiniLM-v2 splits the hidden states into this many relation heads at most
# Bort's pre-training distillation (alexa/bort run_pretraining_distillation.sh): 0.5 x T^2 KL of the masked
# tokens' distributions at T = 2, plus 0.1 x the masked-LM cross-entropy against the original tokens
BORT_KD_WEIGHT, BORT_MLM_WEIGHT, BORT_TEMPERATURE = 0.5, 0.1, 2.0


@dataclasses.dataclass
class MaskedTokensOutput:
    """A masked-LM model's forward pass as the general objective reads it: the encoder's states, and
    the head's logits at the positions holding the mask token, in row-major order (masked, vocab)."""

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None
    masked_logits: torch.Tensor


class MaskedTokens(torch.nn.Module):
    """A `...ForMaskedLM` model whose forward runs its head only where the input holds `mask_id`.

    Why: the vocabulary projection on every token would cost a small student several times its
    encoder (30k words x 384 units against a few hundred thousand weights a layer), and Bort's loss
    reads the masked positions only."""

    def __init__(self, model: PreTrainedModel, mask_id: int) -> None:
        super().__init__()
        from bortnas.families import family_of

        family = family_of(model.config)
        view = family.masked_lm(model)
        assert view is not None, "MaskedTokens wraps a ...ForMaskedLM model"
        self.model, self.base, self.head, self.mask_id = model, family.base(model), view.logits, mask_id

    def forward(self, input_ids: torch.Tensor, output_hidden_states: bool = False, **inputs: torch.Tensor) -> MaskedTokensOutput:
        out = self.base(input_ids=input_ids, output_hidden_states=output_hidden_states, **inputs)
        states = out.last_hidden_state
        return MaskedTokensOutput(states, out.hidden_states, self.head(states[input_ids == self.mask_id]))


def relation_heads(student_width: int, teacher_width: int) -> int:
    """The relation heads both hidden states split into: the most, up to MAX_RELATION_HEADS, that divide both widths."""
    return max(r for r in range(1, MAX_RELATION_HEADS + 1) if student_width % r == 0 and teacher_width % r == 0)


def _similarity_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the batch's cosine-similarity matrices of two sets of embeddings (widths may differ)."""
    s_unit, t_unit = F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1)
    return F.mse_loss(s_unit @ s_unit.T, t_unit @ t_unit.T)


def _relations(states: torch.Tensor, heads: int, keys: torch.Tensor) -> torch.Tensor:
    """log softmax over the keys of the scaled dot products of each token's slice with every
    token's, per relation head: (batch, heads, query, key); padded keys get no weight."""
    batch, width, hidden = states.shape
    split = states.float().view(batch, width, heads, hidden // heads).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) / (hidden // heads) ** 0.5
    return scores.masked_fill(~keys[:, None, None, :], -1e9).log_softmax(-1)


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """KL(teacher || student) between the self-relations of two sets of hidden states (batch, width,
    hidden), averaged over relation heads and real query tokens: per example, or over the batch.

    A relation is how much each token's state resembles every other's (MiniLM-v2's self-attention
    relations, applied to the last hidden states). It does not depend on the width, so a student
    cut narrower than its teacher, or with other heads, is compared with it directly.
    """
    real = attention_mask.bool()
    heads = relation_heads(student.shape[-1], teacher.shape[-1])
    s_rel, t_rel = _relations(student, heads, real), _relations(teacher, heads, real)
    per_query = (t_rel.exp() * (t_rel - s_rel)).masked_fill(~real[:, None, None, :], 0.0).sum(-1).mean(1)  # (batch, query)
    per_query = per_query * real
    if reduce:
        return per_query.sum() / real.sum().clamp(min=1)
    return per_query.sum(-1) / real.sum(-1).clamp(min=1)


@dataclasses.dataclass(frozen=True)
class Objective:
    """The task of a model being trained or scored (see the module docstring).

    `label_names`: the head's outputs (tags for token classification, whose entity metric reads
    them). `pooling`: an embedding model's sentence-transformers pooling.
    """

    task: Task = TASKS["classification"]
    label_names: tuple[str, ...] = ()
    pooling: Pooling | None = None
    mask_token_id: int | None = None  # a general teacher with a masked-LM head: Bort's masked-token distillation

    def forward_of(self, model: PreTrainedModel) -> Any:
        """What to call for `model`'s forward pass: the model, or for a masked-LM model under Bort's
        loss the `MaskedTokens` view of it."""
        if self.mask_token_id is None or not type(model).__name__.endswith("ForMaskedLM"):
            return model
        return MaskedTokens(model, self.mask_token_id)

    def masked_token_loss(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Bort's loss on the masked positions (rows of `student` and `teacher`, in the order of the
        positions where `labels` is not IGNORE): BORT_KD_WEIGHT x T^2 KL(teacher || student) of the
        distributions softened at T = BORT_TEMPERATURE, plus BORT_MLM_WEIGHT x the cross-entropy
        against the original tokens; both averaged over the masked tokens."""
        target = labels[labels != IGNORE]
        if not len(target):
            return student.sum() * 0.0
        t = BORT_TEMPERATURE
        s_out, t_out = student.float(), teacher.float()
        kd = t * t * F.kl_div(F.log_softmax(s_out / t, -1), F.log_softmax(t_out / t, -1), reduction="batchmean", log_target=True)
        return BORT_KD_WEIGHT * kd + BORT_MLM_WEIGHT * F.cross_entropy(s_out, target)

    def output(self, out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model's task output from its forward pass: logits, or the pooled embedding."""
        if self.task.name == "embedding":
            from bortnas.model.pooling import pool

            assert self.pooling is not None, "an embedding objective knows its pooling"
            return pool(out.last_hidden_state, attention_mask, self.pooling)
        if self.task.name == "general":
            states: torch.Tensor = out.last_hidden_state
            return states
        logits: torch.Tensor = out.logits
        return logits

    def supervised_loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss against the data's own labels (unlabelled examples and ignored tokens skipped)."""
        name = self.task.name
        if name in ("classification", "token_classification"):
            flat, target = output.float().reshape(-1, output.shape[-1]), labels.reshape(-1)
            return F.cross_entropy(flat, target, ignore_index=IGNORE, reduction="sum") / (target != IGNORE).sum().clamp(min=1)
        if name == "regression":
            known = torch.isfinite(labels)
            if not known.any():
                return output.sum() * 0.0
            return F.mse_loss(output.float().squeeze(-1)[known], labels[known])
        if name == "multi_label":
            known = ~torch.isnan(labels).any(-1)
            if not known.any():
                return output.sum() * 0.0
            return F.binary_cross_entropy_with_logits(output.float()[known], labels[known].float())
        return output.sum() * 0.0  # embeddings have no labels

    def importance_loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss whose gradients rank a teacher's units (`bortnas.model.importance`): the supervised
        loss, or for an embedding model, which has no labels, how well each embedding picks itself
        out of the batch (cross-entropy of its cosine similarities to the batch's fixed embeddings,
        at temperature 0.05): units that make sentences distinguishable matter."""
        if self.task.labelled:
            return self.supervised_loss(output, labels)
        if output.dim() == 3:  # the general objective's hidden states: each window's mean
            output = output.mean(1)
        unit = F.normalize(output.float(), dim=-1)
        logits = unit @ unit.detach().T / 0.05
        return F.cross_entropy(logits, torch.arange(len(unit), device=unit.device))

    def distillation_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """The loss between the student's and the teacher's outputs for the same batch."""
        name, t = self.task.name, temperature
        s_out, t_out = student.float(), teacher.float()
        if name == "classification":
            return t * t * F.kl_div(F.log_softmax(s_out / t, -1), F.log_softmax(t_out / t, -1), reduction="batchmean", log_target=True)
        if name == "token_classification":
            real = attention_mask.bool()
            s_tok, t_tok = s_out[real], t_out[real]
            return t * t * F.kl_div(F.log_softmax(s_tok / t, -1), F.log_softmax(t_tok / t, -1), reduction="batchmean", log_target=True)
        if name == "regression":
            return F.mse_loss(s_out, t_out)
        if name == "multi_label":
            return F.binary_cross_entropy_with_logits(s_out, torch.sigmoid(t_out))
        if name == "general":
            relations = relation_kl(s_out, t_out, attention_mask)
            if self.pooling is None:
                return relations
            from bortnas.model.pooling import pool

            return relations + _similarity_mse(pool(s_out, attention_mask, self.pooling), pool(t_out, attention_mask, self.pooling))
        return _similarity_mse(s_out, t_out)

    def metrics(self, outputs: list[torch.Tensor], split: EncodedSplit) -> dict[str, float]:
        """Every metric of the task for `outputs` (one per example of `split`, in its order, on the host).

        An embedding model is scored against its teacher (`_embedding_metrics`).
        """
        name = self.task.name
        if name == "classification":
            gold = [int(v) for v in split.labels.tolist()]
            pred = [int(o.argmax(-1)) for o in outputs]
            kept = [(p, g) for p, g in zip(pred, gold, strict=True) if g != SOFT_ONLY]
            return {"accuracy": task_metrics.accuracy([p for p, _ in kept], [g for _, g in kept]) if kept else 0.0}
        if name == "regression":
            pred_scores = [float(o.reshape(-1)[0]) for o in outputs]
            gold_scores = [float(v) for v in split.labels.tolist()]
            return {"pearson": task_metrics.pearson(pred_scores, gold_scores), "spearman": task_metrics.spearman(pred_scores, gold_scores)}
        if name == "multi_label":
            pred_sets = [(o > 0).int().tolist() for o in outputs]
            gold_sets = split.labels.int().tolist()
            micro, macro = task_metrics.multilabel_f1(pred_sets, gold_sets)
            return {"micro_f1": micro, "macro_f1": macro}
        if name == "token_classification":
            assert split.token_labels is not None, "a token split has token labels"
            pred_tags, gold_tags = [], []
            for out, labels in zip(outputs, split.token_labels, strict=True):
                first = [k for k, label in enumerate(labels) if label != IGNORE]
                predicted = out[: len(labels)].argmax(-1).tolist()
                pred_tags.append([self.label_names[predicted[k]] for k in first])
                gold_tags.append([self.label_names[labels[k]] for k in first])
            precision, recall, f1 = task_metrics.entity_f1(pred_tags, gold_tags)
            return {"entity_f1": f1, "entity_precision": precision, "entity_recall": recall}
        if name == "general":
            return self._general_metrics(outputs, split)
        return self._embedding_metrics(torch.stack(outputs) if outputs else torch.empty(0), split)

    def _general_metrics(self, outputs: list[torch.Tensor], split: EncodedSplit) -> dict[str, float]:
        """A general encoder against its teacher on held-out windows (whose `reference` holds the
        teacher's last hidden states, padded): relation_kl, the mean over windows of `relation_kl`,
        and relation_agreement = exp(-relation_kl), in (0, 1] and 1 for the teacher itself, which W's error reads."""
        assert split.reference is not None, "a general split holds its teacher's hidden states before it is scored"
        total, count = 0.0, 0
        for start in range(0, len(outputs), 64):
            rows = outputs[start : start + 64]
            width = max(len(r) for r in rows)
            student = torch.zeros((len(rows), width, rows[0].shape[-1]))
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, row in enumerate(rows):
                student[k, : len(row)], mask[k, : len(row)] = row, 1
            teacher = split.reference[start : start + len(rows), :width].float()
            total += float(relation_kl(student, teacher, mask, reduce=False).sum())
            count += len(rows)
        kl = total / max(count, 1)
        return {"relation_agreement": math.exp(-kl), "relation_kl": kl}

    def _embedding_metrics(self, embeddings: torch.Tensor, split: EncodedSplit) -> dict[str, float]:
        """An embedding model against its teacher on `split` (whose `reference` holds the teacher's embeddings).

        cosine_spearman: Spearman's correlation between the model's and the teacher's cosine
        similarities over a fixed set of sentence pairs: each text with its pair where the data has
        pairs, and each with an unrelated sentence (a fixed derangement), so that both similar and
        dissimilar pairs are ranked. recall_at_10: where the data has pairs, the share of texts whose
        own pair is among the 10 most similar of all pair texts (a retrieval query and its
        document), else absent. Both are what a user of the embeddings reads from them.
        """
        assert split.reference is not None, "an embedding split holds its teacher's embeddings before it is scored"
        n = len(embeddings)
        student, teacher = F.normalize(embeddings.float(), dim=-1), F.normalize(split.reference.float(), dim=-1)
        generator = torch.Generator().manual_seed(0)
        shift = torch.randint(1, max(2, n), (n,), generator=generator)
        unrelated = [(i, int((i + shift[i]) % n)) for i in range(n)]
        pairs = (split.pairs or []) + unrelated
        left, right = torch.tensor([a for a, _ in pairs]), torch.tensor([b for _, b in pairs])
        s_cos = (student[left] * student[right]).sum(-1).tolist()
        t_cos = (teacher[left] * teacher[right]).sum(-1).tolist()
        out = {"cosine_spearman": task_metrics.spearman(s_cos, t_cos)}
        if split.pairs:
            queries = torch.tensor([q for q, _ in split.pairs])
            documents = sorted({d for _, d in split.pairs})
            column = {d: k for k, d in enumerate(documents)}
            scores = student[queries] @ student[torch.tensor(documents)].T
            ranked = scores.topk(min(10, len(documents)), dim=-1).indices.tolist()
            out["recall_at_10"] = task_metrics.recall_at_k(ranked, [column[d] for _, d in split.pairs], k=10)
        return out
