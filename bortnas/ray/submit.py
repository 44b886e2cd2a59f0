"""Running `bortnas search` as a Ray job: submission through Ray's Job Submission API, and log following.

Ray layer (the optional `ray` extra), beside `tune.py`: Ray is imported inside the functions only, so the
rest of bortnas, and `bortnas submit --help`, work without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from bortnas.core.errors import ClusterError, JobFailedError, ParameterError, UserInputError
from bortnas.core.storage_url import STORAGE_ENV, redact
from bortnas.ray.cluster import DASHBOARD_PORT, configure_ray_env, require_ray

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

_logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = f"http://127.0.0.1:{DASHBOARD_PORT}"
# Every job gets these unless its runtime env names them: teachers and data are local files, and
# Ray's usage reporting would try to reach an outside host from the job's own Ray processes.
JOB_ENV_VARS = {"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
# The Job Submission SDK lets these override the address it is given; bortnas honours an explicit --address.
_ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_TOKEN_HELP = (
    "with RAY_AUTH_MODE=token (bortnas's default) the client sends the token in $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH "
    "or ~/.ray/auth_token, which must be the head's (`ray get-auth-token` prints it there); "
    "set RAY_AUTH_MODE=disabled only for a head started without token auth"
)


def default_address() -> str:
    """The dashboard URL to use when no --address is given: `$RAY_API_SERVER_ADDRESS`, else the local head's.

    `$RAY_ADDRESS` is not read: it usually holds a GCS address (host:6380), not the dashboard's URL.
    """
    return os.environ.get("RAY_API_SERVER_ADDRESS", DEFAULT_ADDRESS)


def check_address(address: str) -> str:
    """Return `address` without a trailing slash if it is a dashboard URL.

    Raises:
        ParameterError: it is not an http(s) URL with a host (parameter "address").
    """
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParameterError(
            "address",
            f" {address!r} is not the URL of a Ray dashboard: expected http://HOST:{DASHBOARD_PORT}, "
            f"e.g. {DEFAULT_ADDRESS} for a head started by jobs/start_head.sh.",
        )
    return address.rstrip("/")


def default_python(address: str) -> str:
    """The interpreter a job runs bortnas with when --python is not given.

    A job's entrypoint is a shell command run with the PATH of the process that started the head. A head
    started as `.venv/bin/ray start` without an activated virtualenv therefore finds another `python`
    (seen with Ray 2.60), one without bortnas. For a head on this machine the submitter's own interpreter
    is the one that has bortnas; on a remote cluster only the cluster's `python` can be named.
    """
    host = urlsplit(address).hostname or ""
    return sys.executable if host in _LOOPBACK else "python"


def search_entrypoint(search_args: Sequence[str], python: str) -> str:
    """The shell command of a job that runs `bortnas search` with `search_args`, each one quoted, less any
    `--storage URL` (`split_storage`: the URL goes in the job's environment).

    Raises:
        UserInputError: no search arguments, or they start with the word `search`.
    """
    if not search_args:
        raise UserInputError(
            "bortnas submit needs the arguments of `bortnas search` after `--`, "
            "e.g. bortnas submit -- --space /abs/path/space.yaml --storage sqlite:////abs/path/bortnas.db"
        )
    if search_args[0] == "search":
        raise UserInputError("give the arguments of `bortnas search` after `--` without the word `search`: bortnas submit -- --space ...")
    return shlex.join([python, "-m", "bortnas", "search", *split_storage(search_args)[0]])


def split_storage(search_args: Sequence[str]) -> tuple[list[str], str | None]:
    """`search_args` without their `--storage URL` (also `--storage=URL` and argparse's abbreviations), and the URL.

    A job's entrypoint is shown by the Ray dashboard and `ray job list` to everyone who can reach
    the head; a storage URL may hold a database password, so it travels in the job's environment
    (`load_runtime_env`) instead.
    """
    kept: list[str] = []
    storage: str | None = None
    rest = iter(search_args)
    for arg in rest:
        flag, equals, value = arg.partition("=")
        if len(flag) >= len("--st") + 1 and "--storage".startswith(flag):
            storage = value if equals else next(rest, None)
            continue
        kept.append(arg)
    return kept, storage


def load_runtime_env(path: Path | None, storage: str | None = None) -> dict[str, Any]:
    """Read a runtime-env YAML file (see jobs/runtime_env.yaml) and add `JOB_ENV_VARS` where it names none.

    The job's study storage, `storage` or else the submitter's `$BORTNAS_STORAGE`, becomes the job's
    `$BORTNAS_STORAGE`, which `bortnas search` reads when no `--storage` is given.

    Args:
        path: the file, or None for a runtime env with only `JOB_ENV_VARS`.
        storage: the `--storage` URL taken out of the search arguments (`split_storage`), if any.

    Returns:
        The runtime env as `JobSubmissionClient.submit_job` takes it.

    Raises:
        UserInputError: the file is missing, is not YAML, is not a mapping, or its `env_vars` are not strings.
    """
    runtime_env: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as e:
            raise UserInputError(f"runtime env file {path} cannot be read: {e.strerror}; pass a readable YAML file.") from e
        except yaml.YAMLError as e:
            raise UserInputError(f"runtime env file {path} is not valid YAML: {str(e).splitlines()[0]}; fix the file.") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise UserInputError(f"runtime env file {path} holds a {type(loaded).__name__}; expected a mapping such as env_vars: {{...}}.")
        runtime_env = dict(loaded or {})
    env_vars = runtime_env.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise UserInputError(f'env_vars in runtime env file {path} must map names to strings; quote values such as "1".')
    runtime_env["env_vars"] = {**JOB_ENV_VARS, **env_vars}
    storage = storage or os.environ.get(STORAGE_ENV)
    if storage:
        runtime_env["env_vars"][STORAGE_ENV] = storage
    return runtime_env


@contextlib.contextmanager
def _cluster_errors(address: str) -> Iterator[None]:
    """Translate the SDK's failures (connection, HTTP status, token) into one-line `ClusterError`s."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as e:
        reason = str(e).splitlines()[0].split(". ")[0]  # Ray's own text runs on for several sentences
        raise ClusterError(f"token authentication with {address} failed ({reason}): {_TOKEN_HELP}.") from e
    except OSError as e:  # ConnectionError from the SDK, requests' and aiohttp's connection failures
        raise ClusterError(
            f"cannot reach a Ray dashboard at {address} ({type(e).__name__}): start a head (jobs/start_head.sh) "
            f"or pass the address of a running head's dashboard, http://HOST:{DASHBOARD_PORT}."
        ) from e
    except RuntimeError as e:  # the SDK's "Request failed with status code ...", e.g. 404 for an unknown job id
        raise ClusterError(f"the Ray cluster at {address} answered: {str(e).splitlines()[0]}") from e


def connect(address: str) -> JobSubmissionClient:
    """A Job Submission client of the dashboard at `address`, after setting bortnas's Ray environment.

    Raises:
        MissingDependencyError: Ray's job SDK (`ray[default]`) is not installed.
        ParameterError: `address` is not a dashboard URL.
        ClusterError: the dashboard cannot be reached or refused the token.
    """
    configure_ray_env()
    for module in ("ray.job_submission", "aiohttp", "requests"):
        require_ray("bortnas submit", module)
    from ray.job_submission import JobSubmissionClient

    address = check_address(address)
    hidden = {name: os.environ.pop(name) for name in _ADDRESS_ENV if name in os.environ}
    try:
        with _cluster_errors(address):
            return JobSubmissionClient(address)
    finally:
        os.environ.update(hidden)


def submit_search(client: JobSubmissionClient, entrypoint: str, runtime_env: dict[str, Any]) -> str:
    """Submit `entrypoint` (from `search_entrypoint`) as a job with `runtime_env`; return its submission id at once.

    Paths in the search arguments are read on the cluster, relative to the job's working directory (the
    directory the head was started in, or the runtime env's `working_dir`): give absolute paths, or a
    server storage URL on a cluster of several machines.

    Raises:
        UserInputError: Ray rejected the runtime env.
        ClusterError: the cluster refused the submission.
    """
    with _cluster_errors(client.get_address()):
        try:
            job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except (ValueError, TypeError) as e:
            raise UserInputError(redact(f"Ray rejected the runtime env {runtime_env}: {str(e).splitlines()[0]}")) from e
    _logger.info("submitted %s: %s", job_id, redact(entrypoint))
    return job_id


def follow_job(client: JobSubmissionClient, job_id: str, write: Callable[[str], Any]) -> None:
    """Pass the job's log, from its start, to `write` as it grows, until the job ends.

    Returns when the job SUCCEEDED. Interrupting stops the following only; the job goes on.

    Raises:
        ClusterError: the cluster does not know `job_id`, or the log stream broke off.
        JobFailedError: the job ended FAILED or STOPPED.
    """
    from ray.job_submission import JobStatus

    address = client.get_address()

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    with _cluster_errors(address):
        client.get_job_info(job_id)  # an unknown id is a clean 404 here; the log stream would fail in its handshake
        _logger.info("following %s at %s (Ctrl-C stops following, not the job)", job_id, address)
        asyncio.run(tail())
        info = client.get_job_info(job_id)
    if not info.status.is_terminal():
        raise ClusterError(
            f"the log stream of {job_id} closed while the job is {info.status}: follow it again with "
            f"bortnas submit --logs {job_id} --address {address}"
        )
    if info.status != JobStatus.SUCCEEDED:
        exited = info.status == JobStatus.FAILED and info.driver_exit_code is not None
        detail = f"the search exited with code {info.driver_exit_code}" if exited else (info.message or "").split("\n")[0].rstrip(".")
        raise JobFailedError(f"job {job_id} ended {info.status}: {detail}; its log: bortnas submit --logs {job_id} --address {address}")
