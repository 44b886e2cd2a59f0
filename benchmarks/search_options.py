"""What the benchmarks share to run a search in-process through `bortnas.search`, as `bortnas search` would.

- `search_options`: `bortnas search` flags that a benchmark passes through (its arguments after
  `--`) as the API's `RunSettings` and `Execution`. The flags are those of the fields of
  `RunSettings`, `Budget` and `Execution`, named as the CLI names them (`bortnas.app.cli.flag_for`),
  and -q; the strategy, storage, study and Ray are the benchmark's own, and their flags are refused.
- `log_like_cli`: the log the command would print (bortnas at INFO, or WARNING with -q; Optuna and
  transformers quiet), for a search or export that now runs in the benchmark's process.

Not a benchmark: imported by the benchmark scripts (their directory is on `sys.path`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bortnas import Budget, Execution, RunSettings
from bortnas.app.cli import flag_for

# set by the benchmark itself, never by a passed-through flag
_NOT_FLAGS = {RunSettings: ("budget",), Execution: ("ray",)}


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """The arguments of `bortnas.search` that `bortnas search` flags set, besides the space, storage, study and strategy."""

    settings: RunSettings
    execution: Execution
    show_progress_bar: bool


def _value_type(hint: Any) -> Any:
    """The argparse `type` of a field annotated `hint`: the non-None member of an optional, str for a Literal."""
    if typing.get_origin(hint) is typing.Literal:
        return str
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _add_fields(parser: argparse.ArgumentParser, cls: type) -> list[str]:
    """One flag per field of the dataclass `cls` (as the CLI names it); the field names."""
    hints = typing.get_type_hints(cls)
    names = []
    for field in dataclasses.fields(cls):
        if field.name in _NOT_FLAGS.get(cls, ()):
            continue
        kind = _value_type(hints[field.name])
        if kind is bool:
            parser.add_argument(flag_for(field.name), dest=field.name, action="store_true", default=None)
        else:
            # a budget bound stays text: `Budget` parses it as the command line's, with the same errors
            parser.add_argument(flag_for(field.name), dest=field.name, type=str if cls is Budget else kind, default=None)
        names.append(field.name)
    return names


def search_options(extra: Sequence[str], **fixed: Any) -> SearchOptions:
    """`RunSettings`, `Execution` and progress from `bortnas search` flags: `fixed` (the benchmark's own
    settings, by field name), then `extra`, which overrides them as a later flag overrides an earlier one.
    Teacher and data paths are made absolute, as the CLI makes them (a study pins them).

    Raises:
        SystemExit: a flag that is not a run setting, budget bound or execution option (argparse's message).
    """
    parser = argparse.ArgumentParser(prog="bortnas search (in-process)", add_help=False)
    fields = {cls: _add_fields(parser, cls) for cls in (RunSettings, Budget, Execution)}
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(list(extra))

    def given(cls: type) -> dict[str, Any]:
        return {name: getattr(args, name) for name in fields[cls] if getattr(args, name) is not None}

    run = {**fixed, **given(RunSettings)}
    for path in ("teacher", "data"):
        if run.get(path) is not None:
            run[path] = str(Path(run[path]).resolve())
    settings = RunSettings(**run, budget=Budget(**given(Budget)))
    return SearchOptions(settings, Execution(**given(Execution)), show_progress_bar=not args.quiet)


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
