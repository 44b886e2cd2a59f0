"""`bortnas dashboard` as a real server process: it lists the study and serves every trial's attributes over its HTTP API."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_BEST, FAKE_SCORES, make_scored_study

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(url: str, proc: subprocess.Popen, log: Path) -> Any:
    """The JSON at `url` once the server answers; fails early if the process died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"bortnas dashboard exited {proc.returncode} before serving:\n{log.read_text()}")
        try:
            return get_json(url)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {STARTUP_TIMEOUT_S} s:\n{log.read_text()}") from None
            time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, repeated as a user would: wsgiref swallows a KeyboardInterrupt that lands while it still sends a response."""
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()
    raise AssertionError("bortnas dashboard did not stop on Ctrl-C")


def test_dashboard_lists_the_study_and_its_trial_attributes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'bortnas.db'}"
    make_scored_study(storage)
    port = free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        # A shell that starts jobs in the background may ignore SIGINT; restore the default so Python turns it into Ctrl-C.
        proc = subprocess.Popen(
            [sys.executable, "-m", "bortnas", "dashboard", "--storage", storage, "--port", str(port)],
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        studies = wait_for(f"http://127.0.0.1:{port}/api/studies", proc, err)
        names = {s["study_name"]: s["study_id"] for s in studies["study_summaries"]}
        assert list(names) == ["fake"]
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{names['fake']}")
        attrs = {t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]}
        best = attrs[FAKE_BEST]
        for key in ("w", "size_bits_non_embedding", "size_mib", "flops", "latency_ms", "error", "candidate", "key"):
            assert key in best, key
        layers, hidden, heads, ffn, quant, p, _, latency_ms, error = FAKE_SCORES[2]
        assert json.loads(best["candidate"]) == {"layers": layers, "hidden": hidden, "heads": heads, "ffn": ffn, "quant": quant}
        assert (float(best["size_bits_non_embedding"]), float(best["latency_ms"]), float(best["error"])) == (p, latency_ms, error)
        assert float(best["w"]) == max(float(a["w"]) for a in attrs.values() if "w" in a)
        assert [t["number"] for t in detail["best_trials"]] == [FAKE_BEST]
    finally:
        stop(proc)
    assert proc.returncode == 0, err.read_text()
    assert out.read_text() == ""  # stdout carries results only; the server logs to stderr
    assert f"http://127.0.0.1:{port}/" in err.read_text()


def test_a_missing_storage_file_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    proc = subprocess.run(
        [sys.executable, "-m", "bortnas", "dashboard", "--storage", f"sqlite:///{missing}", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bortnas dashboard: error: --storage") and "does not exist" in lines[0], proc.stderr
    assert proc.stdout == ""
    assert not missing.exists()
