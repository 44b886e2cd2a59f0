"""Storage URLs: which one a command uses, and how one is shown to others.

Core layer: no I/O beyond reading the environment, no Optuna, so the API's result types can use it.
A storage URL may carry a database password (`postgresql+psycopg2://user:PASSWORD@host/db`).
Every log line, error, record and job entrypoint bortnas writes shows it through `redact`, which
hides the password as SQLAlchemy does when it renders a URL with `hide_password=True`; and the
URL may come from the `BORTNAS_STORAGE` environment variable instead of a command line, which
`ps`, shell histories and job dashboards show to others.
"""

from __future__ import annotations

import os
import re

DEFAULT_STORAGE = "sqlite:///bortnas.db"
STORAGE_ENV = "BORTNAS_STORAGE"
# scheme://user:password@, the password running to the token's last "@" (SQLAlchemy's reading of an unescaped "@")
_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):[^\s'\"]*@")


def resolve_storage(url: str | None) -> str:
    """The storage URL to use: `url`, else `$BORTNAS_STORAGE`, else SQLite in the working directory."""
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _CREDENTIALS.sub(r"\g<head>:***@", text)
