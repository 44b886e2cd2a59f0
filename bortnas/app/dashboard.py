"""optuna-dashboard over a study storage, bound to loopback unless the caller names another host.

Presentation layer over `bortnas.search.storage`: a search stores W, p, latency, error and the candidate
as trial user attributes, so the stock dashboard shows them; nothing here computes anything.
"""

from __future__ import annotations

import ipaddress
import logging

from bortnas.core.errors import MissingDependencyError, ParameterError, UserInputError
from bortnas.core.storage_url import redact, resolve_storage
from bortnas.search.storage import open_storage, storage_exists

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

_logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True when only this machine can reach `host`: ``localhost`` or a loopback address.

    Any other name counts as exposed, since it may resolve to a routable interface.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(storage: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve optuna-dashboard on every study in `storage` until Ctrl-C, which returns normally.

    The dashboard has no authentication and its API can rename and delete studies, so a `host`
    that is not loopback is logged as a warning: the caller asked for it, but should know.

    Args:
        storage: SQLAlchemy URL of the study database (default `$BORTNAS_STORAGE`, else `sqlite:///bortnas.db`);
            a SQLite file must exist already.
        host: address to bind.
        port: TCP port to listen on.

    Raises:
        ParameterError: `port` is not a TCP port, or the SQLite file of `storage` does not exist.
        UserInputError: the address cannot be bound (port in use, unknown host).
        StorageError: the storage URL is invalid or the database cannot be opened.
        MissingDependencyError: optuna-dashboard is not installed.

    Example:
        >>> serve("sqlite:///bortnas.db", port=8080)  # doctest: +SKIP
    """
    if not 1 <= port <= 65535:
        raise ParameterError("port", f" {port} is not a TCP port: use 1..65535 (default {DEFAULT_PORT}).")
    storage = resolve_storage(storage)
    if not storage_exists(storage):
        raise ParameterError(
            "storage", f" {redact(storage)} does not exist: run a search first (`bortnas search`) or pass the storage of one."
        )
    try:
        import optuna_dashboard
    except ImportError as e:
        raise MissingDependencyError(
            f"bortnas dashboard needs optuna-dashboard, which is not installed ({e}): pip install 'bortnas[dashboard]'."
        ) from e
    opened = open_storage(storage)
    if not is_loopback(host):
        _logger.warning(
            "host %s makes the dashboard reachable from other machines, and it has no authentication: anyone who can "
            "connect can read, edit and delete the studies in %s. Unless the network is trusted, keep the default %s and "
            "use an SSH tunnel (ssh -L %d:127.0.0.1:%d THIS_HOST).",
            host,
            redact(storage),
            DEFAULT_HOST,
            port,
            port,
        )
    address = f"[{host}]" if ":" in host else host
    _logger.info("optuna-dashboard for %s on http://%s:%d/ (Ctrl-C stops it)", redact(storage), address, port)
    try:
        optuna_dashboard.run_server(opened, host=host, port=port)
    except OSError as e:
        raise UserInputError(f"cannot listen on {address}:{port} ({e.strerror or e}): pass a free port or another host.") from e
