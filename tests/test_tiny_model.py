"""The tiny local model must load exactly like a real 7B checkpoint: AutoTokenizer, 4-bit NF4, PEFT LoRA."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, GenerationConfig

from replica.errors import ReplicaInputError
from replica.model.tiny import ensure_tiny_model

TINY = dict(vocab_size=512, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
            max_position=256, pretrain_steps=40, pretrain_batch=8, pretrain_seq=32)

FRAGMENTS = [
    "hola qué tal", "jajaja sí", "mañana a las 5?", "ça va très bien", "à demain 😘", "oui, d'accord",
    "ok 👍🏽", "see you later!", "lol 😂😂", "привет, как дела?", "спасибо", "wie geht's? 🍺", "schön, danke",
    "日本語もOK", "🎉🎉 felicidades", "no sé 🤷‍♀️", "vale vale", "te quiero ❤️", "où es-tu ?", "naïve café",
]


def invented_messages(count: int = 200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(FRAGMENTS, rng.randint(1, 4))) for _ in range(count)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    cache = tmp_path_factory.mktemp("tiny-cache")
    logs: list[str] = []
    path = ensure_tiny_model(invented_messages(), cache, log=logs.append, **TINY)
    assert any("building" in line for line in logs)
    return cache, path, logs


def read_info(path: Path) -> dict:
    return json.loads((path / "replica_tiny.json").read_text(encoding="utf-8"))


def test_cache_hit_reuses_directory_without_rebuilding(built):
    cache, path, _ = built
    weights_mtime = (path / "model.safetensors").stat().st_mtime_ns
    logs: list[str] = []
    again = ensure_tiny_model(invented_messages(), cache, log=logs.append, **TINY)
    assert again == path
    assert path.name.startswith("tiny-qwen2-")
    assert (path / "model.safetensors").stat().st_mtime_ns == weights_mtime
    assert logs == [f"tiny model: reusing cached build {path}"]
    assert [entry.name for entry in cache.iterdir()] == [path.name], "no staging directories left behind"


def test_cache_key_depends_on_text_order_and_arguments(built, tmp_path):
    _, path, _ = built
    reordered = list(reversed(invented_messages()))
    other = ensure_tiny_model(reordered, tmp_path, log=lambda _: None, **{**TINY, "pretrain_steps": 2})
    assert other.name != path.name
    assert read_info(other)["build_args"]["pretrain_steps"] == 2


def test_logs_never_contain_message_text(built):
    _, _, logs = built
    for line in logs:
        assert not any(fragment in line for fragment in FRAGMENTS)


def test_tokenizer_round_trips_unicode_and_emoji(built):
    _, path, _ = built
    tokenizer = AutoTokenizer.from_pretrained(path)
    for text in ["naïve café — Ünïcödé", "🦄 never seen 👨‍👩‍👧 family", "日本語もOK ¿qué?", "  spaces ,  kept "]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens_and_chat_template(built):
    _, path, _ = built
    tokenizer = AutoTokenizer.from_pretrained(path)
    start, end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert tokenizer("<|im_start|>user\nhola<|im_end|>", add_special_tokens=False)["input_ids"][0] == start
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hola 😀"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nhola 😀<|im_end|>\n<|im_start|>assistant\n"
    assert end != start
    assert not any(token.startswith("<|me") for token in tokenizer.get_vocab()), "role tokens are added at run time"


def test_pad_equals_eos_like_deepseek_distill(built):
    """Documents the pitfall the trainer must fix: pad masked as padding would also mask every eos."""
    _, path, _ = built
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    config = AutoConfig.from_pretrained(path)
    generation = GenerationConfig.from_pretrained(path)
    assert config.eos_token_id == config.pad_token_id == generation.eos_token_id == tokenizer.eos_token_id
    assert config.tie_word_embeddings is False


def test_embedding_has_spare_rows_for_added_tokens(built):
    _, path, _ = built
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = AutoConfig.from_pretrained(path).vocab_size
    info = read_info(path)
    assert rows % 64 == 0
    assert rows - len(tokenizer) >= 32
    assert info["spare_rows"] == rows - len(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|me|>", "<|them|>"]})
    assert max(tokenizer.convert_tokens_to_ids(["<|me|>", "<|them|>"])) < rows


def test_pretraining_lowers_loss(built):
    _, path, logs = built
    info = read_info(path)
    assert info["pretrain_loss_end"] < info["pretrain_loss_start"]
    assert info["build_args"] == {"arch": "qwen2", "lr": 3e-3, "seed": 0, **TINY}
    assert any("pretraining loss" in line for line in logs)


def test_loads_through_real_4bit_path_and_trains_lora(built):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model

    _, path, _ = built
    tokenizer = AutoTokenizer.from_pretrained(path)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quantization, device_map={"": "cpu"})
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    batch = tokenizer(["hola qué tal 😀", "ça va très bien"], return_tensors="pt", padding=True)
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    lora = {name: param.grad for name, param in model.named_parameters() if param.requires_grad}
    assert torch.isfinite(loss)
    assert lora and all("lora_" in name for name in lora)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert all(grad is not None and torch.isfinite(grad).all() for grad in lora.values())
    assert any(float(grad.abs().sum()) > 0 for grad in lora.values())


def test_build_is_deterministic_and_leaves_caller_rng_alone(built, tmp_path):
    _, path, _ = built
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    rebuilt = ensure_tiny_model(invented_messages(), tmp_path, log=lambda _: None, **TINY)
    assert torch.equal(torch.rand(3), expected)
    assert rebuilt != path
    for name in ("model.safetensors", "tokenizer.json"):
        assert (rebuilt / name).read_bytes() == (path / name).read_bytes()


def test_llama_arch_builds(tmp_path):
    path = ensure_tiny_model(invented_messages(60), tmp_path, arch="llama", log=lambda _: None,
                             **{**TINY, "pretrain_steps": 3})
    assert path.name.startswith("tiny-llama-")
    assert AutoConfig.from_pretrained(path).model_type == "llama"


def test_crashed_build_leaves_nothing_that_looks_complete(tmp_path):
    def crash_after_pretraining(line: str) -> None:
        if "pretraining loss" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_tiny_model(invented_messages(60), tmp_path, log=crash_after_pretraining, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_reported(tmp_path):
    with pytest.raises(ReplicaInputError, match="unknown tiny model arch"):
        ensure_tiny_model(invented_messages(10), tmp_path, arch="gpt2", log=lambda _: None)
    with pytest.raises(ReplicaInputError, match="no message text"):
        ensure_tiny_model(["", "  "], tmp_path, log=lambda _: None)
    with pytest.raises(ReplicaInputError, match="num_kv_heads"):
        ensure_tiny_model(invented_messages(10), tmp_path, num_heads=4, num_kv_heads=3, log=lambda _: None)
