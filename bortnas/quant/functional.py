"""Quantizers with their straight-through gradients, as the sources define them.

Torch layer, no modules; `bortnas.quant.modules` and `bortnas.quant.attention` call them (an
identity-STE weight quantizer is its `*_codes` here, passed through by `QuantLinear.quantized_weight`).
Each documents its source (docs/algorithms.md §4): int8 (symmetric absmax, as LLM.int8 and torchao's
dynamic int8 define it), BitNet b1.58 (BitBLAS `utils_quant.py`), BiT (`facebookresearch/bit`
`utils_quant.py`) and BiBERT (`htqin/BiBERT` `utils_quant.py`).
"""

from __future__ import annotations

import math

import torch


class _Ctx(torch.autograd.function.FunctionCtx):
    """The `ctx` a Function's forward and backward receive, as these functions use it.

    torch declares no `saved_tensors` on FunctionCtx (and types the runtime context's as a
    1-tuple), and a forward may keep non-tensor state on `ctx` as attributes. A type for the
    checker only, never instantiated.
    """

    saved_tensors: tuple[torch.Tensor, ...]


class _ElasticCtx(_Ctx):
    bounds: tuple[int, int]


class _StraightThrough(torch.autograd.Function):
    """Forward returns `quantized` exactly; backward passes the gradient to `x` unchanged.

    The usual `x + (q - x).detach()` is the same gradient but not bit-exactly q in the forward
    pass; exactness matters because an exported model stores q and must reproduce the logits.
    """

    @staticmethod
    def forward(ctx: _Ctx, x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
        return quantized

    @staticmethod
    def backward(ctx: _Ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def straight_through(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """`quantized` in the forward pass, identity gradient to `x` (no clipping mask)."""
    return _StraightThrough.apply(x, quantized.detach())


# ---------------------------------------------------------------------------------------------
# BitNet b1.58: ternary absmean weights, 8-bit absmax per-token activations, identity STE


def ternary_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes in {-1, 0, 1}, scale) with weight ~= codes * scale; scale = mean|W| (per tensor)."""
    scale = weight.abs().mean().clamp(min=1e-5)
    return (weight / scale).round().clamp(-1, 1), scale


def absmax_codes(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, scale) of per-token (last dim) absmax quantization: x ~= codes / scale, |codes| <= 2^(b-1) - 1.

    The codes are float; `absmax_activation` and the int8 kernel (`bortnas.quant.modules`) share
    this one definition, so the kernel multiplies exactly the values the simulation trained on.
    No clamp: |x| * scale <= q_max by the choice of scale, so one would never bind (and costs a
    pass over the activations on the kernel path).
    """
    q_max = 2 ** (bits - 1) - 1
    scale = q_max / x.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-5)
    return (x * scale).round_(), scale


def absmax_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-token (last dim) absmax quantization to signed `bits`; gradient passes straight through."""
    codes, scale = absmax_codes(x.detach(), bits)
    return straight_through(x, codes / scale)


# ---------------------------------------------------------------------------------------------
# int8: per-row absmax weights (one scale per output channel), 8-bit absmax per-token activations


def int8_row_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes in [-127, 127], per-row scale of shape (rows, 1)) with weight ~= codes * scale; scale = max|W_row| / 127."""
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
    return (weight / scale).round().clamp(-127, 127), scale


# ---------------------------------------------------------------------------------------------
# BiT: BWN weights, elastic binary (LSQ-style) activations


def sign_binary(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, so every value is exactly +-1 (and packs into one bit)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def bwn_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes in {-1, 1}, scale) of BiT's BWN: sign(W - mean W) and mean|W| (per tensor)."""
    return sign_binary(weight - weight.mean()), weight.abs().mean()


class ElasticQuant(torch.autograd.Function):
    """BiT's elastic activation quantizer X_q = alpha * clamp(round(x / alpha), Qn, Qp).

    Signed 1-bit is alpha * sign(x). Gradients (LSQ, as in BiT's code):
    dL/dx = g * 1[Qn <= x/alpha <= Qp] (signed 1-bit: 1[-1 <= x/alpha <= 1]);
    dL/dalpha = sum g * gs * (Qn below the range, Qp above, round(v) - v inside), with
    gs = 1 / sqrt(numel * Qp); signed 1-bit: sum sign(x) * g / sqrt(numel).
    """

    @staticmethod
    def forward(ctx: _ElasticCtx, x: torch.Tensor, alpha: torch.Tensor, q_min: int, q_max: int) -> torch.Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.bounds = (q_min, q_max)
        if (q_min, q_max) == (-1, 1):
            return sign_binary(x) * alpha
        return (x / alpha).round().clamp(q_min, q_max) * alpha

    @staticmethod
    def backward(ctx: _ElasticCtx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        x, alpha = ctx.saved_tensors
        q_min, q_max = ctx.bounds
        v = x / alpha
        if (q_min, q_max) == (-1, 1):
            inside = (v >= -1) & (v <= 1)
            grad_alpha = (sign_binary(x) * grad).sum() / math.sqrt(x.numel())
            return grad * inside.to(grad.dtype), grad_alpha.reshape(alpha.shape), None, None
        below, above = v < q_min, v > q_max
        inside = ~below & ~above
        step = torch.where(below, torch.full_like(v, q_min), torch.where(above, torch.full_like(v, q_max), v.round() - v))
        grad_alpha = (grad * step).sum() / math.sqrt(x.numel() * q_max)
        return grad * inside.to(grad.dtype), grad_alpha.reshape(alpha.shape), None, None


def elastic_bounds(bits: int, signed: bool) -> tuple[int, int]:
    """(Qn, Qp) of BiT's quantizer: signed 1-bit {-1, 1}; signed b-bit [-2^(b-1), 2^(b-1)-1]; unsigned [0, 2^b - 1]."""
    if signed:
        return (-1, 1) if bits == 1 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return 0, 2**bits - 1


def elastic_init(x: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    """BiT's first-batch step size: 2 mean|x| / sqrt(Qp) signed, 4 mean|x| / sqrt(Qp) unsigned."""
    q_max = max(1, elastic_bounds(bits, signed)[1])
    return (2.0 if signed else 4.0) * x.detach().abs().mean().clamp(min=1e-5) / math.sqrt(q_max)


# ---------------------------------------------------------------------------------------------
# BiBERT: row-scaled sign weights, sign activations, Bi-Attention


class ClampSTESign(torch.autograd.Function):
    """sign(x) forward (sign(0) = +1); gradient of clamp(x, -1, 1) backward: g * 1[|x| <= 1]."""

    @staticmethod
    def forward(ctx: _Ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return sign_binary(x)

    @staticmethod
    def backward(ctx: _Ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def bibert_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes in {-1, 1}, per-row scale of shape (rows, 1)) of BiBERT's weight binarization."""
    return sign_binary(weight - weight.mean(dim=1, keepdim=True)), weight.abs().mean(dim=1, keepdim=True)


def bibert_weight(weight: torch.Tensor) -> torch.Tensor:
    """W_B = alpha * sign(W - mean_row W), alpha = mean_row |W| (detached); STE through clamp(W - mean, -1, 1)."""
    alpha = weight.abs().mean(dim=1, keepdim=True).detach()
    centred = weight - weight.mean(dim=1, keepdim=True)
    return alpha * ClampSTESign.apply(centred)


def bibert_activation(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with the clamp STE, no scale."""
    return ClampSTESign.apply(x)


class BoolAttention(torch.autograd.Function):
    """BiBERT's bool(): A = 1[S > 0] forward; STE backward, zeroed where |S| >= 1."""

    @staticmethod
    def forward(ctx: _Ctx, scores: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scores)
        return (scores > 0).to(scores.dtype)

    @staticmethod
    def backward(ctx: _Ctx, grad: torch.Tensor) -> torch.Tensor:
        (scores,) = ctx.saved_tensors
        return grad * (scores.abs() < 1).to(grad.dtype)
