"""Where the time of one int8 linear goes on the CPU: the fp32 product against the int8 kernel's parts.

For each (rows, in, out) shape, one thread, median of --repeats calls: the fp32 `F.linear`, the
activation quantization (`absmax_codes` and the cast to int8), `torch._int_mm` alone, and the
whole `Int8Linear` forward on the kernel path. Shows why the eager kernel gains little: on one
memory-bound core the elementwise passes around the integer product cost about as much as the
product saves (docs/benchmarks/quantization.md, "Attempts", attempt 1).

    python benchmarks/int8_linear.py
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from bortnas.quant import functional as Q
from bortnas.quant.modules import Int8Linear
from bortnas.runtime.latency import pinned_threads, wall_clock_ms

SHAPES = ((2048, 1536, 384), (2048, 384, 1536), (64, 384, 1536), (2048, 192, 768))


def timings(rows: int, n_in: int, n_out: int, repeats: int) -> tuple[float, ...]:
    """Median ms of: the fp32 product, quantizing x, `_int_mm` alone, the whole int8 forward."""
    linear = torch.nn.Linear(n_in, n_out)
    int8 = Int8Linear.from_linear(linear)
    x = torch.randn(rows, n_in)
    codes_t = int8._int8_weight()[0]
    x_codes = Q.absmax_codes(x, 8)[0].to(torch.int8)
    runs = (
        lambda: F.linear(x, linear.weight, linear.bias),
        lambda: Q.absmax_codes(x, 8)[0].to(torch.int8),
        lambda: torch._int_mm(x_codes, codes_t),
        lambda: int8(x),
    )
    return tuple(statistics.median(wall_clock_ms(run, 3, repeats)) for run in runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median ms of {args.repeats} calls")
    print(f"{'rows x in x out':<20}{'fp32':>8}{'quantize x':>12}{'_int_mm':>9}{'int8 fwd':>10}")
    torch.manual_seed(0)
    with pinned_threads(args.threads), torch.inference_mode():
        for rows, n_in, n_out in SHAPES:
            figures = timings(rows, n_in, n_out, args.repeats)
            print(f"{f'{rows} x {n_in} x {n_out}':<20}" + "".join(f"{v:>{w}.2f}" for v, w in zip(figures, (8, 12, 9, 10), strict=True)))


if __name__ == "__main__":
    main()
