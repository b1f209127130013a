"""`replica export --gguf` of byte-fallback (SentencePiece-style: Llama 2, Mistral) tokenizers, in real llama.cpp.

The tests build a Mistral-like tokenizer with the `tokenizers` library: BPE with byte fallback, the 256 `<0xXX>`
byte tokens, <unk>/<s>/</s>, `[INST]`/`[/INST]` and `[control_N]` special tokens (N = 8..11 are the role tokens, as
in the mistral7b preset), and every split of a token among its merges, as in a SentencePiece conversion. It is
written in the layouts Hugging Face uses (the Llama 2 Prepend + Replace normalizer; Metaspace `first`, built by
transformers' LlamaTokenizer as for the mistral7b preset; Metaspace `always` and `never`), with a tiny random llama
model, and exported through the real code path (load_source + write_gguf). llama.cpp must tokenize as transformers
does (multilingual text, digits, emoji, whitespace, random strings; text starting with a space as SentencePiece does
where the layout differs there), detokenize back to the text, tokenize role-token prompts as training did, end
generation at the end-of-turn token, and compute the same logits. Expected ids always come from transformers.
"""

from __future__ import annotations

import copy
import ctypes
import json
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
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
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizer,
    PreTrainedTokenizerFast,
)

from replica.errors import ReplicaInputError
from replica.export.llama_cpp_run import is_end_of_generation
from tests.test_export_gguf import CORPUS as CHAT_CORPUS
from tests.test_export_gguf import TINY, export_in_process, fields
from tests.test_export_modelfile import conversations

SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", *(f"[control_{n}]" for n in range(8, 16))]
BYTES = [f"<0x{byte:02X}>" for byte in range(256)]
ROLE = {"me": "[control_8]", "them": "[control_9]", "eot": "[control_10]", "pad": "[control_11]"}  # conf/model/mistral7b.yaml
PREPEND = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
MULTILINGUAL = [
    "Perché è già così tardi? Sì, caffè e più gelato", "Straße, Größe, weiß: schön groß", "Привет, как дела? Всё хорошо",
    "東京で日本語を話します", "我们明天见，好吗？", "مرحبا، كيف حالك؟", "안녕하세요, 잘 지내요?",
]
TRAINING_TEXT = [*CHAT_CORPUS, *MULTILINGUAL[:4], "numbers 2024 and 1,000,000.50", "the\tquick  brown fox\n\njumps"] * 3
TEXTS = [  # Korean, Arabic, most emoji and some CJK characters are outside the vocabulary: byte fallback
    *MULTILINGUAL, "ciao, come stai? 😂😂 tutto bene",
    "1234567890", "3.14159 e 2,718281828", "numero 00000123456789012345678901234567890",
    "😂😂😂", "👍🏽 ok", "👨‍👩‍👧‍👦 family", "🇮🇹🇩🇪🇯🇵", "❤️‍🔥", "🫠",
    " leading", "   three leading", "trailing ", "trailing   ", "double  space", "tab\tseparated\t\t", "line\nbreak",
    "para\n\nbreak", "\n\nnewlines first", " ", "   ", "\t", "\n", "\n\n", "mixed \t\n \n\n  end ",
]
SPARE_ROWS = 4  # embedding rows past the tokenizer: written as unused [PAD<n>] tokens
LAYOUTS = ("prepend", "first", "always", "never")
INEXACT = {"first", "always"}  # Metaspace schemes that add no ▁ to text starting with a space; llama.cpp always does
FUZZ = 300
TOLERANCE = 1e-2  # f16 matrices on a tiny random model, as tests/test_export_llama_cpp.py


@cache
def spm_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a Llama/Mistral-like tokenizer: specials, the byte tokens, then the pieces BPE learned on
    chat text; merges list every split of each piece, in the order the pieces were learned (a SentencePiece conversion)."""
    trainer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    trainer.normalizer = PREPEND
    trainer.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(vocab_size=900, special_tokens=SPECIALS, show_progress=False))
    learned = [text for text, _ in sorted(trainer.get_vocab().items(), key=lambda item: item[1]) if text not in SPECIALS]
    vocab = {text: index for index, text in enumerate([*SPECIALS, *BYTES, *learned])}
    merges = []
    for piece in learned:
        splits = [(piece[:cut], piece[cut:]) for cut in range(1, len(piece)) if piece[:cut] in vocab and piece[cut:] in vocab]
        merges += sorted(splits, key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
    return vocab, merges


def make_tokenizer(layout: str):
    """The tokenizer in one of LAYOUTS: `first` is transformers' LlamaTokenizer, as the mistral7b preset loads it; the
    others are tokenizer.json-backed, so that their layout survives saving and loading."""
    vocab, merges = spm_vocab()
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    if layout == "first":
        tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, legacy=False, add_bos_token=True, **specials)
    else:
        backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
        if layout == "prepend":
            backend.normalizer = PREPEND
        else:
            backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=layout, split=False)
        backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **specials)
    tokenizer.add_tokens([AddedToken(text, special=True, normalized=False) for text in SPECIALS], special_tokens=True)
    return tokenizer


def make_merged(folder: Path, layout: str, *, fmt: str = "role_tokens") -> Path:
    """A `replica merge`-style folder: the tokenizer, a tiny random llama model, replica.json with the role tokens."""
    tokenizer = make_tokenizer(layout)
    tokenizer.pad_token = ROLE["pad"]  # as training sets it (replica.model.tokens.add_role_tokens)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer) + SPARE_ROWS, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **TINY)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta = {"format_version": 1, "format": fmt, "role_tokens": ROLE, "max_length": 256, "dtype": "float32"}
    (folder / "replica.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


class Exported:
    """A layout's merged folder, its GGUF file, the run's formatter and model as export loads them, and llama.cpp."""

    def __init__(self, root: Path, layout: str) -> None:
        from llama_cpp import Llama

        from replica.export.source import load_source

        self.layout = layout
        self.folder = make_merged(root / "merged", layout)
        self.path = export_in_process(self.folder, "f16")
        source = load_source(self.folder)
        self.formatter, self.model = source.formatter, source.model
        self.tokenizer = self.formatter.tokenizer
        self.llm = Llama(model_path=str(self.path), n_ctx=256, n_threads=1, logits_all=True, verbose=False)

    def llama_ids(self, text: str, *, special: bool = False, bos: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special)

    def hf_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def llama_text(self, ids: list[int]) -> str:
        """llama.cpp's own detokenization (llama_detokenize: drops the prefix space it adds when tokenizing)."""
        import llama_cpp

        vocab, tokens = llama_cpp.llama_model_get_vocab(self.llm.model), (llama_cpp.llama_token * len(ids))(*ids)
        size = llama_cpp.llama_detokenize(vocab, tokens, len(ids), None, 0, False, False)  # minus the size it needs
        buffer = ctypes.create_string_buffer(-size)
        assert llama_cpp.llama_detokenize(vocab, tokens, len(ids), buffer, -size, False, False) == -size
        return buffer.raw.decode("utf-8")


@pytest.fixture(scope="module")
def export_run(tmp_path_factory):
    """Each layout exported once per module, on first use."""
    built: dict[str, Exported] = {}

    def get(layout: str) -> Exported:
        if layout not in built:
            built[layout] = Exported(tmp_path_factory.mktemp(layout), layout)
        return built[layout]

    yield get
    for run in built.values():
        run.llm.close()


@pytest.fixture(params=LAYOUTS)
def exported(request, export_run) -> Exported:
    return export_run(request.param)


@pytest.fixture
def mistral_like(export_run) -> Exported:
    """The mistral7b preset's layout: transformers' LlamaTokenizer, Metaspace `first`."""
    return export_run("first")


def sentencepiece_reading(text: str) -> list[int]:
    """Ids of `text` with the dummy ▁ put in front unconditionally, as SentencePiece and llama.cpp do: the same vocabulary
    and merges in the Llama 2 layout, tokenized by transformers."""
    return llama2_layout()(text, add_special_tokens=False)["input_ids"]


@cache
def llama2_layout():
    return make_tokenizer("prepend")


def random_texts(count: int = FUZZ, seed: int = 0) -> list[str]:
    """Random strings over the training characters, spaces, tabs, newlines and characters outside the vocabulary."""
    rng = random.Random(seed)
    pool = sorted(set("".join(TRAINING_TEXT))) + [" "] * 12 + ["\n", "\t", "😀", "й", "ß", "漢", "가", "ع", "🇮🇹", "\u200d"]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 30))) for _ in range(count)]


# ---- the file --------------------------------------------------------------------------------------------------------------
def test_the_file_holds_a_sentencepiece_vocabulary(mistral_like):
    run = mistral_like
    values = fields(run.path)
    vocab = run.tokenizer.get_vocab()
    rows = len(vocab) + SPARE_ROWS
    tokens, types, scores = values["tokenizer.ggml.tokens"], values["tokenizer.ggml.token_type"], values["tokenizer.ggml.scores"]
    assert values["tokenizer.ggml.model"] == "llama" and values["tokenizer.ggml.pre"] == "default"
    assert "tokenizer.ggml.merges" not in values
    assert len(tokens) == len(types) == len(scores) == rows
    assert all(types[vocab[text]] == TokenType.BYTE for text in BYTES)
    assert types[vocab["<unk>"]] == TokenType.UNKNOWN
    assert all(types[vocab[text]] == TokenType.CONTROL for text in SPECIALS[1:])
    assert tokens[-1] == f"[PAD{rows - 1}]" and types[-1] == TokenType.UNUSED
    assert types[vocab["▁"]] == TokenType.NORMAL
    _, merges = spm_vocab()  # a token made by an earlier merge scores higher: llama.cpp merges it first
    made = list(dict.fromkeys(left + right for left, right in merges))
    assert [scores[vocab[text]] for text in made] == sorted((scores[vocab[text]] for text in made), reverse=True)
    assert len({scores[vocab[text]] for text in made}) == len(made)
    eot = vocab[ROLE["eot"]]
    assert values["tokenizer.ggml.eos_token_id"] == eot and values["tokenizer.ggml.eot_token_id"] == eot
    assert values["tokenizer.ggml.eos_token_ids"] == [eot, vocab["</s>"]]
    assert values["tokenizer.ggml.bos_token_id"] == vocab["<s>"] and values["tokenizer.ggml.unknown_token_id"] == vocab["<unk>"]
    assert values["tokenizer.ggml.padding_token_id"] == vocab[ROLE["pad"]]
    assert values["tokenizer.ggml.add_bos_token"] is True and values["tokenizer.ggml.add_space_prefix"] is True


# ---- tokenization ------------------------------------------------------------------------------------------------------------
def test_llama_cpp_tokenizes_exactly_as_transformers(exported):
    texts = [*TEXTS, *random_texts()]
    compared = 0
    for text in texts:
        if exported.layout in INEXACT and text.startswith(" "):
            continue  # test_text_starting_with_a_space_gets_the_sentencepiece_reading
        assert exported.llama_ids(text) == exported.hf_ids(text), (exported.layout, text)
        compared += 1
    assert compared >= len(texts) * 0.8, compared
    fallback = exported.tokenizer.convert_tokens_to_ids(BYTES)
    assert any(set(exported.hf_ids(text)) & set(fallback) for text in TEXTS)  # byte fallback was exercised


def test_text_starting_with_a_space_gets_the_sentencepiece_reading(exported):
    """The one difference, for Metaspace `first` / `always`: transformers adds no ▁ in front of text that already starts
    with a space, llama.cpp (like SentencePiece) always does. Exact layouts match transformers there too."""
    spaced = [text for text in [*TEXTS, *random_texts()] if text.startswith(" ")]
    assert len(spaced) >= 10
    for text in spaced:
        expected = sentencepiece_reading(text) if exported.layout in INEXACT else exported.hf_ids(text)
        assert exported.llama_ids(text) == expected, (exported.layout, text)
    if exported.layout in INEXACT:
        assert exported.llama_ids(" leading") != exported.hf_ids(" leading")


def test_llama_cpp_detokenizes_its_tokens_back_to_the_text(exported):
    for text in [*TEXTS, *random_texts(100, seed=1)]:
        assert exported.llama_text(exported.llama_ids(text)) == text, (exported.layout, text)
        if not (exported.layout in INEXACT and text.startswith(" ")):
            assert exported.llama_text(exported.hf_ids(text)) == text, (exported.layout, text)


# ---- prompts and stops ---------------------------------------------------------------------------------------------------------
def role_prompt(context: list[dict]) -> str:
    """A role-token prompt as text, written out independently: marker + text + end-of-turn per turn, then the reply marker."""
    return "".join(ROLE[turn["role"]] + turn["text"] + ROLE["eot"] for turn in context) + ROLE["me"]


def test_role_token_prompts_tokenize_as_in_training(exported):
    multilingual = [[{"role": "them" if i % 2 == 0 else "me", "text": text} for i, text in enumerate(MULTILINGUAL)],
                    [{"role": "them", "text": "1234567890 👨‍👩‍👧‍👦🇮🇹"}, {"role": "me", "text": "tab\tand\n\nnewlines  here"}]]
    whole = copy.copy(exported.formatter)
    whole.max_length = 1 << 20  # a client sends whole conversations: compare them untruncated
    add_bos = exported.llm.metadata["tokenizer.ggml.add_bos_token"] == "true"
    assert add_bos
    for context in [*conversations(), *multilingual]:
        ids = whole.prompt_ids(context)
        assert ids[0] == exported.tokenizer.bos_token_id
        assert exported.llama_ids(role_prompt(context), special=True, bos=add_bos) == ids, (exported.layout, context)


def test_role_tokens_are_control_tokens_and_end_of_turn_ends_generation(exported):
    vocab = exported.tokenizer.get_vocab()
    for marker in ROLE.values():
        assert exported.llama_ids(marker, special=True) == [vocab[marker]], marker
    assert is_end_of_generation(exported.llm, vocab[ROLE["eot"]])
    assert is_end_of_generation(exported.llm, vocab["</s>"])
    assert not is_end_of_generation(exported.llm, vocab[ROLE["them"]])
    assert not is_end_of_generation(exported.llm, vocab[ROLE["me"]])


# ---- the model -------------------------------------------------------------------------------------------------------------------
def test_logits_and_greedy_replies_match_transformers(mistral_like):
    run = mistral_like
    for context in conversations(3, seed=5):
        ids = run.formatter.prompt_ids(context)
        run.llm.reset()
        run.llm.eval(ids)
        with torch.no_grad():
            expected = run.model(torch.tensor([ids])).logits[0].numpy()
        assert np.abs(np.asarray(run.llm.scores[: len(ids)]) - expected).max() <= TOLERANCE
        with torch.no_grad():
            greedy = run.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                             pad_token_id=run.tokenizer.pad_token_id)[0, len(ids):].tolist()
        replied = []
        for token in run.llm.generate(ids, temp=0.0, top_k=1, reset=True):
            replied.append(int(token))
            if len(replied) == len(greedy):
                break
        assert replied == greedy


# ---- what is refused -------------------------------------------------------------------------------------------------------------
def assert_refused(folder: Path, *needles: str) -> None:
    with pytest.raises(ReplicaInputError) as raised:
        export_in_process(folder, "f16")
    message = str(raised.value)
    assert "\n" not in message and "nothing was written" in message, message
    for needle in needles:
        assert needle in message, message
    out = folder / "gguf"
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def rewrite_tokenizer_json(folder: Path, change) -> None:
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    change(spec)
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")


def test_a_trained_tokenizer_without_every_split_among_its_merges_is_refused(tmp_path):
    """tokenizers' BPE trainer lists one merge per piece; llama.cpp joins any two pieces that spell a token, so the file
    could not be shown to tokenize as training did."""
    folder = make_merged(tmp_path / "merged", "prepend")
    trainer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    trainer.normalizer = PREPEND
    trainer.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(vocab_size=900, special_tokens=SPECIALS, show_progress=False))
    trained = {tuple(pair) for pair in json.loads(trainer.to_str())["model"]["merges"]}
    rewrite_tokenizer_json(folder, lambda spec: spec["model"].update(merges=[m for m in spec["model"]["merges"] if tuple(m) in trained]))
    assert_refused(folder, "unknown tokenizer", "merges")


@pytest.mark.parametrize("change, needle", [
    (lambda spec: spec.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}, normalizer=None),
     "Metaspace(replacement=▁, prepend_scheme=always, split=True)"),
    (lambda spec: spec["model"]["vocab"].pop("<0x41>"), "1 byte tokens missing"),
    (lambda spec: spec["model"].update(ignore_merges=True), "ignore_merges=True"),
    (lambda spec: spec["added_tokens"][5].update(lstrip=True), "'[control_8]' is matched with lstrip"),
], ids=["metaspace-split", "byte-token-missing", "ignore-merges", "added-lstrip"])
def test_what_llama_cpp_cannot_reproduce_is_refused(tmp_path, change, needle):
    folder = make_merged(tmp_path / "merged", "prepend")
    rewrite_tokenizer_json(folder, change)
    assert_refused(folder, "unknown tokenizer", needle)


CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + '[/INST]' }}"
                 "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}")


def chat_template_run(folder: Path, layout: str) -> Path:
    folder = make_merged(folder, layout, fmt="chat_template")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    return folder


def test_a_llama2_layout_chat_template_run_tokenizes_its_rendered_template_as_training_did(tmp_path):
    """Prepend + Replace puts ▁ in front of text after every special token, as llama.cpp does."""
    from llama_cpp import Llama

    from replica.export.source import load_source

    folder = chat_template_run(tmp_path / "merged", "prepend")
    path = export_in_process(folder, "f16")
    whole = copy.copy(load_source(folder).formatter)
    whole.max_length = 1 << 20
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        for context in conversations(5, seed=7):
            messages = [{"role": "user" if turn["role"] == "them" else "assistant", "content": turn["text"]} for turn in context]
            rendered = whole.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert llm.tokenize(rendered.encode(), add_bos=False, special=True) == whole.prompt_ids(context)
    finally:
        llm.close()


def test_a_metaspace_first_chat_template_run_is_refused(tmp_path):
    """Metaspace `first` leaves text after a special token unprefixed, and a chat template renders text there."""
    assert_refused(chat_template_run(tmp_path / "merged", "first"), "unknown tokenizer", "chat_template run")
