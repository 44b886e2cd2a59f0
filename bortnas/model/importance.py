"""Importance of a teacher's layers, heads, FFN neurons and hidden dimensions.

Torch layer. Every unit gets a multiplicative gate fixed at 1 (forward hooks, so the model is
unchanged); the importance of a unit is the first-order Taylor estimate of the loss change when
its gate drops to 0, |dL/dg|, summed over batches of task data (Michel et al. 2019 for heads,
Molchanov et al. 2017 for neurons). Hidden dimensions share one gate across every module that
writes the residual stream (the family adapter names them: every norm on the stream of a post-norm
family, every sublayer output of a pre-norm one), because the residual stream is one space.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bortnas.families import family_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclasses.dataclass
class Gates:
    """Gate tensors of one model: set entries to 0 to mask units, read `.grad` for importance."""

    layers: torch.Tensor  # (num_layers,)
    heads: torch.Tensor  # (num_layers, num_heads)
    neurons: torch.Tensor  # (num_layers, ffn)
    hidden: torch.Tensor  # (hidden,)

    def parameters(self) -> list[torch.Tensor]:
        return [self.layers, self.heads, self.neurons, self.hidden]


@dataclasses.dataclass
class Importance:
    """Per-unit scores; larger means more important."""

    layers: torch.Tensor
    heads: torch.Tensor
    neurons: torch.Tensor
    hidden: torch.Tensor

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def gated(model: PreTrainedModel, requires_grad: bool = False) -> Iterator[Gates]:
    """Attach unit gates to `model` for the duration of the block (hooks removed on exit)."""
    family = family_of(model.config)
    shape = family.shape(model.config, num_labels=2)
    n_layers, n_heads, head_size = shape.layers, shape.heads, shape.hidden // shape.heads
    device = next(model.parameters()).device
    gates = Gates(
        layers=torch.ones(n_layers, requires_grad=requires_grad, device=device),
        heads=torch.ones(n_layers, n_heads, requires_grad=requires_grad, device=device),
        neurons=torch.ones(n_layers, shape.ffn, requires_grad=requires_grad, device=device),
        hidden=torch.ones(shape.hidden, requires_grad=requires_grad, device=device),
    )
    handles = []
    layer_inputs: dict[int, torch.Tensor] = {}  # each layer's input, from its pre-hook to its hook
    for index, view in enumerate(family.layers(model)):

        def gate_heads(module: nn.Module, args: tuple[Any, ...], index: int = index) -> tuple[Any, ...]:
            context = args[0]
            scale = gates.heads[index].repeat_interleave(head_size).to(context.dtype)
            return (context * scale, *args[1:])

        def gate_neurons(module: nn.Module, args: tuple[Any, ...], index: int = index) -> tuple[Any, ...]:
            return (args[0] * gates.neurons[index].to(args[0].dtype), *args[1:])

        def remember_input(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], index: int = index) -> None:
            layer_inputs[index] = args[0] if args else kwargs["hidden_states"]

        def gate_layer(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any, index: int = index) -> Any:
            residual = layer_inputs.pop(index)
            hidden = output[0] if isinstance(output, tuple) else output  # some families return (hidden, attentions)
            gated_hidden = residual + gates.layers[index] * (hidden - residual)
            return (gated_hidden, *output[1:]) if isinstance(output, tuple) else gated_hidden

        handles.append(view.attention_out.get().register_forward_pre_hook(gate_heads))
        handles.append(view.ffn_out.get().register_forward_pre_hook(gate_neurons))
        handles.append(view.layer.register_forward_pre_hook(remember_input, with_kwargs=True))
        handles.append(view.layer.register_forward_hook(gate_layer, with_kwargs=True))
    for writer in family.residual_writers(model):
        handles.append(writer.register_forward_hook(lambda m, a, out: out * gates.hidden.to(out.dtype)))
    try:
        yield gates
    finally:
        for handle in handles:
            handle.remove()


def compute_importance(
    model: PreTrainedModel,
    batches: Iterable[dict[str, torch.Tensor]],
    loss: Callable[[PreTrainedModel, dict[str, torch.Tensor]], torch.Tensor] | None = None,
) -> Importance:
    """Taylor importance of every unit of a task model on `batches`, for `loss(model, batch)`
    (the task's, `Objective.importance_loss`; default: the loss transformers computes from the
    batch's labels).

    The batches must be on the model's device; the scores come back on the CPU (they are cached
    and only ranked). The model's weights are not changed and receive no gradient.
    """
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with gated(model, requires_grad=True) as gates:
            totals = [torch.zeros_like(g) for g in gates.parameters()]
            for batch in batches:
                value = model(**batch).loss if loss is None else loss(model, batch)
                grads = torch.autograd.grad(value, gates.parameters())
                for total, grad in zip(totals, grads, strict=True):
                    total += grad.abs()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
    return Importance(*(total.cpu() for total in totals))
