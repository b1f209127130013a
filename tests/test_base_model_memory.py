"""The loaded base model owns its weights: the checkpoint file does not stay mapped (and resident) after loading."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import pytest
import torch
from bitsandbytes.nn import Params4bit
from transformers import AutoModelForCausalLM

from replica.model.base_model import load_base_model


def mapped_files() -> set[str]:
    """Paths of the files this process has mapped into memory."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6}


@pytest.fixture(scope="module")
def fp32_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model stored in float32, the dtype it is loaded in (the case where transformers loads views of the
    file instead of converted copies, as with a dequantized GGUF base)."""
    folder = tmp_path_factory.mktemp("fp32-model")
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (Path(tiny_model_dir) / name).exists():
            shutil.copy(Path(tiny_model_dir) / name, folder / name)
    return folder


def test_4bit_base_model_leaves_its_checkpoint_unmapped(fp32_model_dir, tiny_model_cfg):
    checkpoint = str((fp32_model_dir / "model.safetensors").resolve())
    model = load_base_model(str(fp32_model_dir), tiny_model_cfg, {"mode": "nf4", "double_quant": True,
                                                                  "compute_dtype": "float32"}, "cpu")
    gc.collect()
    assert any(isinstance(p, Params4bit) for p in model.parameters()), "the real 4-bit path was not taken"
    assert checkpoint not in mapped_files()
    embeddings = model.get_input_embeddings().weight
    assert embeddings.dtype == torch.float32 and torch.isfinite(embeddings).all()


def test_16bit_base_model_leaves_its_checkpoint_unmapped(fp32_model_dir, tiny_model_cfg):
    checkpoint = str((fp32_model_dir / "model.safetensors").resolve())
    model = load_base_model(str(fp32_model_dir), tiny_model_cfg, {"mode": "none"}, "cpu")
    gc.collect()
    assert checkpoint not in mapped_files()
    assert sum(p.numel() for p in model.parameters()) > 0
