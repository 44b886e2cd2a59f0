"""The metrics a candidate is scored by on each task: accuracy, Pearson/Spearman, multi-label F1,
entity F1 (seqeval's default mode) and recall@k.

Pure layer: stdlib only, on plain Python sequences, so the search and cost layers and the tests
can score predictions without importing torch or numpy; the training loop turns its tensors into
lists once per evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

__all__ = ["accuracy", "entity_f1", "entity_spans", "multilabel_f1", "pearson", "recall_at_k", "spearman"]


def _check_lengths(name_a: str, a: Sequence[object], name_b: str, b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} has {len(a)} items but {name_b} has {len(b)}: pass one of each per example.")
    if not a:
        raise ValueError(f"{name_a} and {name_b} are empty: a metric needs at least one example.")


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float:
    """The fraction of examples whose predicted label equals the gold label.

    Raises:
        ValueError: `pred` and `gold` differ in length, or are empty.
    """
    _check_lengths("pred", pred, "gold", gold)
    return sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)


def _finite(name: str, values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            # one NaN would make the correlation NaN, which a sampler cannot rank; fail where it entered
            raise ValueError(f"{name}[{i}]={v} is not finite: a correlation needs finite numbers (did the model diverge?).")
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation coefficient of `x` and `y`, in [-1, 1].

    When either side is constant the coefficient is undefined (0/0); this returns 0.0 there rather
    than NaN, as a model that predicts one value for every example carries no ranking signal, and a
    NaN objective would stop the search from comparing trials.

    Raises:
        ValueError: `x` and `y` differ in length, are empty, or hold a NaN or infinity.
    """
    _check_lengths("x", x, "y", y)
    xs, ys = _finite("x", x), _finite("y", y)
    n = len(xs)
    mean_x, mean_y = math.fsum(xs) / n, math.fsum(ys) / n
    dx = [v - mean_x for v in xs]
    dy = [v - mean_y for v in ys]
    sxx = math.fsum(d * d for d in dx)
    syy = math.fsum(d * d for d in dy)
    if sxx == 0.0 or syy == 0.0:
        return 0.0
    r = math.fsum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))  # rounding can push |r| a hair past 1


def _average_ranks(values: list[float]) -> list[float]:
    """1-based ranks of `values`; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        mean_rank = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = mean_rank
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's of the ranks, ties given their mean rank (as scipy does).

    Returns 0.0, not NaN, when either side is constant (see `pearson`).

    Raises:
        ValueError: `x` and `y` differ in length, are empty, or hold a NaN or infinity.
    """
    _check_lengths("x", x, "y", y)
    return pearson(_average_ranks(_finite("x", x)), _average_ranks(_finite("y", y)))


def _f1(tp: int, n_pred: int, n_gold: int) -> float:
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (predicted + gold); 0 when nothing was predicted or gold
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def multilabel_f1(pred: Sequence[Sequence[int]], gold: Sequence[Sequence[int]]) -> tuple[float, float]:
    """(micro F1, macro F1) of multi-label predictions given as 0/1 indicator rows, one per example.

    Micro F1 counts true/false positives over every (example, label) cell. Macro F1 is the mean of
    the per-label F1s over all labels (all columns). A label that no example has and the model
    never predicts scores 0 and still counts in the mean, as scikit-learn's `f1_score` does with its
    default ``zero_division`` (0), so the two agree on the same rows.

    Raises:
        ValueError: `pred` and `gold` differ in length or are empty, a row differs in width from
            the first gold row, or a cell is not 0 or 1.
    """
    _check_lengths("pred", pred, "gold", gold)
    n_labels = len(gold[0])
    if n_labels == 0:
        raise ValueError("gold[0] has no labels: a multi-label row needs one 0/1 column per label.")
    tp, n_pred, n_gold = [0] * n_labels, [0] * n_labels, [0] * n_labels
    for i, (p_row, g_row) in enumerate(zip(pred, gold, strict=True)):
        for name, row in (("pred", p_row), ("gold", g_row)):
            if len(row) != n_labels:
                raise ValueError(f"{name}[{i}] has {len(row)} labels but gold[0] has {n_labels}: every row needs one column per label.")
            bad = next((v for v in row if v not in (0, 1)), None)
            if bad is not None:
                raise ValueError(f"{name}[{i}] holds {bad!r}: indicator rows hold 0 or 1 (threshold scores first).")
        for j, (p, g) in enumerate(zip(p_row, g_row, strict=True)):
            tp[j] += int(p and g)
            n_pred[j] += int(p)
            n_gold[j] += int(g)
    micro = _f1(sum(tp), sum(n_pred), sum(n_gold))
    macro = math.fsum(_f1(t, p, g) for t, p, g in zip(tp, n_pred, n_gold, strict=True)) / n_labels
    return micro, macro


_PREFIXES = ("B", "I", "E", "S")


def _split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) of a tag: "O" -> ("O", ""), "B-PER" -> ("B", "PER"), a bare "B" -> ("B", "")
    (untyped BIO, as keyphrase data uses), and any other tag, e.g. "PER", -> ("I", "PER")."""
    if tag == "O":
        return "O", ""
    if tag in _PREFIXES:
        return tag, ""
    if tag[:1] in _PREFIXES and tag[1:2] == "-":
        return tag[0], tag[2:]
    return "I", tag


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The entities of one tagged sentence as (type, start, end) with `end` exclusive, so
    ``words[start:end]`` is the entity.

    Reads IOB1, IOB2, IOE and IOBES tags alike, by conlleval's rules as seqeval's default
    (non-strict) mode applies them. An entity ends before O, B-, S-, a tag of another type, or
    after E- and S-. An entity starts at B- or S-, at any tag whose type differs from the previous
    tag's, and at I- or E- right after O, E- or S-. So a dangling I-PER after O starts an entity,
    I-PER I-LOC are two entities, and E-PER E-PER are two.

    A tag with no B-/I-/E-/S- prefix other than "O" (e.g. "PER") is read as I-PER, so a run of them
    is one entity; seqeval instead takes such a tag's first letter as its prefix, so the two
    differ on unprefixed tags only. Bare "B", "I", "E", "S" are prefixes of an untyped entity.
    """
    spans: set[tuple[str, int, int]] = set()
    prev_prefix, prev_type, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):  # the trailing O closes an entity open at the end
        prefix, type_ = _split_tag(tag)
        ends = prev_prefix != "O" and (prev_prefix in ("E", "S") or prefix in ("O", "B", "S") or type_ != prev_type)
        if ends:
            spans.add((prev_type, begin, i))
        starts = prefix != "O" and (prefix in ("B", "S") or prev_prefix in ("O", "E", "S") or type_ != prev_type)
        if starts:
            begin = i
        prev_prefix, prev_type = prefix, type_
    return spans


def entity_f1(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> tuple[float, float, float]:
    """(precision, recall, F1) over entities, micro-averaged over every sentence and type, as
    seqeval's default-mode ``precision_score``/``recall_score``/``f1_score`` compute them.

    A predicted entity counts only if its type, start and end all match a gold entity of the same
    sentence (entities read by `entity_spans`). A ratio with nothing to divide by (no predicted
    entities, no gold entities) is 0.0, as seqeval's default ``zero_division`` gives.

    Raises:
        ValueError: `pred` and `gold` hold different numbers of sentences (or none), or a sentence
            has a different number of tags in each.
    """
    _check_lengths("pred", pred, "gold", gold)
    tp = n_pred = n_gold = 0
    for i, (p_tags, g_tags) in enumerate(zip(pred, gold, strict=True)):
        if len(p_tags) != len(g_tags):
            raise ValueError(f"pred[{i}] has {len(p_tags)} tags but gold[{i}] has {len(g_tags)}: predict one tag per word.")
        p_spans, g_spans = entity_spans(p_tags), entity_spans(g_tags)
        tp += len(p_spans & g_spans)
        n_pred += len(p_spans)
        n_gold += len(g_spans)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def recall_at_k(ranked: Sequence[Sequence[int]], relevant: Sequence[int | AbstractSet[int]], k: int = 10) -> float:
    """Recall@k of a retrieval: per query, the share of its relevant ids among its first `k` ranked
    ids, averaged over queries.

    Args:
        ranked: per query, document ids best first (as many as were ranked; fewer than `k` is fine).
        relevant: per query, its one relevant id, or a set of relevant ids; with one id a query
            scores 1 or 0, so the result is the fraction of queries whose document is in the top k.
        k: how many of the ranked ids count.

    Raises:
        ValueError: `ranked` and `relevant` differ in length or are empty, `k` < 1, or a query has
            an empty set of relevant ids.
    """
    _check_lengths("ranked", ranked, "relevant", relevant)
    if k < 1:
        raise ValueError(f"k={k} must be at least 1: it is how many ranked ids count per query.")
    total = 0.0
    for i, (ids, rel) in enumerate(zip(ranked, relevant, strict=True)):
        wanted = {rel} if isinstance(rel, int) else set(rel)
        if not wanted:
            raise ValueError(f"relevant[{i}] is empty: every query needs at least one relevant id (drop queries without one).")
        total += len(wanted & set(ids[:k])) / len(wanted)
    return total / len(ranked)
