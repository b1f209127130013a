"""The GGUF tokenizer tables (replica/gguf/vocab.py) on small hand-made tokenizers: token types, padding rows, stop
tokens, merges, SentencePiece scores and the refusals, without a model or llama.cpp (tests/test_export_gguf.py and
tests/test_export_byte_fallback.py check the same files end to end). Expected values are worked out by hand here."""

from __future__ import annotations

import json

import pytest
from gguf import TokenType
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from replica.errors import ReplicaInputError
from replica.gguf.vocab import (
    _check_added_tokens,
    _check_byte_fallback_model,
    _fixed_type,
    _is_piece,
    _merge_pair,
    _merge_text,
    adds_bos,
    build_vocab,
    check_every_split_is_a_merge,
    merge_scores,
)
from replica.model.formatting import ChatFormatter
from replica.settings import RoleTokens

ROLE = RoleTokens()  # <|me|> <|them|> <|eot|> <|pad|>
ROLE_LIST = [ROLE.me, ROLE.them, ROLE.eot]
BYTES = [f"<0x{byte:02X}>" for byte in range(256)]


# ---- byte-level BPE (gpt2) ----------------------------------------------------------------------------------------
def byte_level(*, bos: bool = False) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<s>", *ROLE_LIST, ROLE.pad]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(["ciao come stai", "tutto bene grazie", "ok a dopo"] * 5, trainer)
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", backend.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token=ROLE.pad,
                                   bos_token="<s>" if bos else None, additional_special_tokens=ROLE_LIST)


def formatter_of(tokenizer, style: str = "role_tokens", tokens: RoleTokens = ROLE) -> ChatFormatter:
    return ChatFormatter(tokenizer, style, tokens, 128)


def test_byte_level_vocabulary_with_padding_rows_and_stop_tokens():
    tokenizer = byte_level()
    tokenizer.add_tokens(["ciaone"])  # an added token that is not special
    vocab = tokenizer.get_vocab()
    size = len(vocab)
    formatter = formatter_of(tokenizer)
    result = build_vocab(formatter, size + 3, "{{ messages }}")
    assert result.model == "gpt2" and result.pre == "gpt-2"
    assert result.tokens[:size] == [text for text, _ in sorted(vocab.items(), key=lambda item: item[1])]
    assert result.tokens[size:] == [f"[PAD{size}]", f"[PAD{size + 1}]", f"[PAD{size + 2}]"]
    assert result.types[size:] == [TokenType.UNUSED] * 3
    for special in ["<|endoftext|>", *ROLE_LIST, ROLE.pad]:
        assert result.types[vocab[special]] == TokenType.CONTROL, special
    assert result.types[vocab["ciaone"]] == TokenType.USER_DEFINED
    assert result.types[vocab["ciao"]] == TokenType.NORMAL
    assert all(isinstance(kind, int) and type(kind) is int for kind in result.types)
    assert result.eos_id == vocab[ROLE.eot]
    assert result.eos_ids == [vocab[ROLE.eot], vocab["<|endoftext|>"]]
    assert (result.bos_id, result.pad_id, result.unk_id) == (None, vocab[ROLE.pad], None)
    assert result.add_bos is False and result.chat_template == "{{ messages }}"
    spec_merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    assert result.merges == [f"{left} {right}" for left, right in spec_merges] and result.merges
    assert result.scores == [] and result.add_space_prefix is False


def test_a_normal_end_of_turn_token_is_written_as_control():
    tokenizer = byte_level()
    vocab = tokenizer.get_vocab()
    formatter = formatter_of(tokenizer, tokens=RoleTokens(eot="ciao"))  # an ordinary word token ends the turn
    result = build_vocab(formatter, len(vocab), None)
    assert result.types[vocab["ciao"]] == TokenType.CONTROL
    assert result.types[vocab["c"]] == TokenType.NORMAL
    assert result.eos_id == vocab["ciao"] and result.eos_ids == [vocab["ciao"], vocab["<|endoftext|>"]]


def test_exactly_as_many_rows_as_tokens_has_no_padding_and_fewer_is_refused():
    tokenizer = byte_level()
    size = len(tokenizer.get_vocab())
    assert len(build_vocab(formatter_of(tokenizer), size, None).tokens) == size
    with pytest.raises(ReplicaInputError, match=f"{size} tokens .* {size - 1} embedding rows"):
        build_vocab(formatter_of(tokenizer), size - 1, None)


def test_a_plain_run_ends_the_turn_on_eos_once():
    tokenizer = byte_level()
    result = build_vocab(formatter_of(tokenizer, "plain"), len(tokenizer), None)
    eos = tokenizer.get_vocab()["<|endoftext|>"]
    assert result.eos_id == eos and result.eos_ids == [eos]


def test_adds_bos_only_when_training_put_it_in_front():
    with_bos = byte_level(bos=True)
    assert adds_bos(formatter_of(with_bos)) is True
    assert build_vocab(formatter_of(with_bos), len(with_bos), None).bos_id == with_bos.get_vocab()["<s>"]
    assert adds_bos(formatter_of(byte_level())) is False  # no BOS token at all
    declared = byte_level()
    declared.bos_token = "<s>"  # a BOS token the tokenizer never puts in front of text
    assert adds_bos(formatter_of(declared)) is False


def test_tokenizers_that_are_not_byte_level_or_byte_fallback_bpe_are_refused():
    class Slow:
        pass

    slow = formatter_of(byte_level())
    slow.tokenizer = Slow()
    with pytest.raises(ReplicaInputError, match="unknown tokenizer"):
        build_vocab(slow, 400, None)
    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "ciao": 1, ROLE.me: 2, ROLE.them: 3, ROLE.eot: 4, ROLE.pad: 5, "[SEP]": 6},
                                           unk_token="[UNK]"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, eos_token="[SEP]", pad_token=ROLE.pad)
    with pytest.raises(ReplicaInputError, match="unknown tokenizer.*WordPiece"):
        build_vocab(formatter_of(tokenizer), 7, None)
    bpe = byte_level()
    bpe.backend_tokenizer.decoder = decoders.BPEDecoder()  # BPE, but neither byte-level nor byte fallback
    with pytest.raises(ReplicaInputError, match="unknown tokenizer.*BPE.*BPEDecoder"):
        build_vocab(formatter_of(bpe), len(bpe), None)


# ---- byte-fallback BPE (llama) ------------------------------------------------------------------------------------
SPECIALS = ["<unk>", "<s>", "</s>"]
PIECES = ["▁", "c", "i", "a", "o", "ci", "ao", "cia", "ciao", "▁ciao"]
MERGES = [("c", "i"), ("a", "o"), ("ci", "a"), ("ci", "ao"), ("cia", "o"), ("▁", "ciao")]  # every split of each piece
PREPEND = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + '[/INST]' }}"
                 "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}")


def byte_fallback(merges=MERGES, layout: str = "prepend", *, template: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {text: index for index, text in enumerate([*SPECIALS, *BYTES, *PIECES])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
    if layout == "prepend":
        backend.normalizer = PREPEND
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=layout, split=False)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        chat_template=template)
    tokenizer.add_tokens([AddedToken(text, special=True, normalized=False) for text in [*ROLE_LIST, ROLE.pad]], special_tokens=True)
    tokenizer.pad_token = ROLE.pad
    return tokenizer


def test_byte_fallback_vocabulary_as_sentencepiece_reads_it():
    tokenizer = byte_fallback()
    vocab = tokenizer.get_vocab()
    result = build_vocab(formatter_of(tokenizer), len(vocab) + 1, None)
    assert result.model == "llama" and result.pre == "default" and result.add_space_prefix is True
    assert result.types[vocab["<unk>"]] == TokenType.UNKNOWN
    assert all(result.types[vocab[text]] == TokenType.BYTE for text in BYTES)
    for control in ["<s>", "</s>", *ROLE_LIST, ROLE.pad]:
        assert result.types[vocab[control]] == TokenType.CONTROL, control
    assert all(result.types[vocab[text]] == TokenType.NORMAL for text in PIECES)
    assert result.types[-1] == TokenType.UNUSED and result.tokens[-1] == f"[PAD{len(vocab)}]"
    scores = dict(zip(result.tokens, result.scores))
    # minus the rank of each piece's first merge; pieces no merge makes score 0
    assert {text: scores[text] for text in PIECES} == {
        "▁": 0.0, "c": 0.0, "i": 0.0, "a": 0.0, "o": 0.0, "ci": 0.0, "ao": -1.0, "cia": -2.0, "ciao": -3.0, "▁ciao": -5.0,
    }
    assert scores["<0x41>"] == 0.0 and scores["<unk>"] == 0.0 and len(result.scores) == len(vocab) + 1
    assert result.merges == []
    assert (result.bos_id, result.unk_id, result.pad_id) == (vocab["<s>"], vocab["<unk>"], vocab[ROLE.pad])
    assert result.add_bos is True
    assert result.eos_ids == [vocab[ROLE.eot], vocab["</s>"]]


def test_a_never_prefixing_layout_writes_no_space_prefix():
    result = build_vocab(formatter_of(byte_fallback(layout="never")), 300, None)
    assert result.add_space_prefix is False and result.model == "llama"


def test_an_inexact_layout_is_refused_only_for_chat_template_runs():
    build_vocab(formatter_of(byte_fallback(layout="first")), 300, None)  # role tokens: fine
    tokenizer = byte_fallback(layout="first", template=CHAT_TEMPLATE)
    with pytest.raises(ReplicaInputError, match="unknown tokenizer.*chat_template run"):
        build_vocab(formatter_of(tokenizer, "chat_template"), 300, None)
    exact = byte_fallback(template=CHAT_TEMPLATE)
    written = build_vocab(formatter_of(exact, "chat_template"), 300, "{{ bos_token }}[INST]")
    assert written.add_bos is False and written.chat_template == "{{ bos_token }}[INST]"


def test_a_byte_fallback_tokenizer_missing_a_split_among_its_merges_is_refused():
    with pytest.raises(ReplicaInputError, match="'cia' \\+ 'o' spell the token 'ciao'"):
        build_vocab(formatter_of(byte_fallback([m for m in MERGES if m != ("cia", "o")])), 300, None)


def test_merges_of_one_token_apart_are_refused():
    order = [("c", "i"), ("a", "o"), ("ci", "a"), ("ci", "ao"), ("▁", "ciao"), ("cia", "o")]
    with pytest.raises(ReplicaInputError, match="'ciao' are not consecutive"):
        build_vocab(formatter_of(byte_fallback(order)), 300, None)


def test_a_byte_fallback_tokenizer_with_a_stripped_added_token_is_refused():
    tokenizer = byte_fallback()
    tokenizer.add_tokens([AddedToken("[x]", special=True, lstrip=True, normalized=False)], special_tokens=True)
    with pytest.raises(ReplicaInputError, match="'\\[x\\]' is matched with lstrip"):
        build_vocab(formatter_of(tokenizer), 300, None)


def test_an_added_token_matched_after_normalization_is_refused_only_with_a_normalizer():
    def with_normalized_token(layout: str) -> PreTrainedTokenizerFast:
        tokenizer = byte_fallback(layout=layout)
        tokenizer.add_tokens([AddedToken("[n]", special=True, normalized=True)], special_tokens=True)
        return tokenizer

    with pytest.raises(ReplicaInputError, match="'\\[n\\]' is matched with normalized"):
        build_vocab(formatter_of(with_normalized_token("prepend")), 300, None)
    assert build_vocab(formatter_of(with_normalized_token("never")), 300, None).model == "llama"  # no normalizer


# ---- the pieces ----------------------------------------------------------------------------------------------------
def test_merge_scores_follow_the_first_merge_of_each_token():
    assert merge_scores([]) == {}
    assert merge_scores([("a", "b"), ("ab", "c"), ("a", "bc"), ("x", "y")]) == {"ab": -0.0, "abc": -1.0, "xy": -3.0}
    with pytest.raises(ReplicaInputError, match="'ab'"):
        merge_scores([("a", "b"), ("c", "d"), ("a", "b")])


def test_every_split_must_be_a_merge():
    check_every_split_is_a_merge([("a", "b")], {"a", "b", "ab"})
    check_every_split_is_a_merge([("a", "b"), ("ab", "c")], {"ab", "c", "abc"})  # "a" + "bc": "bc" is no piece
    check_every_split_is_a_merge([], {"a", "b"})
    with pytest.raises(ReplicaInputError, match="'a' \\+ 'b' spell the token 'ab'"):
        check_every_split_is_a_merge([("b", "a")], {"a", "b", "ab"})
    with pytest.raises(ReplicaInputError, match="'ab' \\+ 'c'"):
        check_every_split_is_a_merge([("a", "b"), ("a", "bc")], {"ab", "c", "abc"})
    with pytest.raises(ReplicaInputError, match="'a' \\+ 'bc'"):  # a single character is always a piece
        check_every_split_is_a_merge([("b", "c"), ("ab", "c")], {"bc", "abc"})


def test_a_piece_is_one_character_or_a_normal_token():
    assert _is_piece("x", set()) and _is_piece("é", set())
    assert _is_piece("xy", {"xy"}) and not _is_piece("xy", {"x", "y"})


def test_sentencepiece_fixed_types():
    assert _fixed_type("<0x41>", "<unk>") == TokenType.BYTE
    assert _fixed_type("<0x0A>", None) == TokenType.BYTE
    assert _fixed_type("<0x0a>", None) is None  # tokenizers spells byte tokens in upper case
    assert _fixed_type("<unk>", "<unk>") == TokenType.UNKNOWN
    assert _fixed_type("<unk>", None) is None and _fixed_type("ciao", "<unk>") is None


def test_merge_rules_in_both_spellings():
    assert _merge_text(["a", "b"]) == "a b" and _merge_text("a b") == "a b"
    assert _merge_pair(["a", "b"]) == ("a", "b") and _merge_pair("a b") == ("a", "b")
    assert _merge_pair(["a b", "c"]) == ("a b", "c")
    assert _merge_pair("▁ ▁ciao") == ("▁", "▁ciao")
    assert _merge_pair("a b c") == ("a", "b c")
    assert _merge_pair("a\tb c") == ("a\tb", "c")  # only a space separates the two parts


def test_byte_fallback_models_llama_cpp_cannot_reproduce():
    vocab = {text: index for index, text in enumerate(BYTES)}
    _check_byte_fallback_model({"vocab": vocab, "dropout": None, "ignore_merges": False})
    with pytest.raises(ReplicaInputError, match="dropout=0.1"):
        _check_byte_fallback_model({"vocab": vocab, "dropout": 0.1})
    with pytest.raises(ReplicaInputError, match="end_of_word_suffix='</w>'"):
        _check_byte_fallback_model({"vocab": vocab, "end_of_word_suffix": "</w>"})
    with pytest.raises(ReplicaInputError, match="continuing_subword_prefix='##'"):
        _check_byte_fallback_model({"vocab": vocab, "continuing_subword_prefix": "##"})
    partial = {text: index for text, index in vocab.items() if text not in ("<0x00>", "<0xFF>")}
    with pytest.raises(ReplicaInputError, match="with 2 byte tokens missing"):
        _check_byte_fallback_model({"vocab": partial})
    with pytest.raises(ReplicaInputError, match="with 256 byte tokens missing"):
        _check_byte_fallback_model({})
    with pytest.raises(ReplicaInputError, match="ignore_merges=True, 1 byte tokens missing"):
        _check_byte_fallback_model({"vocab": partial | {"<0x00>": 0}, "ignore_merges": True})


def test_added_tokens_llama_cpp_cannot_match():
    _check_added_tokens([{"content": "[a]", "lstrip": False, "normalized": True}], has_normalizer=False)
    _check_added_tokens([{"content": "[a]", "normalized": False}], has_normalizer=True)
    _check_added_tokens([], has_normalizer=True)
    with pytest.raises(ReplicaInputError, match="'\\[b\\]' is matched with rstrip, single_word"):
        _check_added_tokens([{"content": "[a]"}, {"content": "[b]", "rstrip": True, "single_word": True}], has_normalizer=False)
    with pytest.raises(ReplicaInputError, match="'\\[a\\]' is matched with normalized"):
        _check_added_tokens([{"content": "[a]", "normalized": True}], has_normalizer=True)
    with pytest.raises(ReplicaInputError, match="with lstrip, normalized"):
        _check_added_tokens([{"content": "[a]", "lstrip": True, "normalized": True}], has_normalizer=True)
