"""The bortnas exception tree: every error a user can cause or fix has a class here.

The CLI maps `UserInputError` subclasses to exit code 2 and any other `BortnasError` to 1.
"""

from __future__ import annotations

from collections.abc import Callable


class BortnasError(Exception):
    """Base class of every error raised on purpose by bortnas."""


class UserInputError(BortnasError):
    """Bad input the user can fix (a file, a flag, a directory); the CLI exits with 2."""


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
        super().__init__(f"{parameter}{detail}")
        self.parameter = parameter
        self.detail = detail
        self.mentions = mentions

    def named(self, rename: Callable[[str], str]) -> str:
        """The message with each parameter's name replaced by `rename(name)` (its flag, say)."""
        detail = self.detail
        for other in self.mentions:
            detail = detail.replace(f"{other}=", f"{rename(other)}=")
        return f"{rename(self.parameter)}{detail}"


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
