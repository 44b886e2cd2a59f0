"""What a model is trained and scored on, per task: its output, its losses, its metrics.

Torch layer. The training loop, evaluation, the teacher cache and export ask an `Objective` and
never branch on the task themselves (`bortnas.core.tasks` names the tasks and their metrics):

- output: the logits of a task head, or an embedding model's pooled sentence embedding (pooled
  as its sentence-transformers configuration says, so the student is judged on the embedding a
  user's library would produce);
- supervised loss (fine-tuning, and the label term of distillation): cross-entropy for classes and
  tags (only on a word's first sub-word), mean squared error for scores, binary cross-entropy for
  label sets; embeddings have none; an example without labels of its own (an unlabelled pool's:
  ignore index, or NaN) adds nothing to it;
- distillation of the teacher's output: KL divergence of the softened class or tag distributions
  (tags at every real token), MSE of the scores, BCE against the teacher's label probabilities, and
  for embeddings the MSE between the batch's cosine-similarity matrices (the student's width may
  differ from the teacher's; what a user reads from an embedding is its similarities);
- metrics, computed by the pure `bortnas.core.task_metrics` on the outputs gathered on the host.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from bortnas.core import task_metrics
from bortnas.core.tasks import TASKS, Task
from bortnas.data.encode import IGNORE, EncodedSplit
from bortnas.data.tasks import SOFT_ONLY

if TYPE_CHECKING:
    from bortnas.data.sentence_dirs import Pooling

__all__ = ["Objective"]


@dataclasses.dataclass(frozen=True)
class Objective:
    """The task of a model being trained or scored (see the module docstring).

    `label_names`: the head's outputs (tags for token classification, whose entity metric reads
    them). `pooling`: an embedding model's sentence-transformers pooling.
    """

    task: Task = TASKS["classification"]
    label_names: tuple[str, ...] = ()
    pooling: Pooling | None = None

    def output(self, out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model's task output from its forward pass: logits, or the pooled embedding."""
        if self.task.name == "embedding":
            from bortnas.model.pooling import pool

            assert self.pooling is not None, "an embedding objective knows its pooling"
            return pool(out.last_hidden_state, attention_mask, self.pooling)
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
        s_sim = F.normalize(s_out, dim=-1) @ F.normalize(s_out, dim=-1).T
        t_sim = F.normalize(t_out, dim=-1) @ F.normalize(t_out, dim=-1).T
        return F.mse_loss(s_sim, t_sim)

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
        return self._embedding_metrics(torch.stack(outputs) if outputs else torch.empty(0), split)

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
