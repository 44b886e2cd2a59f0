"""`bortnas submit` against a real one-machine Ray head started by the test, with token authentication on.

The head gets its own ports, temp dir and token file, and only its own processes are stopped afterwards:
`ray stop` would stop every Ray process of the machine, other sessions' included.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import bortnas, completed, one_line_error, search_args

pytest.importorskip("ray.job_submission")

# one xdist worker runs every Ray test in turn (`-n 2 --dist loadgroup`): one Ray at a time on the machine's cores,
# and the module's head is started once
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ray")]

RAY = Path(sys.executable).with_name("ray")


@dataclass(frozen=True)
class Head:
    address: str
    gcs: str  # what `ray.init(address=...)` and `bortnas search --backend ray --address` take
    env: dict[str, str]  # what a client of this head needs: RAY_AUTH_MODE=token and the path of the head's token


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def client_env(token: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    root = tmp_path_factory.mktemp("ray_head")
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = client_env(token)
    # Ray's Unix socket paths live under the temp dir and must stay under 108 bytes: pytest's tmp_path is too deep.
    temp_dir = Path(tempfile.mkdtemp(prefix="bortnas-ray-"))
    # Fixed defaults (client server 10001, dashboard agent 52365) would clash with any other head of the machine;
    # the client server port must also lie outside the worker range 10002-19999, which ephemeral ports do.
    port, dashboard, client_server, agent = free_ports(4)
    log = (root / "head.log").open("w")
    head = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            "--port",
            str(port),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--ray-client-server-port",
            str(client_server),
            "--dashboard-agent-listen-port",
            str(agent),
            "--num-cpus",
            "2",
            "--disable-usage-stats",
            "--temp-dir",
            str(temp_dir),
        ],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (root / "head.log").read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{(root / 'head.log').read_text()}")
            time.sleep(0.5)
        yield Head(f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{port}", env)
    finally:
        head.terminate()  # `ray start --block` stops the processes it started when it gets SIGTERM
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of its session outlived it (gcs_server and raylet may ignore SIGTERM)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bortnas", "submit", *args], env=env, capture_output=True, text=True, timeout=300)


def test_submitted_search_fills_the_study(ray_head: Head, tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = tmp_path / "jobs.db"
    runtime_env = tmp_path / "runtime_env.yaml"
    runtime_env.write_text(f"env_vars:\n  BORTNAS_CACHE: {tmp_path / 'cache'}\n")
    args = search_args(tiny_bert, tiny_task, tiny_space, "--n-trials", "2", "--storage", f"sqlite:///{storage}")[1:]
    submitted = submit("--address", ray_head.address, "--runtime-env", str(runtime_env), "--no-wait", "--", *args, env=ray_head.env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("raysubmit_"), submitted.stdout

    followed = submit("--logs", job_id, "--address", ray_head.address, "-q", env=ray_head.env)
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "best trial" in followed.stdout  # the search's own result line, relayed from the job's log
    trials = completed(storage, "tiny")
    assert len(trials) == 2 and len({t.user_attrs["arch_id"] for t in trials}) == 2
    assert (tmp_path / "cache").is_dir()  # the runtime env's BORTNAS_CACHE reached the job


def test_failed_search_exits_1(ray_head: Head, tmp_path: Path) -> None:
    proc = submit("--address", ray_head.address, "-q", "--", "--space", str(tmp_path / "missing.yaml"), env=ray_head.env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].startswith("raysubmit_")  # the id comes first, the followed log after it
    assert "missing.yaml" in proc.stdout
    one_line_error(proc, 1, "ended FAILED: the search exited with code 2")


def test_wrong_token_and_unknown_job_are_one_line_errors(ray_head: Head, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    one_line_error(submit("--logs", "raysubmit_x", "--address", ray_head.address, env=client_env(wrong)), 2, "token authentication")
    one_line_error(submit("--logs", "raysubmit_x", "--address", ray_head.address, env=ray_head.env), 2, "raysubmit_x does not exist")


def test_no_search_args_exits_2(tmp_path: Path) -> None:
    one_line_error(submit("--address", "http://127.0.0.1:8265", env=dict(os.environ)), 2, "after `--`")
    one_line_error(submit("--", "search", "--space", "x.yaml", env=dict(os.environ)), 2, "without the word `search`")


def test_unreachable_address_is_one_line(tmp_path: Path) -> None:
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    (port,) = free_ports(1)
    proc = submit("--address", f"http://127.0.0.1:{port}", "--", "--space", "x.yaml", env=client_env(token))
    one_line_error(proc, 2, f"cannot reach a Ray dashboard at http://127.0.0.1:{port}")


def test_ray_backend_joins_the_head(ray_head: Head, tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = tmp_path / "join.db"
    args = search_args(
        tiny_bert,
        tiny_task,
        tiny_space,
        "--n-trials",
        "3",
        "--storage",
        f"sqlite:///{storage}",
        "--backend",
        "ray",
        "--address",
        ray_head.gcs,
        "--strategy",
        "random",
    )
    proc = bortnas(*args, cwd=tmp_path, env={**ray_head.env, "BORTNAS_CACHE": str(tmp_path / "cache")}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = completed(storage, "tiny")
    assert len(trials) == 3 and len({t.user_attrs["arch_id"] for t in trials}) == 3
    assert {t.user_attrs["backend"] for t in trials} == {"ray"}
