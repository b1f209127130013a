"""A live training model (4-bit NF4 or plain base + LoRA + trainable role-token rows, built as training builds it)
written to GGUF without touching it: llama.cpp's logits match the PeftModel's with the adapter on and off, the model
and its next training step are unchanged, and a second write replaces the file atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from peft.utils.other import TrainableTokensWrapper
from transformers import AutoModelForCausalLM

from replica.export.llama_cpp_run import load_gguf
from replica.gguf.gguf_file import write_live_gguf, write_tensors
from replica.gguf.live import live_tensors
from replica.model.base_model import (
    disable_cpu_inference_repacking,
    load_base_model,
    load_tokenizer,
    new_token_ids,
    wrap_with_lora,
)
from replica.model.batching import PadCollator
from replica.model.formatting import ChatFormatter
from replica.model.loss import weighted_reply_loss
from replica.model.tokens import RoleTokens, ensure_embedding_rows
from tests.test_export_gguf import make_merged

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "bias": "none", "target_modules": "all-linear", "train_new_tokens": True}
QUANTS = {
    "nf4": {"mode": "nf4", "double_quant": True, "compute_dtype": "float32"},
    "none": {"mode": "none"},
}
SPREAD = 0.05  # std of the noise added to every trainable tensor: LoRA B starts at zero, token rows at the base's
# llama.cpp (load_gguf) keeps its KV cache in f16: keys and values rounded to 11 significant bits move these f32 files'
# logits (|logit| <= ~3.5) by up to 3.1e-3 (measured; 2e-5 with an f32 cache). The adapter moves them by 0.7-2.9,
# the token rows alone by 0.75-1.9: a missing LoRA delta or token row fails by far more than the tolerance.
TOLERANCE = 1e-2
CONTEXTS = [
    [{"role": "them", "text": "ciao, come stai?"}],
    [{"role": "me", "text": "stasera pizza? 🍕"}, {"role": "them", "text": "sì dai"},
     {"role": "me", "text": "ok perfetto 👍"}, {"role": "them", "text": "a domani"}],
]


def live_model(path: Path, model_cfg: dict, tokenizer, quant: str, seed: int = 0):
    """The PeftModel as ReplicaModule.configure_model builds it, in train mode, every trainable tensor moved."""
    base = load_base_model(str(path), model_cfg, QUANTS[quant], "cpu")
    disable_cpu_inference_repacking(base)
    ensure_embedding_rows(base, tokenizer)
    base.config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)  # LoRA A's initialisation
    model = wrap_with_lora(base, LORA, new_token_ids(tokenizer, model_cfg, "role_tokens"), quantized=quant != "none",
                           gradient_checkpointing=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * SPREAD)
    return model.train()


def formatter_of(tokenizer) -> ChatFormatter:
    return ChatFormatter(tokenizer, "role_tokens", RoleTokens(), 128)


def llama_cpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    llm = load_gguf(path, n_ctx=256, logits_all=True)
    try:
        llm.eval(ids)
        return np.asarray(llm.scores[: len(ids)])
    finally:
        llm.close()


def peft_logits(model, ids: list[int], *, adapter: bool) -> np.ndarray:
    """The PeftModel's own forward (eval mode for the call only), with its adapter on or disabled."""
    model.eval()
    try:
        with torch.no_grad():
            if adapter:
                return model(torch.tensor([ids])).logits[0].numpy()
            with model.disable_adapter():
                return model(torch.tensor([ids])).logits[0].numpy()
    finally:
        model.train()


def assert_llama_cpp_matches(model, formatter, path: Path) -> None:
    """The adapter-on and adapter-off files reproduce the PeftModel's logits; the adapter itself matters."""
    for ids in (formatter.prompt_ids(context) for context in CONTEXTS):
        with_adapter, without = peft_logits(model, ids, adapter=True), peft_logits(model, ids, adapter=False)
        assert np.abs(with_adapter - without).max() > 50 * TOLERANCE  # otherwise the comparison proves nothing
        for adapter, expected in ((True, with_adapter), (False, without)):
            write_live_gguf(model, formatter, path, "f32", adapter=adapter, name="live")
            assert np.abs(llama_cpp_logits(path, ids) - expected).max() <= TOLERANCE, adapter


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer("role_tokens")


@pytest.mark.parametrize("quant", ["nf4", "none"])
def test_llama_cpp_logits_match_the_live_model_with_the_adapter_on_and_off(tmp_path, tiny_model_dir, tiny_model_cfg,
                                                                           tokenizer, quant):
    model = live_model(tiny_model_dir, tiny_model_cfg, tokenizer, quant)
    assert isinstance(model.get_base_model().lm_head, TrainableTokensWrapper)  # untied head: its rows train too
    assert_llama_cpp_matches(model, formatter_of(tokenizer), tmp_path / "live.gguf")


def test_a_tied_llama_head_gets_the_trained_rows(tmp_path, tiny_model_cfg):
    folder = make_merged(tmp_path / "base", "llama", tied=True)  # llama: q/k rows permuted for llama.cpp
    tokenizer = load_tokenizer(str(folder), tiny_model_cfg, "role_tokens")
    model = live_model(folder, tiny_model_cfg, tokenizer, "nf4")
    tensors = dict(live_tensors(model, adapter=True))
    assert torch.equal(tensors["lm_head.weight"], tensors["model.embed_tokens.weight"])
    rows = new_token_ids(tokenizer, tiny_model_cfg, "role_tokens")
    assert torch.equal(tensors["lm_head.weight"][rows], model.get_base_model().model.embed_tokens.token_adapter
                       .trainable_tokens_delta["default"])
    assert_llama_cpp_matches(model, formatter_of(tokenizer), tmp_path / "live.gguf")


def test_tensors_are_the_plain_models_and_match_peft_merging(tiny_model_dir, tiny_model_cfg, tokenizer):
    model = live_model(tiny_model_dir, tiny_model_cfg, tokenizer, "none")
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    base = dict(live_tensors(model, adapter=False))
    assert list(base) == list(plain)
    assert all(torch.equal(base[name], plain[name]) for name in plain)
    live = dict(live_tensors(model, adapter=True))
    merged = model.merge_and_unload(progressbar=False).state_dict()  # PEFT's own merge, in place: the model's last use
    assert list(live) == list(merged)
    for name, tensor in merged.items():
        assert torch.allclose(live[name], tensor, atol=1e-6), name


def training_batch(tokenizer) -> dict:
    formatter = formatter_of(tokenizer)
    rows = [formatter.encode(context, "bene 😂 tu?") for context in CONTEXTS]
    return PadCollator(tokenizer.pad_token_id)([{"input_ids": r.input_ids, "labels": r.labels} for r in rows])


def train_step(model, batch) -> float:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = weighted_reply_loss(model, batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_writing_leaves_the_model_and_its_next_training_step_unchanged(tmp_path, tiny_model_dir, tiny_model_cfg,
                                                                       tokenizer):
    exported, untouched = (live_model(tiny_model_dir, tiny_model_cfg, tokenizer, "nf4") for _ in range(2))
    before = {name: tensor.clone() for name, tensor in exported.state_dict().items()}
    flags = [(name, param.requires_grad) for name, param in exported.named_parameters()]
    modes = [(name, module.training) for name, module in exported.named_modules()]
    for quant in ("f32", "q8_0"):
        for adapter in (True, False):
            write_live_gguf(exported, formatter_of(tokenizer), tmp_path / "live.gguf", quant, adapter=adapter,
                            name="live")
    after = exported.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert [(name, param.requires_grad) for name, param in exported.named_parameters()] == flags
    assert [(name, module.training) for name, module in exported.named_modules()] == modes
    assert torch.is_grad_enabled()
    batch = training_batch(tokenizer)
    assert train_step(exported, batch) == train_step(untouched, batch)
    stepped, reference = exported.state_dict(), untouched.state_dict()
    assert all(torch.equal(stepped[name], reference[name]) for name in reference)
    assert any(not torch.equal(stepped[name], before[name]) for name in before)  # the step did train


def dies_halfway(pairs):
    """The pairs, then an error after five of them: a write that fails with the file half written."""
    for index, pair in enumerate(pairs):
        if index == 5:
            raise RuntimeError("interrupted")
        yield pair


def test_a_second_write_replaces_the_file_atomically(tmp_path, tiny_model_dir, tiny_model_cfg, tokenizer):
    model = live_model(tiny_model_dir, tiny_model_cfg, tokenizer, "nf4")
    formatter = formatter_of(tokenizer)
    path = tmp_path / "live.gguf"
    write_live_gguf(model, formatter, path, "f16", adapter=True, name="live")
    first = path.read_bytes()
    with path.open("rb") as reader:  # a llama.cpp process still reading the first file
        write_live_gguf(model, formatter, path, "f16", adapter=False, name="live")
        assert reader.read() == first  # still the whole first file: replaced by a rename, never rewritten in place
    second = path.read_bytes()
    assert second != first and len(second) == len(first)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert {t.name for t in GGUFReader(path).tensors} >= {"token_embd.weight", "output.weight"}

    passes = iter([live_tensors(model, adapter=True), dies_halfway(live_tensors(model, adapter=True))])
    with pytest.raises(RuntimeError, match="interrupted"):  # tensor infos written, the data pass dies
        write_tensors(lambda: next(passes), model.get_base_model().config, formatter, path, "f16", name="live",
                      chat_template=None)
    assert path.read_bytes() == second
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
