"""The search layer: Optuna studies, samplers behind one name, the trial loop, trial records."""

from bortnas.search.records import TrialRecord, load_records
from bortnas.search.runner import run_search
from bortnas.search.strategies import STRATEGIES, make_sampler
from bortnas.search.study import create_or_resume, load_study

__all__ = ["STRATEGIES", "TrialRecord", "create_or_resume", "load_records", "load_study", "make_sampler", "run_search"]
