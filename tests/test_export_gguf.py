"""`replica export --gguf` on tiny random llama and qwen2 models (2 layers, GQA) the tests write themselves.

Checked without llama.cpp: the file's keys against the configs written here, the tokenizer's types and stop
tokens, logits of the file loaded back by transformers (`gguf_file=`) against the merged model, bad input, and
atomic writes.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader, TokenType
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from tests.conftest import CHAT_FRAGMENTS
from tests.helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
ROLE = {"me": "<|me|>", "them": "<|them|>", "eot": "<|eot|>", "pad": "<|pad|>"}
EOS = "<|endoftext|>"
CHATML = ("<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SMOLLM_TEMPLATE = (  # SmolLM2-Instruct's: a default system turn, and its BOS token is <|im_start|> itself
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are "
    "a helpful assistant<|im_end|>\\n' }}{% endif %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHAT_TEMPLATES = {"chatml": CHATML_TEMPLATE, "smollm": SMOLLM_TEMPLATE}
QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
PRE_TOKENIZERS = {  # the tokenizer.json pre-tokenizers of GPT-2, SmolLM, Qwen2 and Llama 3, built here
    "gpt-2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False),
    "smollm": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    ),
    "qwen2": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(QWEN2_SPLIT), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    ),
    "llama-bpe": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(LLAMA3_SPLIT), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    ),
}
CORPUS = [*CHAT_FRAGMENTS, "it's 12345 o'clock, isn't it?", "Prices: 3.50€ or 1,000,000 lire!!", "Ünïcödé — ok\n\n  spaced   out",
          "Probe text one", "Probe text two", "Probe text three"] * 20
SPARE_ROWS = 6  # embedding rows past the tokenizer, as Qwen's checkpoints have
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "initializer_range": 0.1}
Q8_0_TOLERANCE = 0.15  # measured on these random models: 0.074-0.082 (f16: 0.002-0.004); docs/export.md
ARCH = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
TIMEOUT = 600


def make_tokenizer(pre: str = "gpt-2", *, bos: bool = False, template: str | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on invented chat text, with Replica's role tokens as special tokens."""
    backend = Tokenizer(models.BPE(ignore_merges=pre == "llama-bpe"))
    backend.pre_tokenizer = PRE_TOKENIZERS[pre]()
    backend.decoder = decoders.ByteLevel()
    specials = [EOS, "<s>", *(CHATML if template else ()), ROLE["me"], ROLE["them"], ROLE["eot"], ROLE["pad"]]
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(CORPUS, trainer)
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", backend.token_to_id("<s>"))])
    bos_token = "<s>" if bos else CHATML[0] if template == "smollm" else None
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS, pad_token=ROLE["pad"], bos_token=bos_token,
        additional_special_tokens=[*(CHATML if template else ()), ROLE["me"], ROLE["them"], ROLE["eot"]],
        chat_template=CHAT_TEMPLATES.get(template),
    )
    return tokenizer


def make_merged(folder: Path, arch: str = "llama", *, pre: str = "gpt-2", fmt: str = "role_tokens", tied: bool = False,
                bos: bool = False, template: str = "chatml", rope: dict | None = None, seed: int = 0) -> Path:
    """A `replica merge`-style folder: random tiny model, its tokenizer, and replica.json naming the chat format."""
    tokenizer = make_tokenizer(pre, bos=bos, template=template if fmt == "chat_template" else None)
    config_cls, model_cls = ARCH[arch]
    rope_parameters = {"rope_type": "default", "rope_theta": 50000.0, **(rope or {})}
    config = config_cls(vocab_size=len(tokenizer) + SPARE_ROWS, tie_word_embeddings=tied, rope_parameters=rope_parameters,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY)
    torch.manual_seed(seed)
    model = model_cls(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0, 0.2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta = {"format_version": 1, "format": fmt, "role_tokens": ROLE, "max_length": 128, "dtype": "float32"}
    (folder / "replica.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def replica(*args, preexec_fn=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "replica.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=TIMEOUT, preexec_fn=preexec_fn, check=False)


def export(folder: Path, quant: str = "f16", *extra) -> Path:
    result = replica("export", folder, "--gguf", "--quant", quant, "--out", folder / "gguf", *extra)
    assert result.returncode == 0, result.stderr
    return folder / "gguf" / f"replica-{quant}.gguf"


def export_in_process(folder: Path, quant: str = "f16") -> Path:
    """The same export without a CLI subprocess, for tests whose subject is the file rather than the command."""
    from replica.export.source import load_source
    from replica.gguf.gguf_file import write_gguf

    source = load_source(folder)
    path = folder / "gguf" / f"replica-{quant}.gguf"
    path.unlink(missing_ok=True)
    write_gguf(source.model, source.formatter, path, quant, name=source.name, chat_template=source.chat_template)
    return path


def fields(path: Path) -> dict:
    reader = GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}


def probe_prompts() -> list[list[int]]:
    """Token-id prompts that cover role tokens, text, digits and spacing."""
    tokenizer = make_tokenizer()
    texts = ["<|them|>ciao, come stai?<|eot|><|me|>", "<|them|>it's 12345 o'clock<|eot|><|me|>sì dai<|eot|><|them|>ok 👍<|eot|><|me|>"]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def max_logit_diff(reference, candidate, prompts) -> float:
    worst = 0.0
    with torch.no_grad():
        for ids in prompts:
            batch = torch.tensor([ids])
            worst = max(worst, (reference(batch).logits - candidate(batch).logits).abs().max().item())
    return worst


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory) -> Path:
    return make_merged(tmp_path_factory.mktemp("llama") / "merged", "llama")


@pytest.fixture(scope="module")
def qwen2_folder(tmp_path_factory) -> Path:
    return make_merged(tmp_path_factory.mktemp("qwen2") / "merged", "qwen2")


# ---- keys and tokenizer ---------------------------------------------------------------------------------------
def test_llama_file_holds_every_hyperparameter_and_the_stop_tokens(llama_folder):
    values = fields(export(llama_folder, "f16"))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(llama_folder)
    rows = len(tokenizer) + SPARE_ROWS
    assert values["general.architecture"] == "llama"
    expected = {"context_length": 256, "embedding_length": 64, "block_count": 2, "feed_forward_length": 128,
                "attention.head_count": 4, "attention.head_count_kv": 2, "rope.dimension_count": 16,
                "attention.key_length": 16, "attention.value_length": 16, "vocab_size": rows}
    for key, value in expected.items():
        assert values[f"llama.{key}"] == value, key
    assert values["llama.rope.freq_base"] == pytest.approx(50000.0)
    assert values["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    assert values["tokenizer.ggml.model"] == "gpt2" and values["tokenizer.ggml.pre"] == "gpt-2"
    tokens, types = values["tokenizer.ggml.tokens"], values["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == rows
    assert tokens[-1] == f"[PAD{rows - 1}]" and types[-1] == TokenType.UNUSED
    vocab = tokenizer.get_vocab()
    for marker in ROLE.values():
        assert tokens[vocab[marker]] == marker and types[vocab[marker]] == TokenType.CONTROL
    eot = vocab[ROLE["eot"]]
    assert values["tokenizer.ggml.eos_token_id"] == eot and values["tokenizer.ggml.eot_token_id"] == eot
    assert values["tokenizer.ggml.eos_token_ids"] == [eot, vocab[EOS]]
    assert values["tokenizer.ggml.padding_token_id"] == vocab[ROLE["pad"]]
    assert values["tokenizer.ggml.add_bos_token"] is False
    assert values["tokenizer.chat_template"].count("<|me|>") >= 1
    assert len(values["tokenizer.ggml.merges"]) == len(json.loads((llama_folder / "tokenizer.json").read_text())["model"]["merges"])
    assert values["general.file_type"] == 1


@pytest.mark.parametrize("pre", ["smollm", "qwen2", "llama-bpe"])
def test_known_pre_tokenizers_are_named(tmp_path, pre):
    folder = make_merged(tmp_path / "merged", "llama", pre=pre)  # transformers rebuilds any qwen2 tokenizer as Qwen2's
    assert fields(export_in_process(folder, "f16"))["tokenizer.ggml.pre"] == pre


def test_tied_embeddings_write_no_output_tensor_and_bos_is_declared(tmp_path):
    folder = make_merged(tmp_path / "merged", "llama", tied=True, bos=True)
    path = export_in_process(folder, "f16")
    names = {tensor.name for tensor in GGUFReader(path).tensors}
    assert "token_embd.weight" in names and "output.weight" not in names
    values = fields(path)
    assert values["tokenizer.ggml.add_bos_token"] is True
    assert values["tokenizer.ggml.bos_token_id"] == PreTrainedTokenizerFast.from_pretrained(folder).convert_tokens_to_ids("<s>")


def test_llama3_rope_scaling_writes_its_frequency_factors(tmp_path):
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}
    path = export_in_process(make_merged(tmp_path / "merged", "llama", rope=rope), "f16")
    factors = next(t for t in GGUFReader(path).tensors if t.name == "rope_freqs.weight").data
    # head_dim 16 -> 8 frequencies; base 50000: wavelengths 2*pi*50000**(i/16) for i = 0, 2, ..., 14
    wavelengths = 2 * np.pi * 50000.0 ** (np.arange(0, 16, 2) / 16)
    assert factors[wavelengths < 64 / 4] == pytest.approx(1.0)
    assert factors[wavelengths > 64 / 1] == pytest.approx(8.0)
    middle = (wavelengths >= 16) & (wavelengths <= 64)
    smooth = (64 / wavelengths[middle] - 1) / 3
    assert factors[middle] == pytest.approx(1 / ((1 - smooth) / 8 + smooth), rel=1e-5)


# ---- round trip through transformers ----------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_round_trip_logits_match_the_merged_model(arch, llama_folder, qwen2_folder):
    folder = llama_folder if arch == "llama" else qwen2_folder
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = probe_prompts()
    for quant, tolerance in (("f16", 1e-2), ("q8_0", Q8_0_TOLERANCE)):
        path = export_in_process(folder, quant)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        diff = max_logit_diff(merged, loaded, prompts)
        assert diff <= tolerance, (arch, quant, diff)





@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_f16_is_exactly_the_merged_model_with_f16_matrices_and_f32_is_lossless(arch, llama_folder, qwen2_folder):
    folder = llama_folder if arch == "llama" else qwen2_folder
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    rounded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        for param in rounded.parameters():
            if param.ndim == 2:
                param.copy_(param.half().float())  # what f16 storage does to each matrix; vectors stay f32
    for quant, reference in (("f16", rounded), ("f32", merged)):
        path = export_in_process(folder, quant)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        assert max_logit_diff(reference, loaded, probe_prompts()) <= 1e-5, quant


# ---- bad input: one line, exit 2, nothing written ----------------------------------------------------------------
def assert_nothing_written(folder: Path) -> None:
    out = folder / "gguf"
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_a_run_folder_without_adapter_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    result = replica("export", run, "--gguf", "--out", run / "gguf")
    assert_one_line_error(result, "replica: error:", "no adapter/")
    assert_nothing_written(run)


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = make_merged(tmp_path / "merged", "llama")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2)).save_pretrained(folder)
    result = replica("export", folder, "--gguf", "--out", folder / "gguf")
    assert_one_line_error(result, "replica: error:", "'gpt2'", "llama, mistral, qwen2")
    assert_nothing_written(folder)


def test_an_unknown_tokenizer_is_refused_rather_than_guessed(tmp_path):
    folder = make_merged(tmp_path / "merged", "llama")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, spec["pre_tokenizer"]]}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    result = replica("export", folder, "--gguf", "--out", folder / "gguf")
    assert_one_line_error(result, "replica: error:", "unknown tokenizer", "WhitespaceSplit + ByteLevel")
    assert_nothing_written(folder)


def test_an_existing_output_needs_force(tmp_path):
    folder = make_merged(tmp_path / "merged", "qwen2")
    path = export_in_process(folder, "q4_0")
    first = path.read_bytes()
    result = replica("export", folder, "--gguf", "--quant", "q4_0", "--out", folder / "gguf")
    assert_one_line_error(result, "replica: error:", "replica-q4_0.gguf", "--force")
    assert path.read_bytes() == first
    assert export(folder, "q4_0", "--force") == path
    result = replica("export", folder, "--gguf", "--out", path)
    assert_one_line_error(result, "replica: error:", "--out is a file")


def test_a_full_disk_leaves_the_previous_file_and_no_partial_one(tmp_path):
    folder = make_merged(tmp_path / "merged", "llama")
    path = export_in_process(folder, "f16")
    before = path.read_bytes()
    limit = len(before) // 2  # the new file cannot be written whole: as a disk filling up mid-write

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = replica("export", folder, "--gguf", "--quant", "f16", "--out", folder / "gguf", "--force", preexec_fn=small_disk)
    assert_one_line_error(result, "replica: error:", "no partial file")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
