"""How long the latency table of a space takes: every candidate built with random weights and timed at batch 1.

`bortnas search` measures this table before any training (docs/guides/budgets.md). This script times it
for a space and a teacher shape without a search, so the figure can be checked on any machine:

    python benchmarks/latency_table.py --space search_spaces/bort_bert_base.yaml --shape bert-base --json out/table.json
    python benchmarks/latency_table.py --space search_spaces/minilm_quick.yaml     # the bundled MiniLM's config

It prints the wall time, the candidates per second, and the fastest and slowest candidates
against the teacher's own shape, with the device, threads and library versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch
import transformers

from bortnas.core.default_teacher import default_teacher_dir
from bortnas.core.space import REFERENCE_SHAPES, ArchSpec, load_search_space
from bortnas.runtime.device import Device
from bortnas.trial.inputs import load_teacher_config
from bortnas.trial.latency_table import measure_table


def teacher_config(shape_name: str | None) -> transformers.PreTrainedConfig:
    """The bundled MiniLM's config, or a BERT config of a reference shape (no weights are needed)."""
    if shape_name is None:
        return load_teacher_config(default_teacher_dir())
    shape = REFERENCE_SHAPES[shape_name]
    config = transformers.BertConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.ffn,
        max_position_embeddings=shape.max_positions,
        type_vocab_size=shape.type_vocab_size,
    )
    with tempfile.TemporaryDirectory() as directory:  # through a directory, as a user's teacher arrives
        config.save_pretrained(directory)
        return load_teacher_config(Path(directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/minilm_quick.yaml")
    parser.add_argument("--shape", choices=sorted(REFERENCE_SHAPES), default=None, help="a reference teacher shape (default: MiniLM)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    space = load_search_space(args.space)
    config = teacher_config(args.shape)
    device = Device.from_name(args.device)
    teacher = ArchSpec(config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size)
    candidates = list(space.candidates())
    table = measure_table(config, candidates, space.maximum_point, teacher, 2, args.max_length, threads=args.threads, device=device)
    ranked = sorted(table.ms.items(), key=lambda kv: kv[1])
    result = {
        "space": args.space,
        "teacher_shape": args.shape or "all-MiniLM-L6-v2",
        "candidates": len(candidates),
        "seconds": table.seconds,
        "candidates_per_second": len(candidates) / table.seconds,
        "teacher_ms": table.teacher_ms,
        "maximum_point_ms": table.maximum_point_ms,
        "fastest": ranked[0],
        "slowest": ranked[-1],
        "seq_len": args.max_length,
        "threads": args.threads,
        "device": device.describe(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(
        f"{args.space}: {len(candidates)} candidates timed in {table.seconds:.1f} s ({result['candidates_per_second']:.1f}/s) on "
        f"{device.describe()}, {args.threads} thread(s), batch 1 x {args.max_length} tokens; teacher {table.teacher_ms:.2f} ms, "
        f"fastest {ranked[0][0]} {ranked[0][1]:.2f} ms, slowest {ranked[-1][0]} {ranked[-1][1]:.2f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**result, "table": table.to_dict()}, indent=1))


if __name__ == "__main__":
    main()
