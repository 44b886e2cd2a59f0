"""Every supported family, side by side: a small random teacher of each is cut to a half-size
candidate, exported as a stock transformers directory, and reloaded in a fresh process without
bortnas.

For each family the table gives the teacher's and the cut's parameters (the formula against
`numel`), the time to cut, the reload time (`from_pretrained` in a process that cannot import
bortnas), the largest logit difference after the reload, and the CPU latency of teacher and cut
(batch 1, 64 tokens, 1 thread, median of 30 interleaved runs), so the cut's speed-up is a ratio
measured in one run.

    python benchmarks/families.py            # writes benchmarks/results/families.json
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from bortnas.core.space import ArchSpec
from bortnas.cost import param_count
from bortnas.families import FAMILIES, family_of
from bortnas.model.extract import extract
from bortnas.model.importance import compute_importance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import tiny_config  # the tests' family configs, at a larger width

RESULTS = Path(__file__).resolve().parent / "results" / "families.json"
TEACHER = {
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "vocab_size": 8000,
    "max_position_embeddings": 128,
}
CUT = ArchSpec(2, 128, 2, 512)
TOKENS, ROUNDS = 64, 30

RELOAD = """
import json, sys, time, torch
sys.modules['bortnas'] = None
from transformers import AutoModelForSequenceClassification
start = time.perf_counter()
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
seconds = time.perf_counter() - start
batch = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save(model(**batch).logits, sys.argv[3])
print(json.dumps({"seconds": seconds, "class": type(model).__name__}))
"""


def teacher_of(family: str) -> PreTrainedModel:
    keys = {
        "distilbert": {"n_layers": 4, "dim": 256, "n_heads": 4, "hidden_dim": 1024, "vocab_size": 8000, "max_position_embeddings": 128},
        "deberta-v2": {**TEACHER, "pooler_hidden_size": 256},
        "modernbert": {**TEACHER, "layer_types": ["full_attention", "sliding_attention"] * 2},
    }.get(family, TEACHER)
    config = tiny_config(family, **keys)
    if family == "electra":
        config.embedding_size = 128
    config.num_labels = 2
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


def batch_for(model: PreTrainedModel, size: int = 1) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 7000, (size, TOKENS), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def latencies(models: list[PreTrainedModel], batch: dict[str, torch.Tensor]) -> list[float]:
    """Median ms per model, the models timed in interleaved rounds so that drift hits all alike."""
    times: list[list[float]] = [[] for _ in models]
    with torch.no_grad():
        for _ in range(5):
            for model in models:
                model(**batch)
        for _ in range(ROUNDS):
            for i, model in enumerate(models):
                start = time.perf_counter()
                model(**batch)
                times[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def measure(family: str, directory: Path) -> dict[str, object]:
    teacher = teacher_of(family)
    shape = family_of(teacher.config).shape(teacher.config, 2)
    labelled = {**batch_for(teacher, 8), "labels": torch.tensor([0, 1] * 4)}
    importance = compute_importance(teacher, [labelled])
    start = time.perf_counter()
    student, _ = extract(teacher, importance, CUT)
    cut_seconds = time.perf_counter() - start
    student.save_pretrained(directory)
    batch = batch_for(student)
    torch.save(batch, directory / "batch.pt")
    # a separate process on purpose: it must load the export with stock transformers, bortnas unimportable there
    script = [sys.executable, "-c", RELOAD, str(directory), str(directory / "batch.pt"), str(directory / "logits.pt")]
    reloaded = json.loads(subprocess.run(script, capture_output=True, text=True, check=True).stdout)
    with torch.no_grad():
        difference = (torch.load(directory / "logits.pt") - student(**batch).logits).abs().max().item()
    teacher_ms, cut_ms = latencies([teacher, student], batch)
    return {
        "family": family,
        "class": reloaded["class"],
        "teacher_params": sum(p.numel() for p in teacher.parameters()),
        "teacher_params_formula": param_count(shape.as_spec(), shape).total,
        "cut": CUT.key,
        "cut_params": sum(p.numel() for p in student.parameters()),
        "cut_params_formula": param_count(CUT, shape).total,
        "cut_seconds": round(cut_seconds, 3),
        "reload_seconds": round(reloaded["seconds"], 3),
        "reload_max_abs_logit_difference": difference,
        "teacher_ms": round(teacher_ms, 3),
        "cut_ms": round(cut_ms, 3),
        "speedup": round(teacher_ms / cut_ms, 2),
    }


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            row = measure(family, Path(tmp) / family)
            rows.append(row)
            print(
                f"{family:12s} {row['class']:38s} params {row['teacher_params']:>9,} -> {row['cut_params']:>8,} "
                f"cut {row['cut_seconds']:.3f}s reload {row['reload_seconds']:.3f}s "
                f"diff {row['reload_max_abs_logit_difference']:.1e} {row['teacher_ms']:.2f} -> {row['cut_ms']:.2f} ms "
                f"({row['speedup']:.2f}x)",
                flush=True,
            )
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, torch {torch.__version__}"
    RESULTS.write_text(json.dumps({"machine": machine, "teacher": TEACHER, "tokens": TOKENS, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
