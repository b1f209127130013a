"""The weights of a live PeftModel (4-bit NF4 or 16/32-bit base, LoRA, trainable token rows) as float32 tensors named
as in the plain transformers model: computed one at a time, read-only, so training continues exactly as before."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from bitsandbytes.functional import dequantize_4bit
from bitsandbytes.nn import Params4bit
from peft.tuners.lora import LoraLayer
from peft.tuners.trainable_tokens import TrainableTokensLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.other import AuxiliaryTrainingWrapper, TrainableTokensWrapper
from torch import nn

from replica.errors import ReplicaInputError


def live_tensors(peft_model, *, adapter: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, float32 tensor) for every weight of the plain model, in state-dict order.

    `adapter`: the model merged with its active adapters (LoRA deltas, trainable token rows); otherwise the base alone.
    A weight that needs no computing is yielded as a detached view of the live tensor: read it, never write to it.
    """
    yield from _module_tensors(peft_model.get_base_model(), "", adapter)


def _module_tensors(module: nn.Module, prefix: str, adapter: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """The plain model's tensors of `module` and its children: a PEFT layer stands for the module it wraps."""
    if isinstance(module, LoraLayer):
        yield from _own_tensors(module.get_base_layer(), prefix, {"weight": _lora_weight(module, adapter)})
    elif isinstance(module, TrainableTokensWrapper):
        tokens = module.token_adapter
        yield from _own_tensors(tokens.base_layer, prefix, {"weight": _token_weight(tokens, adapter)})
    elif isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper)):
        raise ReplicaInputError(
            f"GGUF export of a live model cannot read PEFT's {type(module).__name__} ({prefix or 'model'})"
        )
    else:
        yield from _own_tensors(module, prefix, {})
        for name, child in module.named_children():
            yield from _module_tensors(child, f"{prefix}{name}.", adapter)


def _own_tensors(module: nn.Module, prefix: str,
                 replaced: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    """`module`'s own parameters and persistent buffers (not its children's), `replaced` ones swapped in."""
    for name, tensor in module.named_parameters(recurse=False):
        yield prefix + name, replaced[name] if name in replaced else _as_float(tensor)
    for name, tensor in module.named_buffers(recurse=False):
        if name not in module._non_persistent_buffers_set:
            yield prefix + name, _as_float(tensor)


@torch.no_grad()
def _as_float(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 copy of a bitsandbytes 4-bit weight (dequantized with its quant state), else the tensor as float32."""
    if not isinstance(tensor, Params4bit):
        return tensor.detach().float()
    state = tensor.quant_state
    if getattr(state, "packing_format_for_cpu", False):
        raise ReplicaInputError(
            "a 4-bit weight was repacked for CPU inference (bitsandbytes does so on an eval-mode forward): call "
            "replica.model.base_model.disable_cpu_inference_repacking on the model before its first forward"
        )
    return dequantize_4bit(tensor.data, state).float()


@torch.no_grad()
def _lora_weight(layer: LoraLayer, adapter: bool) -> torch.Tensor:
    """The base weight, plus each active LoRA adapter's delta (PEFT's `get_delta_weight`: scaling, fan_in_fan_out)."""
    _check_unmerged(layer)
    weight = _as_float(layer.get_base_layer().weight)
    if not adapter:
        return weight
    for name in _active(layer, layer.lora_A):
        if layer.lora_variant.get(name) is not None or layer.lora_bias.get(name):
            raise ReplicaInputError(
                f"GGUF export of a live model supports plain LoRA only, not DoRA/variants or lora_bias ({name})"
            )
        weight = weight + layer.get_delta_weight(name).float()  # never in place: `weight` may be the live parameter
    return weight


@torch.no_grad()
def _token_weight(layer: TrainableTokensLayer, adapter: bool) -> torch.Tensor:
    """The embedding (or head) weight, with the active adapters' trained token rows copied in when `adapter`."""
    _check_unmerged(layer)
    if not adapter:
        return _as_float(layer.base_layer.weight)
    return layer.get_merged_weights(_active(layer, layer.token_indices)).float()


def _active(layer: BaseTunerLayer, present) -> list[str]:
    """The layer's active adapters that it holds weights for (`present`: its per-adapter dict)."""
    return [name for name in layer.active_adapters if name in present]


def _check_unmerged(layer: BaseTunerLayer) -> None:
    if layer.merged:
        raise ReplicaInputError("GGUF export of a live model needs its adapters unmerged (call unmerge_adapter first)")
