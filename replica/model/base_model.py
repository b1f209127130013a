"""Load the base model (4-bit NF4 or plain 16-bit) with `device_map`, and wrap it with LoRA."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from replica.errors import ReplicaInputError
from replica.model.formatting import resolve_format
from replica.model.gguf_base import ensure_gguf_base, is_gguf_reference
from replica.model.tokens import RoleTokens, add_role_tokens
from replica.notices import explain_cpu_4bit

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def role_tokens(model_cfg: Mapping) -> RoleTokens:
    return RoleTokens(**dict(model_cfg["role_tokens"]))


def resolve_model_path(model_cfg: Mapping, train_texts: Callable[[], Sequence[str]], cache_dir: str | Path) -> str:
    """The base model's folder or Hub id.

    `model=tiny` builds (or reuses) a tiny local model from the train split; a `.gguf` file (or `package:` file) is
    dequantized once into a cached safetensors folder.
    """
    if model_cfg.get("tiny"):
        from replica.model.tiny import ensure_tiny_model

        return str(ensure_tiny_model(train_texts(), cache_dir, log=log.info, **dict(model_cfg["tiny"])))
    if is_gguf_reference(model_cfg["name_or_path"]):
        return str(ensure_gguf_base(str(model_cfg["name_or_path"]), cache_dir, model_cfg["dtype"], log=log.info))
    return str(model_cfg["name_or_path"])


def load_tokenizer(path: str, model_cfg: Mapping, data_format: str):
    """Tokenizer with a distinct pad token and, for the role-token format, the role/end-of-turn tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=model_cfg.get("revision"), trust_remote_code=model_cfg.get("trust_remote_code", False)
    )
    tokenizer.padding_side = "right"
    add_role_tokens(tokenizer, role_tokens(model_cfg), need_roles=resolve_format(data_format, tokenizer) == "role_tokens")
    return tokenizer


def quantization_config(quant_cfg: Mapping):
    """transformers' BitsAndBytesConfig from `conf/quant`, or None for plain 16-bit LoRA."""
    if quant_cfg["mode"] == "none":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_cfg["mode"],
        bnb_4bit_use_double_quant=quant_cfg["double_quant"],
        bnb_4bit_compute_dtype=DTYPES[quant_cfg["compute_dtype"]],
        bnb_4bit_quant_storage=DTYPES.get(quant_cfg.get("quant_storage"), torch.uint8),
    )


def load_base_model(path: str, model_cfg: Mapping, quant_cfg: Mapping, device: torch.device | str):
    """The frozen base model, placed by `device_map` (a 4-bit model must never be moved with `.to()`)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "revision": model_cfg.get("revision"),
        "trust_remote_code": model_cfg.get("trust_remote_code", False),
        "device_map": {"": str(device)},
        "dtype": DTYPES[model_cfg["dtype"]],
    }
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg["attn_implementation"]
    quant = quantization_config(quant_cfg)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if str(device) == "cpu":
            explain_cpu_4bit()
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    release_checkpoint_mapping(model)
    return model


def release_checkpoint_mapping(model) -> int:
    """Give CPU weights that still point into the memory-mapped checkpoint their own memory.

    transformers keeps the tensors it did not quantize (embeddings, norms, a 16-bit model's weights) as views of the
    mmap-ed safetensors file, and one view keeps the whole file resident: SmolLM2's 513 MB fp32 checkpoint stayed in
    RSS for the whole run although its 4-bit layers no longer need it. Returns the number of tensors copied.
    """
    from bitsandbytes.nn import Params4bit

    copied = 0
    for tensor in [*model.parameters(), *model.buffers()]:  # each tied weight once
        if tensor.device.type == "cpu" and not isinstance(tensor, Params4bit):
            tensor.data = tensor.data.clone()
            copied += 1
    return copied


def disable_cpu_inference_repacking(model) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference during validation.

    bitsandbytes 0.50 repacks a Linear4bit's weight into an AVX512-BF16 layout on its first eval-mode forward on CPU
    and never converts it back, so the next training step fails ("a view of a leaf Variable…"). Training
    alternates the two, so keep the trainable layout. Returns the number of layers changed.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def new_token_ids(tokenizer, model_cfg: Mapping, data_format: str) -> list[int]:
    """Ids of the role and end-of-turn tokens whose embedding/output rows must be trained."""
    if data_format != "role_tokens":
        return []
    tokens = role_tokens(model_cfg)
    return sorted({tokenizer.convert_tokens_to_ids(t) for t in (tokens.me, tokens.them, tokens.eot)})


def wrap_with_lora(model, lora_cfg: Mapping, token_ids: Sequence[int], *, quantized: bool, gradient_checkpointing: bool):
    """prepare_model_for_kbit_training (non-reentrant checkpointing) + PEFT LoRA + trainable new-token rows."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    ckpt_kwargs = {"use_reentrant": False}
    if quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs=ckpt_kwargs
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
        model.enable_input_require_grads()
    targets = lora_cfg["target_modules"]
    config = LoraConfig(
        r=lora_cfg["r"],
        lora_alpha=lora_cfg["alpha"],
        lora_dropout=lora_cfg["dropout"],
        bias=lora_cfg["bias"],
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type="CAUSAL_LM",
        trainable_token_indices=_token_layers(model, token_ids) if token_ids and lora_cfg["train_new_tokens"] else None,
    )
    return get_peft_model(model, config)


def load_adapter_weights(model, adapter_dir: str | Path) -> None:
    """Set a PEFT model's adapter weights (LoRA matrices, trainable token rows) to those an adapter folder saved
    (a continued run starting from its parent's); one clear error when they do not fit."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    saved = Path(adapter_dir) / "adapter_model.safetensors"
    result = set_peft_model_state_dict(model, load_file(str(saved)))
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    missing = [name for name in result.missing_keys if name in trainable]
    if result.unexpected_keys or missing:
        raise ReplicaInputError(f"the parent's adapter does not fit this model ({len(result.unexpected_keys)} "
                                f"unexpected, {len(missing)} missing weights); train without from_run", path=str(saved))


def _token_layers(model, token_ids: Sequence[int]) -> dict[str, list[int]]:
    """Train the new tokens' input rows and, for untied heads, their output rows too."""
    ids = list(token_ids)
    embed_name = _module_name(model, model.get_input_embeddings())
    layers = {embed_name: ids}
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        layers[_module_name(model, head)] = ids
    return layers


def _module_name(model, module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    raise ValueError("module not found in model")
