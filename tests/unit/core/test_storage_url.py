"""Storage URLs: the password never shown, the URL taken from the environment, kept off a Ray job's entrypoint."""

from __future__ import annotations

import shlex
import sys

import pytest
from sqlalchemy.engine import make_url

from bortnas.api.results import SearchResult, TrialSummary
from bortnas.core.errors import StorageError
from bortnas.core.storage_url import DEFAULT_STORAGE, STORAGE_ENV, redact, resolve_storage
from bortnas.ray.submit import load_runtime_env, search_entrypoint, split_storage
from bortnas.search.storage import open_storage
from bortnas.search.study import open_study

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg2://bob:{SECRET}@db.example:5432/bortnas",
        f"postgresql://bob:{SECRET}@db.example/bortnas?sslmode=require",
        f"mysql+pymysql://root:{SECRET}@127.0.0.1/x",
        "postgresql://bob:p%40ss@db/x",
    ],
)
def test_a_password_is_hidden_as_sqlalchemy_hides_it(url: str) -> None:
    assert redact(url) == make_url(url).render_as_string(hide_password=True)
    assert redact(f"storage='{url}' cannot be opened") == f"storage='{make_url(url).render_as_string(hide_password=True)}' cannot be opened"


@pytest.mark.parametrize(
    "text", ["sqlite:///bortnas.db", "sqlite:////abs/path.db", "postgresql://bob@db/x", "http://127.0.0.1:8265", "a:b@c without a scheme"]
)
def test_text_without_a_url_password_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_an_unescaped_at_sign_is_hidden_with_the_rest_of_the_password() -> None:
    assert SECRET not in redact(f"postgresql://bob:{SECRET}@x@db/x")


def test_the_storage_comes_from_the_flag_then_the_environment_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert resolve_storage(None) == DEFAULT_STORAGE
    monkeypatch.setenv(STORAGE_ENV, "postgresql://bob:pw@db/x")
    assert resolve_storage(None) == "postgresql://bob:pw@db/x"
    assert resolve_storage("sqlite:///other.db") == "sqlite:///other.db"


def test_an_unreachable_or_malformed_database_url_is_named_without_its_password() -> None:
    with pytest.raises(StorageError) as raised:
        open_storage(f"postgresql+psycopg2://bob:{SECRET}@127.0.0.1:1/x")  # nothing listens on port 1
    assert SECRET not in str(raised.value) and "bob:***@127.0.0.1:1" in str(raised.value)
    with pytest.raises(StorageError) as malformed:
        open_study(f"postgresql://bob:{SECRET}@db:notaport/x", "s")  # the port is not a number
    assert SECRET not in str(malformed.value) and "is not a SQLAlchemy URL" in str(malformed.value)


def test_a_search_result_shows_no_password() -> None:
    best = TrialSummary(0, "COMPLETE", "L1-H16-A2-I32-fp32", 1.0, 0.1, 0.9, 1, 1.0, 1, None, None, False, "flops", True, True, None, "")
    result = SearchResult("s", f"postgresql://bob:{SECRET}@db/x", best, 0.9, 4, "fptas")
    assert SECRET not in repr(result) and SECRET not in str(result.to_dict())
    assert result.to_dict()["storage"] == "postgresql://bob:***@db/x"
    assert result.storage.endswith(f"{SECRET}@db/x")  # the caller's own object keeps what it was given


@pytest.mark.parametrize(
    "args",
    [
        ["--space", "s.yaml", "--storage", f"postgresql://bob:{SECRET}@db/x", "--n-trials", "3"],
        ["--space", "s.yaml", f"--storage=postgresql://bob:{SECRET}@db/x", "--n-trials", "3"],
        ["--space", "s.yaml", "--stor", f"postgresql://bob:{SECRET}@db/x", "--n-trials", "3"],  # argparse's abbreviation
    ],
)
def test_a_job_gets_its_storage_in_the_environment_not_on_its_command_line(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    entrypoint = search_entrypoint(args, sys.executable)
    assert SECRET not in entrypoint
    assert shlex.split(entrypoint)[4:] == ["--space", "s.yaml", "--n-trials", "3"]
    runtime_env = load_runtime_env(None, split_storage(args)[1])
    assert runtime_env["env_vars"][STORAGE_ENV] == f"postgresql://bob:{SECRET}@db/x"


def test_a_job_inherits_the_submitters_storage_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV, f"postgresql://bob:{SECRET}@db/x")
    assert split_storage(["--space", "s.yaml"]) == (["--space", "s.yaml"], None)
    assert load_runtime_env(None, None)["env_vars"][STORAGE_ENV] == f"postgresql://bob:{SECRET}@db/x"
    monkeypatch.delenv(STORAGE_ENV)
    assert STORAGE_ENV not in load_runtime_env(None, None)["env_vars"]
