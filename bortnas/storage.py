"""Study storage: an Optuna RDBStorage from a SQLAlchemy URL (SQLite by default).

Optuna layer. SQLite gets a long busy timeout so several local processes can share one file.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from bortnas.errors import StorageError

DEFAULT_STORAGE = "sqlite:///bortnas.db"


def open_storage(url: str = DEFAULT_STORAGE) -> optuna.storages.RDBStorage:
    """Open (creating tables if needed) the study database at `url`.

    Raises:
        StorageError: the URL is malformed, its driver is missing, or the database is unreachable.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(f"--storage {url!r} is not a SQLAlchemy URL: use e.g. sqlite:///bortnas.db or postgresql+psycopg2://user@host/db.") from e
    engine_kwargs: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not Path(database).parent.exists():
            raise StorageError(f"--storage {url!r}: directory {Path(database).parent} does not exist; create it first.")
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (ImportError, ModuleNotFoundError) as e:
        raise StorageError(f"--storage {url!r} needs a database driver that is not installed ({e}).") from e
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        raise StorageError(f"cannot open --storage {url!r}: {str(e).splitlines()[0]}") from e


def storage_exists(url: str) -> bool:
    """False when `url` is a SQLite file that does not exist yet (so reading it would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).exists()
    return True
