"""What the benchmarks share to run a search in-process through `bortnas.search`, as `bortnas search` would.

- `search_options`: `bortnas search` flags that a benchmark passes through (its arguments after
  `--`) as the API's `RunSettings` and `Execution`, through the CLI's own parser and translation;
  the strategy, storage, study and Ray are the benchmark's own, and their flags are refused.
- `log_like_cli`: the log the command would print (bortnas at INFO, or WARNING with -q; Optuna and
  transformers quiet), for a search or export that now runs in the benchmark's process.

Not a benchmark: imported by the benchmark scripts (their directory is on `sys.path`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from bortnas import Execution, RunSettings
from bortnas.app.cli import build_parser, execution_from, flag_for, settings_from

# what the benchmark itself decides: passing one of these through is refused
_OWN = ("strategy", "n_trials", "epsilon", "fptas_n0", "fptas_s", "fptas_refine", "storage", "study", "backend", "format")
_OWN += ("address", "ray_cpus", "cpus_per_trial", "gpus_per_trial", "no_asha")


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """The arguments of `bortnas.search` that `bortnas search` flags set, besides the space, storage, study and strategy."""

    settings: RunSettings
    execution: Execution
    show_progress_bar: bool


def search_options(extra: Sequence[str], **fixed: Any) -> SearchOptions:
    """`RunSettings`, `Execution` and progress from `bortnas search` flags, read by the CLI's own parser
    and translation (`bortnas.app.cli.settings_from`): `fixed` (the benchmark's own settings, by
    field name), then `extra`, which overrides them as a later flag overrides an earlier one.

    Raises:
        SystemExit: a flag `bortnas search` does not have (argparse's message), or one the benchmark sets itself.
    """
    parser = build_parser()
    given = [item for name, value in fixed.items() for item in (flag_for(name), str(value))]
    args = parser.parse_args(["search", "--space", "-", *given, *extra])
    defaults = parser.parse_args(["search", "--space", "-"])
    own = [dest for dest in _OWN if getattr(args, dest) != getattr(defaults, dest)]
    if own:
        raise SystemExit(f"search_options: {', '.join(flag_for(d) for d in own)} is the benchmark's own, not a flag to pass through")
    return SearchOptions(settings_from(args), execution_from(args), show_progress_bar=not args.quiet)


def log_like_cli(quiet: bool) -> None:
    """Log as `bortnas` does (with -q: warnings and errors only), Optuna and transformers as quiet as there."""
    import optuna
    import transformers

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[bortnas] %(message)s"))
    logger = logging.getLogger("bortnas")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    optuna.logging.set_verbosity(logging.WARNING)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
