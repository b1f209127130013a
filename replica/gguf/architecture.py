"""Which model architectures export to GGUF, their hyperparameter keys and how their tensors are named and laid out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import gguf
import numpy as np
import torch

from replica.errors import ReplicaInputError


@dataclass(frozen=True)
class Architecture:
    """A Hugging Face `model_type` and the llama.cpp architecture that runs it."""

    gguf_arch: gguf.MODEL_ARCH
    permute_qk: bool  # llama.cpp's llama graph rotates adjacent pairs; HF stores the halves split (qwen2: NeoX, as is)


ARCHITECTURES = {
    "llama": Architecture(gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "mistral": Architecture(gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "qwen2": Architecture(gguf.MODEL_ARCH.QWEN2, permute_qk=False),
}
ROPE_TYPES = ("default", "linear", "llama3", "yarn")


def architecture_of(config) -> Architecture:
    """The export recipe for a transformers config; one clear error for an architecture llama.cpp export lacks."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ReplicaInputError(
            f"unsupported architecture {model_type!r} for GGUF export: supported are {', '.join(ARCHITECTURES)}"
        )
    rope = rope_parameters(config)
    if rope.get("rope_type", "default") not in ROPE_TYPES:
        raise ReplicaInputError(
            f"unsupported RoPE scaling {rope.get('rope_type')!r} for GGUF export: supported are {', '.join(ROPE_TYPES)}"
        )
    return ARCHITECTURES[model_type]


def arch_name(arch: Architecture) -> str:
    """The `general.architecture` string, e.g. ``llama``."""
    return gguf.MODEL_ARCH_NAMES[arch.gguf_arch]


def rope_parameters(config) -> dict:
    """RoPE base and scaling as one dict, from transformers 5's `rope_parameters` or older `rope_theta`/`rope_scaling`."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    if "rope_theta" not in params:
        params["rope_theta"] = getattr(config, "rope_theta", 10000.0)
        params.update(getattr(config, "rope_scaling", None) or {})
    if "type" in params and "rope_type" not in params:
        params["rope_type"] = params.pop("type")
    return params


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def write_hyperparameters(writer: gguf.GGUFWriter, config, rows: int) -> None:
    """Every hyperparameter key llama.cpp reads for these architectures (a missing one silently defaults)."""
    dim = head_dim(config)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_key_length(dim)
    writer.add_value_length(dim)
    writer.add_rope_dimension_count(dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(rows)
    rope = rope_parameters(config)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    kind = rope.get("rope_type", "default")
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))


def llama3_rope_factors(config) -> np.ndarray:
    """Per-frequency divisors of the RoPE base for Llama 3.1-style scaling (llama.cpp's `rope_freqs` tensor)."""
    rope = rope_parameters(config)
    dim, base = head_dim(config), float(rope["rope_theta"])
    factor, low, high = float(rope["factor"]), float(rope["low_freq_factor"]), float(rope["high_freq_factor"])
    original = float(rope["original_max_position_embeddings"])
    divisors = []
    for i in range(0, dim, 2):
        wavelength = 2 * math.pi * base ** (i / dim)
        if wavelength < original / high:
            divisors.append(1.0)
        elif wavelength > original / low:
            divisors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(divisors, dtype=np.float32)


def gguf_tensors(tensors: Iterable[tuple[str, torch.Tensor]], config,
                 arch: Architecture) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) for every (HF name, tensor) of a model with `config`, q/k rows reordered where
    llama.cpp expects it; one tensor at a time, on CPU."""
    names = gguf.get_tensor_name_map(arch.gguf_arch, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    for hf_name, tensor in tensors:
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ReplicaInputError(f"the model holds a tensor GGUF export cannot place ({hf_name}); nothing was written")
        data = tensor.detach().to("cpu", torch.float32)
        projection = hf_name.rsplit(".", 2)[-2]
        if arch.permute_qk and projection in ("q_proj", "k_proj"):
            data = interleave_rotary_halves(data, heads if projection == "q_proj" else kv_heads)
        yield name, data.numpy()
    if rope_parameters(config).get("rope_type") == "llama3":
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(config)


def interleave_rotary_halves(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Reorder each head's rows from HF's [first halves | second halves] to llama.cpp's interleaved pairs."""
    rows = weight.shape[0]
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)
