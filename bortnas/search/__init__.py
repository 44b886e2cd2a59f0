"""The search layer: Optuna studies, the strategies and their samplers, the trial loop, trial records."""

from bortnas.search.records import TrialRecord, load_records
from bortnas.search.runner import run_search
from bortnas.search.strategies import STRATEGIES, Strategy
from bortnas.search.study import create_or_resume, load_study

__all__ = ["STRATEGIES", "Strategy", "TrialRecord", "create_or_resume", "load_records", "load_study", "run_search"]
