"""A database password in the storage URL appears in nothing bortnas writes: tested with a real PostgreSQL role.

The role authenticates by password (a pg_hba.conf line for it alone, ahead of the server's trust
lines), so a wrong password is refused: the URL's secret is real. It goes in through
`BORTNAS_STORAGE`; every stdout, stderr, study and trial attribute, `bortnas.json`, the dashboard's
API and its log are then searched for it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from conftest import bortnas, cli_env, search_args
from test_dashboard import free_port, stop, wait_for
from test_workers import postgres_server  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("postgres")]

ROLE = "bortnas_secret"


@pytest.fixture()
def secret_url(postgres_server: str) -> Iterator[tuple[str, str]]:  # noqa: F811
    """(URL with the password, the password) of a database owned by a role that must give its password."""
    import psycopg2
    from sqlalchemy.engine import make_url

    password, database = f"Pw-{uuid.uuid4().hex}", f"bortnas_secret_{uuid.uuid4().hex[:10]}"
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    hba = Path(f"/etc/postgresql/{version}/main/pg_hba.conf")
    rule = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
    if rule not in hba.read_text():
        hba.write_text(rule + hba.read_text())
        subprocess.run(["pg_ctlcluster", version, "main", "reload"], check=True, capture_output=True, timeout=60)
    admin = psycopg2.connect(postgres_server)
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'")
    cursor.execute(("ALTER" if cursor.fetchone() else "CREATE") + f" ROLE {ROLE} LOGIN PASSWORD %s", (password,))
    cursor.execute(f"CREATE DATABASE {database} OWNER {ROLE}")
    url = make_url(postgres_server).set(drivername="postgresql+psycopg2", username=ROLE, password=password, database=database)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        cursor.execute(f"DROP DATABASE {database} WITH (FORCE)")
        admin.close()


def test_no_output_holds_the_storage_password(
    secret_url: tuple[str, str], tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    url, password = secret_url
    env = cli_env(tmp_path, BORTNAS_STORAGE=url)
    seen: list[str] = []

    def run(*args: str, check: bool = True, environment: dict[str, str] = env) -> subprocess.CompletedProcess:
        proc = bortnas(*args, cwd=tmp_path, env=environment, check=check)
        seen.extend([proc.stdout, proc.stderr])
        return proc

    run(*search_args(tiny_bert, tiny_task, tiny_space, "--n-trials", "2", "--format", "json", "-v", quiet=False))
    run("trials", "--study", "tiny", "--format", "json")
    run("export", "--study", "tiny", "--out", "model", "--steps", "5", "--accept-drop", "none", "--format", "json", "-v")
    seen.append((tmp_path / "model" / "bortnas.json").read_text())
    # errors: a study that is not there, a database that is not there, the wrong password (so the password is checked)
    run("export", "--study", "nothing", "--out", "m2", check=False)
    run("trials", "--study", "tiny", "--storage", url.replace("/bortnas_secret_", "/missing_"), check=False)
    wrong = run("trials", "--study", "tiny", "--storage", url.replace(password, "not-the-password"), check=False)
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr and "***" in wrong.stderr, wrong.stderr
    study = optuna.load_study(study_name="tiny", storage=url)
    seen.append(json.dumps(study.user_attrs, default=str))
    seen.extend(json.dumps([t.user_attrs, t.system_attrs, t.params], default=str) for t in study.get_trials())

    port, log = free_port(), tmp_path / "dashboard.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bortnas", "dashboard", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=handle,
            stderr=handle,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        studies = wait_for(f"http://127.0.0.1:{port}/api/studies", proc, log)
        seen.append(json.dumps(studies))
    finally:
        stop(proc)
    seen.append(log.read_text())

    assert [text for text in seen if password in text] == []
    assert any(f"{ROLE}:***@" in text for text in seen)  # the URL is still named, its password hidden
