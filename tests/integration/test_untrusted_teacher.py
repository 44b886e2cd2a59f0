"""A teacher directory is data, never code: remote code is not run, pickled weights are not unpickled as objects.

Each test plants a payload that would write a marker file if bortnas executed it, and runs a real
`bortnas search` on the directory: the marker must not appear, whatever else happens.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import bortnas, search_args

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Pickled into a `.bin` file: unpickling it as an object would run `Path.touch(marker)`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_no_call_in_bortnas_trusts_remote_code() -> None:
    offenders = []
    for path in (REPO / "bortnas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path.relative_to(REPO)}:{node.value.lineno}")
    assert offenders == []


def test_a_teacher_asking_for_its_own_code_does_not_run_it(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    teacher, marker = tmp_path / "teacher", tmp_path / "ran"
    shutil.copytree(tiny_bert, teacher)
    config = json.loads((teacher / "config.json").read_text())
    config["auto_map"] = {
        "AutoModel": "evil.EvilModel",
        "AutoModelForSequenceClassification": "evil.EvilModel",
        "AutoConfig": "evil.EvilConfig",
    }
    (teacher / "config.json").write_text(json.dumps(config))
    (teacher / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--teacher", str(teacher), "--n-trials", "1"), cwd=tmp_path, check=False)
    assert not marker.exists()


def test_a_pickled_payload_in_bin_weights_is_not_run(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    from safetensors.torch import load_file

    teacher, marker = tmp_path / "teacher", tmp_path / "ran"
    shutil.copytree(tiny_bert, teacher)
    state = load_file(str(teacher / "model.safetensors"))
    (teacher / "model.safetensors").unlink()
    torch.save({**state, "payload": _Payload(marker)}, teacher / "pytorch_model.bin")
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--teacher", str(teacher), "--n-trials", "1"), cwd=tmp_path, check=False)
    assert not marker.exists()
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
