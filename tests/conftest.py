"""Shared session fixtures for the training tests: one tiny real model + tokenizer built from invented chats."""

from __future__ import annotations

import os
import random
from pathlib import Path

# Every test runs offline: nothing may reach the Hugging Face Hub (subprocesses inherit this).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest

from replica.model.tiny import ensure_tiny_model
from replica.model.base_model import load_tokenizer

TINY_BUILD = dict(pretrain_steps=5, vocab_size=512, hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1,
                  intermediate_size=128, pretrain_batch=4, pretrain_seq=64)
TINY_MODEL_CFG = {
    "name_or_path": None,
    "revision": None,
    "trust_remote_code": False,
    "dtype": "float32",
    "role_tokens": {"me": "<|me|>", "them": "<|them|>", "eot": "<|eot|>", "pad": "<|pad|>"},
}

CHAT_FRAGMENTS = [
    "ciao!", "come stai?", "tutto bene, tu?", "stasera pizza? 🍕", "sì dai", "no, domani lavoro",
    "arrivo tra 5 minuti", "sono in ritardo 😅", "ok perfetto 👍", "ahahah 😂😂", "che figata",
    "ti chiamo dopo",
    "hai visto la partita?", "forza ragazzi ⚽", "buonanotte 😴", "a domani", "grazie mille ❤️", "figurati",
    "dove sei?", "al bar sotto casa", "portami un caffè ☕", "va bene", "boh non so", "vediamo", "certo!",
    "hey, what's up?", "not much, you?", "see you tomorrow", "lol 😂", "sounds good", "I'm on my way",
    "running late sorry", "call me later", "good night 🌙", "happy birthday 🎉🎂", "thanks!!", "no worries",
    "where are you?", "let's grab lunch", "maybe next week", "haha yes", "omg 😱", "that's amazing",
    "ci sta 🔥", "andiamo al mare? 🏖️", "piove di nuovo ☔", "mi manchi 🥺", "anche tu", "ok ci sentiamo",
    "ho finito adesso", "che fai stasera?", "niente di che", "film? 🎬", "perché no", "mandami la foto 📷",
]


def invented_chat_messages(count: int = 300, seed: int = 7) -> list[str]:
    """Deterministic invented Italian/English/emoji messages of one to three fragments."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(CHAT_FRAGMENTS, rng.randint(1, 3))) for _ in range(count)]


@pytest.fixture(scope="session")
def tiny_chat_texts() -> list[str]:
    return invented_chat_messages()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_chat_texts) -> Path:
    """A tiny Qwen2 model + byte-level BPE tokenizer (ships pad == eos on purpose), built once per session."""
    cache = tmp_path_factory.mktemp("tiny-training-model")
    return ensure_tiny_model(tiny_chat_texts, cache, log=lambda *_: None, **TINY_BUILD)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    """`tiny_tokenizer(data_format)`: the tiny tokenizer as training loads it, cached per format (do not mutate)."""
    loaded: dict = {}

    def load(data_format: str):
        if data_format not in loaded:
            loaded[data_format] = load_tokenizer(str(tiny_model_dir), TINY_MODEL_CFG, data_format)
        return loaded[data_format]

    return load


@pytest.fixture(scope="session")
def tiny_model_cfg() -> dict:
    """A `conf/model/tiny.yaml`-like model config (role tokens me/them/eot/pad) for the tiny model."""
    return TINY_MODEL_CFG


ENGLISH_SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "english"
# Sam writes tidy sentences to Mum and lowercase bursts to Jake and Priya (examples/generate_english_sample.py).
LABELLED_DATA = [f"data.exports=[{ENGLISH_SAMPLE}]", "data.me=['Sam Rivera']",
                 "data.relationships={Mum: family, 'Jake Miller': friend, Priya Shah: friend}"]


@pytest.fixture(scope="session")
def labelled_run(tmp_path_factory) -> Path:
    """A tiny real run (4-bit + LoRA) of the English sample whose prompts name the relationship: family or friend."""
    from tests.helpers import train_tiny

    _, run_dir = train_tiny(tmp_path_factory.mktemp("labelled"), LABELLED_DATA)
    return run_dir


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (REPLICA_REQUIRE_ALL=1) a skipped test is a failure: a missing browser or model never passes."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("REPLICA_REQUIRE_ALL") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under REPLICA_REQUIRE_ALL=1 (CI needs every dependency): {report.longrepr}"
