"""Role/pad tokens on the real tiny tokenizer and model: a distinct pad, spare embedding rows, no silent resize."""

from __future__ import annotations

import json
import logging

import pytest
from transformers import AutoTokenizer

from replica.errors import ReplicaInputError
from replica.model.base_model import (
    load_base_model,
    load_tokenizer,
    new_token_ids,
    quantization_config,
    resolve_model_path,
    role_tokens,
)
from replica.model.formatting import FORMATS, ChatFormatter
from replica.model.tokens import RoleTokens, add_role_tokens, ensure_embedding_rows

ROLE_STRINGS = ("<|me|>", "<|them|>", "<|eot|>")


def embedding_rows(model_dir) -> int:
    return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"]


@pytest.mark.parametrize("data_format", FORMATS)
def test_load_tokenizer_replaces_the_shipped_pad(tiny_model_dir, tiny_tokenizer, tiny_model_cfg, data_format):
    shipped = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert shipped.pad_token_id == shipped.eos_token_id, "the tiny model mimics DeepSeek-R1-Distill's pad == eos"
    tokenizer = tiny_tokenizer(data_format)
    end_of_turn = {"role_tokens": "<|eot|>", "plain": tokenizer.eos_token, "chat_template": "<|im_end|>"}[data_format]
    assert tokenizer.pad_token == "<|pad|>"
    assert tokenizer.pad_token_id not in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(end_of_turn))
    assert tokenizer.eos_token_id == shipped.eos_token_id
    assert tokenizer.padding_side == "right"


@pytest.mark.parametrize("data_format", FORMATS)
def test_added_tokens_land_in_spare_embedding_rows(tiny_model_dir, tiny_tokenizer, data_format):
    tokenizer = tiny_tokenizer(data_format)
    rows = embedding_rows(tiny_model_dir)
    assert len(tokenizer) <= rows
    added = [tokenizer.pad_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in ROLE_STRINGS
                                        if t in tokenizer.get_vocab()]
    assert all(0 <= i < rows for i in added)


def test_role_tokens_are_single_distinct_tokens_only_for_the_role_format(tiny_tokenizer):
    tokenizer = tiny_tokenizer("role_tokens")
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ROLE_STRINGS]
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids} | {tokenizer.pad_token_id, tokenizer.eos_token_id}) == 5
    text_ids = tokenizer("<|them|>ciao<|eot|><|me|>", add_special_tokens=False)["input_ids"]
    assert text_ids[0] == ids[1][0] and text_ids[-2:] == [ids[2][0], ids[0][0]]
    for data_format in ("plain", "chat_template"):
        vocab = tiny_tokenizer(data_format).get_vocab()
        assert not any(t in vocab for t in ROLE_STRINGS), data_format


@pytest.mark.parametrize("data_format", FORMATS)
def test_new_token_ids_are_the_role_rows_to_train(tiny_tokenizer, tiny_model_cfg, data_format):
    tokenizer = tiny_tokenizer(data_format)
    expected = sorted(tokenizer.convert_tokens_to_ids(t) for t in ROLE_STRINGS) if data_format == "role_tokens" else []
    assert new_token_ids(tokenizer, tiny_model_cfg, data_format) == expected


def test_real_tiny_model_needs_no_resize(tiny_model_dir, tiny_tokenizer, tiny_model_cfg):
    model = load_base_model(str(tiny_model_dir), tiny_model_cfg, {"mode": "none"}, "cpu")
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows == embedding_rows(tiny_model_dir)
    assert ensure_embedding_rows(model, tiny_tokenizer("role_tokens")) is False
    assert model.get_input_embeddings().weight.shape[0] == rows


def test_resize_happens_only_when_the_tokenizer_outgrows_the_model(tiny_model_dir, tiny_model_cfg, caplog):
    model = load_base_model(str(tiny_model_dir), tiny_model_cfg, {"mode": "none"}, "cpu")
    rows = model.get_input_embeddings().weight.shape[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_tokens([f"<|extra_{i}|>" for i in range(rows - len(tokenizer) + 3)], special_tokens=True)
    with caplog.at_level(logging.WARNING, logger="replica.model.tokens"):
        assert ensure_embedding_rows(model, tokenizer) is True
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == rows + 3
    assert "resizing" in caplog.text


def test_add_role_tokens_adds_missing_tokens_once(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    size = len(tokenizer)
    added = add_role_tokens(tokenizer, RoleTokens(), need_roles=True)
    assert added == ["<|me|>", "<|them|>", "<|eot|>", "<|pad|>"]
    assert len(tokenizer) == size + 4 and tokenizer.pad_token == "<|pad|>"
    pad_id = tokenizer.pad_token_id
    assert add_role_tokens(tokenizer, RoleTokens(), need_roles=True) == []
    assert tokenizer.pad_token_id == pad_id and len(tokenizer) == size + 4


def test_without_roles_only_a_distinct_pad_is_added(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert add_role_tokens(tokenizer, RoleTokens(), need_roles=False) == ["<|pad|>"]
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_reserved_tokens_are_reused_without_growing_the_vocabulary(tiny_model_dir):
    """Mistral-style: the role tokens name reserved tokens the tokenizer already has."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reserved = [f"[control_{i}]" for i in range(8, 12)]
    tokenizer.add_tokens(reserved, special_tokens=True)
    size = len(tokenizer)
    tokens = RoleTokens(me=reserved[0], them=reserved[1], eot=reserved[2], pad=reserved[3])
    assert add_role_tokens(tokenizer, tokens, need_roles=True) == []
    assert len(tokenizer) == size
    assert tokenizer.pad_token == "[control_11]"


def test_pad_configured_as_eos_is_a_user_error(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(ReplicaInputError, match="model.role_tokens.pad"):
        add_role_tokens(tokenizer, RoleTokens(pad=tokenizer.eos_token), need_roles=True)


def test_pad_configured_as_end_of_turn_is_refused_before_training(tiny_model_dir, tiny_model_cfg):
    cfg = {**tiny_model_cfg, "role_tokens": {**tiny_model_cfg["role_tokens"], "pad": "<|eot|>"}}
    with pytest.raises(ReplicaInputError):
        tokenizer = load_tokenizer(str(tiny_model_dir), cfg, "role_tokens")
        ChatFormatter(tokenizer, "role_tokens", role_tokens(cfg), 64)


def test_role_tokens_reads_the_model_config(tiny_model_cfg):
    assert role_tokens(tiny_model_cfg) == RoleTokens("<|me|>", "<|them|>", "<|eot|>", "<|pad|>")
    mistral = {"role_tokens": {"me": "[control_8]", "them": "[control_9]", "eot": "[control_10]",
                               "pad": "[control_11]"}}
    assert role_tokens(mistral).eot == "[control_10]"


def test_resolve_model_path_reuses_the_cached_tiny_build(tiny_model_dir, tiny_chat_texts):
    build_args = json.loads((tiny_model_dir / "replica_tiny.json").read_text(encoding="utf-8"))["build_args"]
    path = resolve_model_path({"tiny": build_args}, lambda: tiny_chat_texts, tiny_model_dir.parent)
    assert path == str(tiny_model_dir)


def test_resolve_model_path_of_a_hub_model_reads_no_texts():
    def no_texts():
        raise AssertionError("train texts must not be read for a real model")

    cfg = {"name_or_path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "tiny": None}
    assert resolve_model_path(cfg, no_texts, "unused") == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"


def test_quantization_config_from_quant_group():
    assert quantization_config({"mode": "none"}) is None
    nf4 = quantization_config({"mode": "nf4", "double_quant": True, "compute_dtype": "bfloat16",
                               "quant_storage": "uint8"})
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_use_double_quant
    assert str(nf4.bnb_4bit_compute_dtype) == "torch.bfloat16"
