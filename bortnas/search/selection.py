"""Which finished trial a user gets: the argmax-W trial, or the one named.

Search layer, torch-free: reads trial records only, so selection rules are tested on studies built by hand.
"""

from __future__ import annotations

import optuna

from bortnas.core.errors import ExportError
from bortnas.search.records import front_and_best, load_records


def choose_trial(study: optuna.Study, number: int | None = None) -> optuna.trial.FrozenTrial:
    """The trial to export: `number`, or the argmax-W finished trial.

    Raises:
        ExportError: the study has no finished trial, or `number` is not a finished trial.
    """
    records = load_records(study)
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
