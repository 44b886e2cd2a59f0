"""Each quantizer's forward values and gradients on small tensors, computed by hand, through the layers that run them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bortnas.quant import functional as Q
from bortnas.quant.attention import quantized_attention
from bortnas.quant.modules import BiTLinear, BitLinear158, QuantLinear


def _grad(fn, x: torch.Tensor, upstream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (y * upstream).sum().backward()
    return y.detach(), x.grad


def _layer_weight_grad(layer: QuantLinear, weight: torch.Tensor, upstream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight `layer`'s forward multiplies by (`quantized_weight`), and the gradient its latent weight gets."""
    with torch.no_grad():
        layer.weight.copy_(weight)
    y = layer.quantized_weight()
    (y * upstream).sum().backward()
    assert layer.weight.grad is not None
    return y.detach(), layer.weight.grad


def test_ternary_absmean_weight() -> None:
    # mean|W| = (0.5 + 1 + 0.1 + 2) / 4 = 0.9; W / 0.9 rounds to 1, -1, 0, 2 -> clipped to 1
    w = torch.tensor([[0.5, -1.0], [0.1, 2.0]])
    g = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y, grad = _layer_weight_grad(BitLinear158(2, 2, bias=False), w, g)
    torch.testing.assert_close(y, torch.tensor([[0.9, -0.9], [0.0, 0.9]]))
    torch.testing.assert_close(grad, g)  # straight through, no clipping mask
    codes, scale = Q.ternary_codes(w)
    assert codes.tolist() == [[1, -1], [0, 1]] and scale.item() == pytest.approx(0.9)


def test_absmax_8bit_per_token() -> None:
    # token 1: scale 127 / 2; 1 * 63.5 = 63.5 rounds (half to even) to 64 -> 64 / 63.5
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.1, 0.0]])
    y, grad = _grad(Q.absmax_activation, x, torch.ones_like(x))
    torch.testing.assert_close(y[0], torch.tensor([64 / 63.5, -2.0, 32 / 63.5]))
    torch.testing.assert_close(y[1], torch.tensor([0.0, 0.1, 0.0]))  # 0.1 * 1270 = 127 exactly
    torch.testing.assert_close(grad, torch.ones_like(x))


def test_bwn_weight() -> None:
    # mean W = 1, mean|W| = 2.5; sign(W - 1) with sign(0) = +1
    w = torch.tensor([[1.0, -3.0, 2.0, 4.0]])
    y, grad = _layer_weight_grad(BiTLinear(4, 1, bias=False), w, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    torch.testing.assert_close(y, torch.tensor([[2.5, -2.5, 2.5, 2.5]]))
    torch.testing.assert_close(grad, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))  # straight through, no clipping mask


def _elastic(x: list[float], alpha: float, bounds: tuple[int, int], g: list[float]) -> tuple[list[float], list[float], float]:
    xt = torch.tensor(x, requires_grad=True)
    at = torch.tensor(alpha, requires_grad=True)
    y = Q.ElasticQuant.apply(xt, at, *bounds)
    (y * torch.tensor(g)).sum().backward()
    return y.tolist(), xt.grad.tolist(), at.grad.item()


def test_elastic_signed_binary() -> None:
    # X = alpha sign(x); dx = g 1[-1 <= x/alpha <= 1]; dalpha = sum sign(x) g / sqrt(numel) = (1 - 2 + 3 - 4) / 2
    y, dx, da = _elastic([0.5, -2.0, 1.5, -0.25], 1.0, (-1, 1), [1.0, 2.0, 3.0, 4.0])
    assert y == [1.0, -1.0, 1.0, -1.0]
    assert dx == [1.0, 0.0, 0.0, 4.0]
    assert da == pytest.approx(-1.0)


def test_elastic_unsigned_binary() -> None:
    # {0, 1}: X = alpha clamp(round(x/alpha), 0, 1); dalpha = gs (g1 (0 - .2) + g2 (1 - .7) + g3 * 1), gs = 1/sqrt(4 * 1)
    y, dx, da = _elastic([0.2, 0.7, 1.5, -0.3], 1.0, (0, 1), [1.0, 2.0, 3.0, 4.0])
    assert y == [0.0, 1.0, 1.0, 0.0]
    assert dx == [1.0, 2.0, 0.0, 0.0]
    assert da == pytest.approx((-0.2 * 1 + 0.3 * 2 + 3.0) / 2)


def test_elastic_two_bit_signed_with_step() -> None:
    # alpha 0.5, Q in [-2, 1]: v = [1.2, -6, 0.2] -> round/clamp [1, -2, 0]; dalpha: inside round(v)-v, below Qn, above Qp
    y, dx, da = _elastic([0.6, -3.0, 0.1], 0.5, (-2, 1), [1.0, 1.0, 1.0])
    assert y == pytest.approx([0.5, -1.0, 0.0])
    assert dx == [0.0, 0.0, 1.0]
    assert da == pytest.approx((1 + (-2) + (0 - 0.2)) / math.sqrt(3 * 1))


def test_elastic_bounds_and_init() -> None:
    assert Q.elastic_bounds(1, True) == (-1, 1) and Q.elastic_bounds(1, False) == (0, 1)
    assert Q.elastic_bounds(2, True) == (-2, 1) and Q.elastic_bounds(4, False) == (0, 15)
    x = torch.tensor([1.0, -3.0])
    assert Q.elastic_init(x, 1, True).item() == pytest.approx(2 * 2.0)
    assert Q.elastic_init(x, 1, False).item() == pytest.approx(4 * 2.0)
    assert Q.elastic_init(x, 4, False).item() == pytest.approx(4 * 2.0 / math.sqrt(15))


def test_clamp_ste_sign() -> None:
    y, grad = _grad(Q.bibert_activation, torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0]), torch.full((5,), 3.0))
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    assert grad.tolist() == [0.0, 3.0, 3.0, 3.0, 0.0]


def test_bibert_row_scaled_weight() -> None:
    # row means [2, -1], centred [[-1, 1], [-1, 1]], alpha = row mean|W| = [2, 1]
    w = torch.tensor([[1.0, 3.0], [-2.0, 0.0]])
    y, grad = _grad(Q.bibert_weight, w, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(y, torch.tensor([[-2.0, 2.0], [-1.0, 1.0]]))
    # alpha (detached) times the gradient of centring: g - mean_row(g), all |centred| <= 1
    torch.testing.assert_close(grad, torch.tensor([[1.0, -1.0], [-0.5, 0.5]]))
    codes, scale = Q.bibert_codes(w)
    torch.testing.assert_close(codes * scale, y)


def test_bi_attention_two_by_two() -> None:
    # sign Q = [[1, -1], [1, 1]], sign K = [[-1, -1], [1, -1]]: S = [[0, 2], [-2, 0]] / sqrt 2
    q = torch.tensor([[1.0, -2.0], [0.5, 0.5]]).view(1, 1, 2, 2)
    k = torch.tensor([[-1.0, -1.0], [2.0, -3.0]]).view(1, 1, 2, 2)
    v = torch.tensor([[3.0, -1.0], [-0.5, 2.0]]).view(1, 1, 2, 2)
    # A = 1[S > 0] = [[0, 1], [0, 0]]; context = A sign(V) = [[-1, 1], [0, 0]]
    attention = nn.Module().eval()  # what `quantize_attention_` marks on a layer's attention module for BiBERT
    attention.bortnas_attention = "bi"
    context, weights = quantized_attention(attention, q, k, v, None)
    assert context.shape == (1, 2, 1, 2) and weights is None  # (batch, tokens, heads, head_dim), as transformers expects
    assert context.view(2, 2).tolist() == [[-1.0, 1.0], [0.0, 0.0]]
    masked = torch.tensor([0.0, -10000.0]).view(1, 1, 1, 2)
    assert quantized_attention(attention, q, k, v, masked)[0].view(2, 2).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_bool_attention_gradient() -> None:
    scores = torch.tensor([0.0, 1.414, -0.5, -2.0])
    y, grad = _grad(Q.BoolAttention.apply, scores, torch.ones(4))
    assert y.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert grad.tolist() == [1.0, 0.0, 1.0, 0.0]  # zero where |S| >= 1
