"""Which finished trial a user gets: the argmax-W trial, the one named, or the best one under a budget.

Search layer, torch-free: reads trial records only, so selection rules are tested on studies built by hand.
The rules (`bortnas export --max-latency-ms / --max-size-mib / --max-accuracy-drop`):
- a cost budget alone: the most accurate finished trial within it;
- an accuracy budget alone (points of dev accuracy below the task teacher): the fastest trial that meets it;
- both: the fastest trial that meets both.
"Fastest" is the candidate's latency in the study's latency table (the one the search's budget
used), else the latency its trial measured. Ties go to the more accurate, then the earlier trial.

A latency budget is checked again where the export runs: the table was timed once, before the
search, and a machine's load changes (the frontier benchmark measured exported models 10-22 %
over the budgets their tables said they met). With a `retime` function, the trials that could
be inside the budget (table latency within `RETIME_MARGIN` of the bound) and the teacher are
timed again, side by side, and the budget is applied to those figures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from bortnas.core.budget import Budget, CandidateCost, LatencyTable
from bortnas.core.errors import ExportError, InfeasibleBudgetError, ParameterError, UserInputError
from bortnas.core.space import ArchSpec
from bortnas.search.budget_screen import refuse_simulated_latency
from bortnas.search.records import TrialRecord, front_and_best, load_records

__all__ = [
    "RETIME_MARGIN",
    "Retimer",
    "Selection",
    "check_latencies",
    "choose_trial",
    "more_accurate",
    "parse_accuracy_drop",
    "qualifying",
    "resolve",
    "retimed",
    "trial_cost",
    "trial_latency",
]

# Trials whose table latency is within this factor of a latency bound are timed again at export.
RETIME_MARGIN = 1.5
# Times the given candidates and the teacher side by side: a table of them with its teacher_ms.
Retimer = Callable[[Sequence[ArchSpec]], LatencyTable]


def parse_accuracy_drop(value: str | float | None) -> float | None:
    """`value` of `Selection.max_accuracy_drop` (text, as the command line gives it, or a number)
    as a finite number of points >= 0 (None stays None).

    Raises:
        ParameterError: not a number, negative or not finite (parameter "max_accuracy_drop").
    """
    if value is None:
        return None
    try:
        points = float(value)
    except (TypeError, ValueError):
        raise ParameterError("max_accuracy_drop", f"={value!r} is not a number: give points of accuracy, e.g. 2.") from None
    if not (math.isfinite(points) and points >= 0):
        raise ParameterError("max_accuracy_drop", f"={value!r} must be a finite number of points >= 0, e.g. 2.")
    return points


@dataclasses.dataclass(frozen=True)
class Selection:
    """What `export` (and `trials`) choose by: a cost budget and an accuracy budget, either may be empty."""

    budget: Budget = dataclasses.field(default_factory=Budget)
    max_accuracy_drop: float | None = None  # points of dev accuracy below the task teacher

    def __bool__(self) -> bool:
        return bool(self.budget) or self.max_accuracy_drop is not None

    def describe(self) -> str:
        parts = [self.budget.describe()] if self.budget else []
        if self.max_accuracy_drop is not None:
            parts.append(f"dev score at most {self.max_accuracy_drop:g} points below the teacher's")
        return ", ".join(parts)


def resolve(selection: Selection, study: optuna.Study, table: LatencyTable | None = None) -> Selection:
    """`selection` with its `min_speedup` turned into the latency bound it means in `table` (default:
    `study`'s latency table).

    Raises:
        ParameterError: a speed-up (parameter "min_speedup") for a study without a latency table.
    """
    if selection.budget.min_speedup is None:
        return selection
    if table is not None:
        return dataclasses.replace(selection, budget=selection.budget.against(table.teacher_ms))
    stored = study.user_attrs.get("latency_table")
    if not stored:
        raise ParameterError(
            "min_speedup",
            f"={selection.budget.min_speedup:g} needs the latency table of study {study.study_name!r}, which has none "
            "(made before tables existed): bound the latency itself instead, e.g. max_latency_ms=5.",
            mentions=("max_latency_ms",),
        )
    return dataclasses.replace(selection, budget=selection.budget.against(LatencyTable.from_dict(stored).teacher_ms))


def check_latencies(records: list[TrialRecord], selection: Selection, cost: str | None, study_name: str) -> None:
    """Refuse a latency budget or W's latency cost on a study with trials of simulated modes
    (`bortnas.search.budget_screen.refuse_simulated_latency`)."""
    modes = {r.spec.quant for r in records if r.scored and r.spec is not None and r.latency_simulated}
    refuse_simulated_latency(modes, selection.budget, cost, f"study {study_name!r}")


def trial_latency(attrs: dict[str, float]) -> float | None:
    """The latency a budget compares: the study's table value for the candidate, else the trial's own measurement."""
    return attrs.get("latency_table_ms", attrs.get("latency_ms"))


def _sort_latency(r: TrialRecord) -> float:
    """`trial_latency`, with a trial that has none sorted last."""
    value = trial_latency(r.attrs)
    return math.inf if value is None else value


def trial_cost(attrs: dict[str, float]) -> CandidateCost:
    return CandidateCost(
        params=int(attrs.get("params_total", 0)),
        size_mib=attrs.get("size_mib", 0.0),
        flops=attrs.get("flops", 0.0),
        latency_ms=trial_latency(attrs),
    )


def dev_score(attrs: dict[str, Any]) -> float:
    """A trial's dev score under the task's headline metric (`dev_accuracy` in studies made before tasks)."""
    return float(attrs["dev_score"] if "dev_score" in attrs else attrs["dev_accuracy"])


def teacher_dev_score(attrs: dict[str, Any]) -> float:
    """The task teacher's dev score that a trial recorded as its reference."""
    return float(attrs["teacher_dev_score"] if "teacher_dev_score" in attrs else attrs["teacher_dev_accuracy"])


def accuracy_drop(attrs: dict[str, Any]) -> float:
    """Points (hundredths of the headline metric) the trial is below its task teacher on dev (negative: above)."""
    return 100.0 * (teacher_dev_score(attrs) - dev_score(attrs))


def qualifying(records: list[TrialRecord], selection: Selection) -> list[TrialRecord]:
    """The finished trials inside `selection`'s budgets."""
    out = []
    for r in records:
        if not r.scored or selection.budget.excess(trial_cost(r.attrs)):
            continue
        if selection.max_accuracy_drop is not None and accuracy_drop(r.attrs) > selection.max_accuracy_drop + 1e-9:
            continue
        out.append(r)
    return out


def _closest(scored: list[TrialRecord], selection: Selection) -> TrialRecord:
    def distance(r: TrialRecord) -> float:
        cost = max(0.0, selection.budget.worst_excess(trial_cost(r.attrs))) if selection.budget else 0.0
        acc = 0.0
        if selection.max_accuracy_drop is not None:
            acc = max(0.0, accuracy_drop(r.attrs) - selection.max_accuracy_drop) / 100.0
        return cost + acc

    return min(scored, key=lambda r: (distance(r), r.number))


def _by_budget(study: optuna.Study, records: list[TrialRecord], selection: Selection) -> int:
    scored = [r for r in records if r.scored]
    if not scored:
        raise ExportError(f"study {study.study_name!r} has no finished trial to export: run `bortnas search` first.")
    inside = qualifying(records, selection)
    if not inside:
        near = _closest(scored, selection)
        parts = [selection.budget.cost_summary(trial_cost(near.attrs))] if selection.budget else []
        if selection.max_accuracy_drop is not None:
            parts.append(f"dev score {accuracy_drop(near.attrs):.2f} points below the teacher's")
        raise InfeasibleBudgetError(
            f"no finished trial of study {study.study_name!r} is within {selection.describe()}: the closest, trial "
            f"{near.number} ({near.attrs.get('key', '?')}), has {', '.join(parts)}; relax the budget or search further."
        )

    if selection.max_accuracy_drop is not None:
        return min(inside, key=lambda r: (_sort_latency(r), -dev_score(r.attrs), r.number)).number
    return min(inside, key=lambda r: (-dev_score(r.attrs), _sort_latency(r), r.number)).number


def more_accurate(records: list[TrialRecord], number: int) -> TrialRecord | None:
    """The next step up the frontier from trial `number`: the fastest finished trial whose dev
    score is above it (ties: the more accurate, then the earlier); where none is above, the fastest
    one slower than it with the same score; else None.

    An export whose trained model lands too far below its teacher climbs to this one: it pays the
    least latency for the next gain in accuracy the search measured. Equal scores happen when the
    search's short training left every small candidate at the same floor (an entity F1 of 0, the
    majority rate): a slower candidate of the same score then has the capacity to do better.
    """

    scored = {r.number: r for r in records if r.scored}
    current = scored[number]
    score = dev_score(current.attrs)
    above = [r for r in scored.values() if dev_score(r.attrs) > score]
    if not above:
        above = [r for r in scored.values() if dev_score(r.attrs) == score and _sort_latency(r) > _sort_latency(current)]
    return min(above, key=lambda r: (_sort_latency(r), -dev_score(r.attrs), r.number), default=None)


def retimed(
    records: list[TrialRecord], selection: Selection, study: optuna.Study, retime: Retimer
) -> tuple[list[TrialRecord], Selection, LatencyTable | None]:
    """`records` and `selection` with latencies timed again now (module docstring): the trials
    within `RETIME_MARGIN` of the bound carry their new figure as their table latency, the others
    keep theirs (too slow to qualify either way), and a speed-up is resolved against the teacher
    timed beside them."""
    bound = resolve(selection, study).budget.max_latency_ms
    assert bound is not None, "retimed is called for latency budgets only"
    near = [r for r in records if r.scored and r.spec is not None and (trial_latency(r.attrs) or 0.0) <= RETIME_MARGIN * bound]
    if not near:  # nothing could qualify: the study's own figures name the closest trial
        return records, resolve(selection, study), None
    table = retime(list(dict.fromkeys(r.spec for r in near if r.spec is not None)))
    fresh = {r.number: table.ms[r.spec.key] for r in near if r.spec is not None}
    records = [dataclasses.replace(r, attrs={**r.attrs, "latency_table_ms": fresh[r.number]}) if r.number in fresh else r for r in records]
    return records, resolve(selection, study, table), table


def choose_trial(
    study: optuna.Study, number: int | None = None, selection: Selection | None = None, retime: Retimer | None = None
) -> optuna.trial.FrozenTrial:
    """The trial to export: `number`, the best one under `selection` (module docstring), or the
    argmax-W finished trial. With `retime`, a latency budget is applied to latencies timed again now.

    Raises:
        UserInputError: both `number` and a budget in `selection`.
        InfeasibleBudgetError: no finished trial meets the budget (names the closest one).
        ExportError: the study has no finished trial, or `number` is not a finished trial.
    """
    selection = selection or Selection()
    if number is not None and selection:
        raise UserInputError(f"number={number} and selection ({selection.describe()}) both choose the trial: give one of them.")
    records = load_records(study)
    if number is None and selection:
        check_latencies(records, selection, None, study.study_name)
        if retime is not None and selection.budget.needs_latency:
            records, resolved, _ = retimed(records, selection, study, retime)
        else:
            resolved = resolve(selection, study)
        number = _by_budget(study, records, resolved)
    if number is None:
        _, best = front_and_best(records)
        if best is None:
            raise ExportError(f"study {study.study_name!r} has no finished trial to export: run `bortnas search` first.")
        number = best
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    trial = trials.get(number)
    if trial is None or trial.state != optuna.trial.TrialState.COMPLETE or "candidate" not in trial.user_attrs:
        finished = sorted(r.number for r in records if r.scored)
        raise ExportError(f"trial {number} of study {study.study_name!r} is not a finished candidate (finished: {finished}).")
    return trial
