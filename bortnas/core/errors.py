"""The bortnas exception tree: every error a user can cause or fix has a class here.

The CLI maps `UserInputError` subclasses to exit code 2 and any other `BortnasError` to 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable


class BortnasError(Exception):
    """Base class of every error raised on purpose by bortnas."""


class UserInputError(BortnasError):
    """Bad input the user can fix (a file, a setting, a directory); the CLI exits with 2.

    Args:
        message: what was found, what was expected and what to do next, naming parameters as a
            Python caller writes them (``encoding=latin-1``).
        mentions: the parameters the message names as ``name=``; the CLI shows each as its flag
            instead, through `named`.
    """

    def __init__(self, message: str, *, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.mentions = mentions

    def named(self, rename: Callable[[str], str]) -> str:
        """The message with each mentioned parameter ``name=`` written ``rename(name)=`` (its flag, say)."""
        return _rename(str(self), self.mentions, rename)


class ParameterError(UserInputError, ValueError):
    """A bad value of one named parameter of the Python API (a settings field, a function argument).

    The message names the parameter as a Python caller wrote it (``epsilon=0 must be in (0, 1)``);
    the CLI, which knows which flag set it, shows the same message with the flag's name instead
    (``--epsilon=0 must be in (0, 1)``) through `named`.

    Args:
        parameter: the parameter's name, e.g. "epsilon" or "max_latency_ms".
        detail: the rest of the message, starting right after the name: "=0 must be in (0, 1)."
        mentions: other parameters the detail names as ``name=value``, renamed along with it.
    """

    def __init__(self, parameter: str, detail: str, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(f"{parameter}{detail}", mentions=mentions)
        self.parameter = parameter
        self.detail = detail

    def named(self, rename: Callable[[str], str]) -> str:
        return rename(self.parameter) + _rename(self.detail, self.mentions, rename)


def _rename(text: str, names: tuple[str, ...], rename: Callable[[str], str]) -> str:
    """`text` with each ``name=`` of `names` written ``rename(name)=``, a whole name only (n0 is not fptas_n0's tail)."""
    for name in names:
        text = re.sub(rf"(?<![\w-]){re.escape(name)}=", f"{rename(name)}=", text)
    return text


class SearchSpaceError(UserInputError, ValueError):
    """A search-space file or value is invalid."""


class DataError(UserInputError, ValueError):
    """A data file or column is missing or malformed."""


class UnsupportedArchitectureError(UserInputError):
    """The teacher directory holds a model family bortnas cannot cut."""


class StorageError(UserInputError):
    """The storage URL is invalid or the database cannot be reached."""


class StudyMismatchError(UserInputError):
    """An existing study was created with other settings than the ones given now."""


class InfeasibleBudgetError(UserInputError):
    """No candidate (or no finished trial) is inside the budget the user gave."""


class StudyNotFoundError(UserInputError):
    """The named study does not exist in the storage, or was not made by bortnas."""


class ExportError(BortnasError):
    """A model cannot be exported (empty study, unknown trial, failed reload)."""


class TrialFailed(BortnasError):
    """A candidate's evaluation failed (diverged, NaN); the study records it and goes on."""


class MissingDependencyError(BortnasError, ImportError):
    """An optional package is needed for the requested feature."""


class ClusterError(UserInputError):
    """The Ray cluster cannot be reached, refused the credentials, or does not know the job (a wrong address, token or job id)."""


class JobFailedError(BortnasError):
    """A submitted Ray job ended in another state than SUCCEEDED."""


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM (what Ray, Kubernetes and Slurm send to stop a job).

    A `KeyboardInterrupt`, so that it unwinds exactly as Ctrl-C does: the running trial is told
    FAIL with the reason, checkpoints and staging directories are left or removed as on Ctrl-C.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum
