"""ChatFormatter on the real tiny tokenizer: loss only on the reply + end-of-turn, truncation, prompts, cleaning."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from replica.errors import ReplicaInputError
from replica.model.base_model import load_tokenizer
from replica.model.formatting import FORMATS, IGNORE_INDEX, ChatFormatter, Encoded
from replica.model.tokens import RoleTokens

EOS = "<|endoftext|>"
ROLE_TOKENS = RoleTokens()  # the tiny config's me/them/eot/pad strings
CONTEXT = [
    {"role": "them", "text": "ciao! stasera pizza? 🍕"},
    {"role": "me", "text": "sì dai, a che ora?"},
    {"role": "them", "text": "alle 8 da Gino 😋"},
]
REPLY = "perfetto 👍 ci vediamo lì"
LONG_CONTEXT = [
    {"role": "them" if i % 2 == 0 else "me", "text": text}
    for i, text in enumerate([
        "hey, what's up?", "not much, you?", "andiamo al mare? 🏖️", "piove di nuovo ☔",
        "film stasera? 🎬", "perché no", "ok, alle 9 da me 🍿",
    ])
]


def formatter(tiny_tokenizer, data_format: str, max_length: int = 256) -> ChatFormatter:
    return ChatFormatter(tiny_tokenizer(data_format), data_format, ROLE_TOKENS, max_length)


def expected_supervised(data_format: str, reply: str) -> str:
    """What the loss must cover: the reply and the marker that closes it, nothing else."""
    return {"role_tokens": f"{reply}<|eot|>", "plain": f" {reply}{EOS}", "chat_template": f"{reply}<|im_end|>"}[
        data_format
    ]


def split_prompt(encoded: Encoded) -> int:
    """Length of the unsupervised prefix; asserts the labels are -100 there and equal the ids after it."""
    start = next(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in encoded.labels[:start])
    assert encoded.labels[start:] == encoded.input_ids[start:], "every reply token must be supervised"
    return start


def supervised_text(tokenizer, encoded: Encoded) -> str:
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE_INDEX], skip_special_tokens=False)


@pytest.mark.parametrize("data_format", FORMATS)
def test_loss_covers_exactly_reply_and_end_of_turn(tiny_tokenizer, data_format):
    fmt = formatter(tiny_tokenizer, data_format)
    encoded = fmt.encode(CONTEXT, REPLY)
    start = split_prompt(encoded)
    assert supervised_text(fmt.tokenizer, encoded) == expected_supervised(data_format, REPLY)
    assert encoded.input_ids[-1] == encoded.labels[-1] == fmt.end_of_turn_id
    prompt_text = fmt.tokenizer.decode(encoded.input_ids[:start], skip_special_tokens=False)
    assert all(turn["text"] in prompt_text for turn in CONTEXT)
    assert REPLY not in prompt_text
    assert encoded.context_turns == len(CONTEXT)


@pytest.mark.parametrize("data_format", FORMATS)
def test_reply_containing_pad_and_eos_strings_keeps_every_token_supervised(tiny_tokenizer, data_format):
    fmt = formatter(tiny_tokenizer, data_format)
    tokenizer = fmt.tokenizer
    reply = f"ok {EOS} poi {tokenizer.pad_token} ciao"
    encoded = fmt.encode(CONTEXT, reply)
    start = split_prompt(encoded)
    completion = encoded.labels[start:]
    assert supervised_text(tokenizer, encoded) == expected_supervised(data_format, reply)
    assert tokenizer.pad_token_id in completion and tokenizer.eos_token_id in completion
    assert completion[-1] == fmt.end_of_turn_id


@pytest.mark.parametrize("data_format", FORMATS)
def test_pad_is_distinct_from_eos_and_end_of_turn(tiny_tokenizer, data_format):
    fmt = formatter(tiny_tokenizer, data_format)
    pad = fmt.tokenizer.pad_token_id
    assert pad not in (fmt.tokenizer.eos_token_id, fmt.end_of_turn_id)
    assert fmt.end_of_turn_id in fmt.stop_token_ids and fmt.tokenizer.eos_token_id in fmt.stop_token_ids
    assert pad not in fmt.stop_token_ids
    assert fmt.end_of_turn == {"role_tokens": "<|eot|>", "plain": EOS, "chat_template": "<|im_end|>"}[data_format]


def test_role_tokens_rendering(tiny_tokenizer):
    fmt = formatter(tiny_tokenizer, "role_tokens")
    text = fmt.tokenizer.decode(fmt.encode(CONTEXT, REPLY).input_ids, skip_special_tokens=False)
    assert text == (
        "<|them|>ciao! stasera pizza? 🍕<|eot|><|me|>sì dai, a che ora?<|eot|><|them|>alle 8 da Gino 😋<|eot|>"
        f"<|me|>{REPLY}<|eot|>"
    )


def test_plain_rendering_follows_the_mistral_reference(tiny_tokenizer):
    fmt = formatter(tiny_tokenizer, "plain")
    text = fmt.tokenizer.decode(fmt.encode(CONTEXT, REPLY).input_ids, skip_special_tokens=False)
    assert text == f"B: ciao! stasera pizza? 🍕\nA: sì dai, a che ora?\nB: alle 8 da Gino 😋\nA: {REPLY}{EOS}"


def test_plain_format_accepts_eos_that_is_also_the_unk_token(tiny_model_dir, tiny_model_cfg):
    """transformers' Qwen2Tokenizer defaults unk to <|endoftext|>; EOS is still a real single token."""
    tokenizer = load_tokenizer(str(tiny_model_dir), tiny_model_cfg, "plain")
    assert tokenizer.unk_token_id == tokenizer.eos_token_id  # the situation this test is about
    fmt = ChatFormatter(tokenizer, "plain", ROLE_TOKENS, 64)
    assert fmt.end_of_turn_id == tokenizer.eos_token_id


def test_chat_template_rendering_uses_the_tokenizer_template(tiny_tokenizer):
    fmt = formatter(tiny_tokenizer, "chat_template")
    text = fmt.tokenizer.decode(fmt.encode(CONTEXT, REPLY).input_ids, skip_special_tokens=False)
    assert text == (
        "<|im_start|>user\nciao! stasera pizza? 🍕<|im_end|>\n<|im_start|>assistant\nsì dai, a che ora?<|im_end|>\n"
        f"<|im_start|>user\nalle 8 da Gino 😋<|im_end|>\n<|im_start|>assistant\n{REPLY}<|im_end|>"
    )


@pytest.mark.parametrize("data_format", FORMATS)
def test_truncation_drops_oldest_turns_first_and_never_the_reply(tiny_tokenizer, data_format):
    unbounded = formatter(tiny_tokenizer, data_format, max_length=4096)
    full = unbounded.encode(LONG_CONTEXT, REPLY)
    shortest = unbounded.encode(LONG_CONTEXT[-1:], REPLY)
    step = 2 if data_format == "chat_template" else 1  # the template drops a user+assistant pair at a time
    previous_turns = 0
    for max_length in range(len(shortest.input_ids), len(full.input_ids) + 1):
        encoded = formatter(tiny_tokenizer, data_format, max_length).encode(LONG_CONTEXT, REPLY)
        kept = encoded.context_turns
        assert len(encoded.input_ids) <= max_length
        assert supervised_text(unbounded.tokenizer, encoded) == expected_supervised(data_format, REPLY)
        assert encoded.input_ids == unbounded.encode(LONG_CONTEXT[-kept:], REPLY).input_ids, "a suffix of turns"
        assert kept >= previous_turns
        if kept < len(LONG_CONTEXT):
            assert len(unbounded.encode(LONG_CONTEXT[-(kept + step):], REPLY).input_ids) > max_length
        previous_turns = kept
    assert previous_turns == len(LONG_CONTEXT)


@pytest.mark.parametrize("data_format", FORMATS)
def test_reply_that_fits_alone_is_kept_with_no_context(tiny_tokenizer, data_format):
    unbounded = formatter(tiny_tokenizer, data_format, max_length=4096)
    max_length = len(unbounded.encode(LONG_CONTEXT[-1:], REPLY).input_ids) - 1
    encoded = formatter(tiny_tokenizer, data_format, max_length).encode(LONG_CONTEXT, REPLY)
    assert encoded is not None, "the reply fits: only the context should be dropped"
    assert encoded.context_turns == 0
    assert supervised_text(unbounded.tokenizer, encoded) == expected_supervised(data_format, REPLY)


@pytest.mark.parametrize("data_format", FORMATS)
def test_reply_that_cannot_fit_returns_none(tiny_tokenizer, data_format):
    long_reply = " ".join(["ahahah 😂 che figata, ci vediamo domani al bar sotto casa"] * 4)
    reply_tokens = len(tiny_tokenizer(data_format)(long_reply, add_special_tokens=False)["input_ids"])
    fmt = formatter(tiny_tokenizer, data_format, max_length=reply_tokens)  # no room for the end-of-turn marker
    assert fmt.encode(CONTEXT, long_reply) is None
    assert fmt.encode([], long_reply) is None


@pytest.mark.parametrize("data_format", FORMATS)
def test_prompt_ids_equal_the_training_prefix(tiny_tokenizer, data_format):
    fmt = formatter(tiny_tokenizer, data_format)
    encoded = fmt.encode(CONTEXT, REPLY)
    prompt = fmt.prompt_ids(CONTEXT)
    assert prompt == encoded.input_ids[: split_prompt(encoded)]
    opener = {"role_tokens": "<|me|>", "plain": "A:", "chat_template": "<|im_start|>assistant\n"}[data_format]
    assert fmt.tokenizer.decode(prompt, skip_special_tokens=False).endswith(opener)


@pytest.mark.parametrize("data_format", FORMATS)
def test_clean_reply_cuts_at_every_stop_marker(tiny_tokenizer, data_format):
    fmt = formatter(tiny_tokenizer, data_format)
    markers = [fmt.end_of_turn, EOS, *fmt.stop_strings]
    for marker in markers:
        assert fmt.clean_reply(f"  sì dai 👍 {marker} altro testo") == "sì dai 👍", marker
    assert fmt.clean_reply(f"prima{markers[-1]}dopo{markers[0]}") == "prima", "the earliest marker wins"
    assert fmt.clean_reply("  tutto bene, tu?\n") == "tutto bene, tu?"


def test_clean_reply_cuts_at_the_other_roles_markers(tiny_tokenizer):
    assert formatter(tiny_tokenizer, "role_tokens").clean_reply("ok<|them|>no") == "ok"
    assert formatter(tiny_tokenizer, "role_tokens").clean_reply("ok<|me|>ancora") == "ok"
    assert formatter(tiny_tokenizer, "chat_template").clean_reply("ok<|im_start|>user\nno") == "ok"
    assert formatter(tiny_tokenizer, "plain").clean_reply("ok va bene\nB: no\nA: sì") == "ok va bene"


def test_unknown_format_is_a_user_error(tiny_tokenizer):
    with pytest.raises(ReplicaInputError, match="data.format='xml'"):
        formatter(tiny_tokenizer, "xml")


def test_chat_template_format_needs_a_template(tiny_model_dir, tiny_model_cfg):
    tokenizer = load_tokenizer(str(tiny_model_dir), tiny_model_cfg, "chat_template")
    tokenizer.chat_template = None
    with pytest.raises(ReplicaInputError, match="role_tokens"):
        ChatFormatter(tokenizer, "chat_template", ROLE_TOKENS, 64)


def test_shipped_tokenizer_with_pad_equal_to_eos_is_refused(tiny_model_dir):
    shipped = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert shipped.pad_token_id == shipped.eos_token_id
    with pytest.raises(ReplicaInputError, match="pad token equals EOS"):
        ChatFormatter(shipped, "chat_template", ROLE_TOKENS, 64)


# ---- relationships ---------------------------------------------------------------------------------------------
GROUP_CONTEXT = [{"role": "them", "text": "chi viene stasera?", "speaker": "contact_2"},
                 {"role": "me", "text": "io!"}, {"role": "them", "text": "anche io", "speaker": "contact_5"}]
# Where the relationship line sits in each format's prompt (the tiny template is ChatML: a system message).
HEADERS = {"role_tokens": "to: {}<|eot|><|them|>", "plain": "[to: {}]\nB:", "chat_template": "<|im_start|>system\nto: {}<|im_end|>"}


@pytest.mark.parametrize("data_format", FORMATS)
def test_the_relationship_line_opens_the_prompt_and_the_loss_stays_on_the_reply(tiny_tokenizer, data_format):
    labelled = ChatFormatter(tiny_tokenizer(data_format), data_format, ROLE_TOKENS, 256, relationship_in_prompt=True,
                             labels=["friend", "family"])
    encoded = labelled.encode(CONTEXT, REPLY, "family")
    start = split_prompt(encoded)
    assert supervised_text(labelled.tokenizer, encoded) == expected_supervised(data_format, REPLY)
    prompt = labelled.tokenizer.decode(encoded.input_ids[:start], skip_special_tokens=False)
    assert prompt.count("to: family") == 1 and HEADERS[data_format].format("family") in prompt
    assert labelled.prompt_ids(CONTEXT, "family") == encoded.input_ids[:start]  # generation sees the training prompt
    # an ablation run (no label in its prompts) encodes exactly as a run without relationships
    ablation = ChatFormatter(tiny_tokenizer(data_format), data_format, ROLE_TOKENS, 256, labels=["friend", "family"])
    assert ablation.encode(CONTEXT, REPLY, "family") == formatter(tiny_tokenizer, data_format).encode(CONTEXT, REPLY)


def test_group_turns_keep_their_speaker_and_the_line_says_group(tiny_tokenizer):
    fmt = ChatFormatter(tiny_tokenizer("role_tokens"), "role_tokens", ROLE_TOKENS, 256, relationship_in_prompt=True,
                        labels=["group", "football"])
    text = fmt.tokenizer.decode(fmt.prompt_ids(GROUP_CONTEXT, "football", True), skip_special_tokens=False)
    assert text.startswith("to: football (group chat)<|eot|>")
    assert "<|them|>contact_2: chi viene stasera?<|eot|><|me|>io!<|eot|><|them|>contact_5: anche io" in text
    plain_group = fmt.tokenizer.decode(fmt.prompt_ids(GROUP_CONTEXT, "group", True), skip_special_tokens=False)
    assert plain_group.startswith("to: group<|eot|>")


def test_a_label_is_checked_against_the_runs_labels(tiny_tokenizer):
    fmt = ChatFormatter(tiny_tokenizer("role_tokens"), "role_tokens", ROLE_TOKENS, 256, relationship_in_prompt=True,
                        labels=["friend", "family"])
    assert fmt.addressee(None) == "friend" and fmt.addressee("family") == "family"
    with pytest.raises(ReplicaInputError, match="unknown relationship label: this run knows friend, family"):
        fmt.addressee("boss")
    with pytest.raises(ReplicaInputError, match="without relationship labels"):
        formatter(tiny_tokenizer, "role_tokens").addressee("family")
    assert formatter(tiny_tokenizer, "role_tokens").addressee(None) is None
