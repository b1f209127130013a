"""A tiny local causal LM + tokenizer that loads through the same from_pretrained/4-bit/LoRA path as a 7B model.

No weights are downloaded: a byte-level BPE tokenizer is trained on the given texts, a small Qwen2 or Llama
model is initialised and briefly pretrained on them, and both are saved with `save_pretrained`. The tokenizer
deliberately mimics DeepSeek-R1-Distill-Qwen's pitfall (pad == eos == `<|endoftext|>`) and the embedding matrix
keeps spare rows past `len(tokenizer)`, as Qwen's does, so tokens added at run time fit without resizing.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    get_cosine_schedule_with_warmup,
)

from replica.atomic import replace_dir, write_json
from replica.errors import ReplicaInputError

BUILD_FORMAT = 2  # bump when the build recipe changes so old cache entries are not reused
DOC_TEXTS = 16  # texts per pretraining document
INFO_FILE = "replica_tiny.json"
EOS_TOKEN = "<|endoftext|>"
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MIN_SPARE_ROWS = 32
ROW_MULTIPLE = 64
ARCHITECTURES = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def ensure_tiny_model(texts: Sequence[str], cache_dir: str | Path, *, arch: str = "qwen2", vocab_size: int = 2048,
                      hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                      intermediate_size: int = 256, max_position: int = 1024, pretrain_steps: int = 300,
                      pretrain_batch: int = 16, pretrain_seq: int = 128, lr: float = 3e-3, seed: int = 0,
                      log: Callable[[str], None] = print) -> Path:
    """Build (or reuse from cache) a tiny causal LM + tokenizer trained on `texts`; return its directory."""
    args = dict(arch=arch, vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                num_heads=num_heads, num_kv_heads=num_kv_heads, intermediate_size=intermediate_size,
                max_position=max_position, pretrain_steps=pretrain_steps, pretrain_batch=pretrain_batch,
                pretrain_seq=pretrain_seq, lr=lr, seed=seed)
    _check_args(texts, args)
    cache_dir = Path(cache_dir)
    key = cache_key(texts, args)
    target = cache_dir / f"tiny-{arch}-{key[:12]}"
    if _is_complete(target):
        log(f"tiny model: reusing cached build {target}")
        return target

    with replace_dir(target, keep_complete=_is_complete) as staging:
        log(f"tiny model: building {arch} from {len(texts)} texts into {target}")
        info = _build(texts, staging, args, log)
        write_json(staging / INFO_FILE, {"format": BUILD_FORMAT, "cache_key": key, "build_args": args,
                                         "text_count": len(texts), **info})
    return target


def cache_key(texts: Sequence[str], args: dict) -> str:
    """sha256 over the texts (in order, length-prefixed) and the build arguments."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    digest.update(json.dumps({"format": BUILD_FORMAT, **args}, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def embedding_rows(tokenizer_size: int) -> int:
    """Round up to a multiple of 64 leaving at least 32 unused rows for tokens added later."""
    return math.ceil((tokenizer_size + MIN_SPARE_ROWS) / ROW_MULTIPLE) * ROW_MULTIPLE


def _check_args(texts: Sequence[str], args: dict) -> None:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of messages, not a single string")
    if not any(text.strip() for text in texts):
        raise ReplicaInputError("no message text to build the tiny model from; check that the dataset has messages")
    if args["arch"] not in ARCHITECTURES:
        raise ReplicaInputError(f"unknown tiny model arch {args['arch']!r}; use one of {sorted(ARCHITECTURES)}")
    if args["hidden_size"] % args["num_heads"] or args["num_heads"] % args["num_kv_heads"]:
        raise ReplicaInputError("tiny model: hidden_size must divide by num_heads and num_heads by num_kv_heads")
    if (args["hidden_size"] // args["num_heads"]) % 2:
        raise ReplicaInputError("tiny model: hidden_size / num_heads must be even for rotary embeddings")
    if args["pretrain_seq"] > args["max_position"]:
        raise ReplicaInputError("tiny model: pretrain_seq must not exceed max_position")


def _is_complete(directory: Path) -> bool:
    return (directory / INFO_FILE).is_file()


def _build(texts: Sequence[str], out_dir: Path, args: dict, log: Callable[[str], None]) -> dict:
    tokenizer = _train_tokenizer(texts, args["vocab_size"], args["max_position"])
    rows = embedding_rows(len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args["seed"])
        model = _new_model(args, rows, tokenizer.eos_token_id)
        chunks = _packed_chunks(tokenizer, texts, args["pretrain_seq"])
        started = time.perf_counter()
        loss_start, loss_end = _pretrain(model, chunks, args)
    log(f"tiny model: pretraining loss {loss_start:.3f} -> {loss_end:.3f} over {args['pretrain_steps']} steps "
        f"on {len(chunks)} chunks in {time.perf_counter() - started:.1f}s")
    tokenizer.save_pretrained(out_dir)
    model.to(torch.bfloat16).save_pretrained(out_dir)
    return {"tokenizer_size": len(tokenizer), "embedding_rows": rows, "spare_rows": rows - len(tokenizer),
            "pretrain_chunks": len(chunks), "pretrain_loss_start": loss_start, "pretrain_loss_end": loss_end}


def _train_tokenizer(texts: Sequence[str], vocab_size: int, max_position: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any Unicode round-trips) with Qwen-style special tokens; pad is eos on purpose."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=[EOS_TOKEN, *CHAT_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN,
                                   additional_special_tokens=list(CHAT_TOKENS), chat_template=CHAT_TEMPLATE,
                                   model_max_length=max_position, clean_up_tokenization_spaces=False)


def _new_model(args: dict, rows: int, eos_id: int) -> PreTrainedModel:
    config_class, model_class = ARCHITECTURES[args["arch"]]
    config = config_class(vocab_size=rows, hidden_size=args["hidden_size"], num_hidden_layers=args["num_layers"],
                          num_attention_heads=args["num_heads"], num_key_value_heads=args["num_kv_heads"],
                          intermediate_size=args["intermediate_size"], max_position_embeddings=args["max_position"],
                          tie_word_embeddings=False, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    model = model_class(config).to(torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    return model


def _packed_chunks(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], seq: int) -> torch.Tensor:
    """Texts as chat-log documents (DOC_TEXTS consecutive texts joined by newlines, then eos), concatenated and
    cut into `seq`-token rows (one short row if too little).

    Like a real base model, the result continues a conversation line after line instead of stopping after one
    message: ending a reply is what fine-tuning has to teach, and the demo's baseline shows it.
    """
    documents = ["\n".join(texts[i : i + DOC_TEXTS]) for i in range(0, len(texts), DOC_TEXTS)]
    encoded = tokenizer.backend_tokenizer.encode_batch(documents, add_special_tokens=False)
    stream = [token for encoding in encoded for token in (*encoding.ids, tokenizer.eos_token_id)]
    width = min(seq, len(stream))
    usable = len(stream) // width * width
    return torch.tensor(stream[:usable], dtype=torch.long).view(-1, width)


def _pretrain(model: PreTrainedModel, chunks: torch.Tensor, args: dict) -> tuple[float, float]:
    """AdamW with warmup + cosine decay in fp32; return the loss on a fixed batch before and after."""
    order = torch.Generator().manual_seed(args["seed"])
    probe = chunks[torch.randperm(len(chunks), generator=order)[: args["pretrain_batch"]]]
    steps = args["pretrain_steps"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args["lr"], weight_decay=0.01)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 10), max(1, steps))
    loss_start = _loss(model, probe)
    model.train()
    for batch in _batches(len(chunks), args["pretrain_batch"], steps, order):
        loss = model(input_ids=chunks[batch], labels=chunks[batch]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return loss_start, _loss(model, probe)


def _batches(count: int, size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """`steps` index batches drawn from a fresh seeded permutation of the chunks each epoch."""
    pending: list[int] = []
    for _ in range(steps):
        while len(pending) < min(size, count):
            pending.extend(torch.randperm(count, generator=generator).tolist())
        batch, pending = pending[:size], pending[size:]
        yield torch.tensor(batch)


@torch.no_grad()
def _loss(model: PreTrainedModel, batch: torch.Tensor) -> float:
    model.eval()
    return float(model(input_ids=batch, labels=batch).loss)
