"""Write a merged replica as one GGUF file, atomically: the old file or the complete new one, never a partial file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import gguf
import numpy as np
import torch

from replica.errors import ReplicaInputError
from replica.gguf.architecture import (
    arch_name,
    architecture_of,
    gguf_tensors,
    write_hyperparameters,
)
from replica.gguf.quantization import QUANTS, encode, stored_nbytes, stored_type
from replica.gguf.vocab import GgufVocab, build_vocab

TensorSource = Callable[[], Iterable[tuple[str, torch.Tensor]]]  # (HF name, tensor) pairs, fresh at each call
TOKEN_EMBD = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_EMBD] + ".weight"


def write_gguf(model, formatter, path: Path, quant: str, *, name: str, chat_template: str | None) -> GgufVocab:
    """Write `model` (merged, any float dtype) with `formatter`'s tokenizer and stop tokens to `path`."""
    return write_tensors(lambda: model.state_dict().items(), model.config, formatter, path, quant, name=name,
                         chat_template=chat_template)


def write_live_gguf(peft_model, formatter, path: Path, quant: str, *, adapter: bool, name: str,
                    chat_template: str | None = None) -> GgufVocab:
    """Write a live (training) PeftModel to `path` without changing it: merged with its active adapters, or the base
    alone when not `adapter`."""
    from replica.gguf.live import live_tensors

    return write_tensors(lambda: live_tensors(peft_model, adapter=adapter), peft_model.get_base_model().config,
                         formatter, path, quant, name=name, chat_template=chat_template)


def write_tensors(tensors: TensorSource, config, formatter, path: Path, quant: str, *, name: str,
                  chat_template: str | None) -> GgufVocab:
    """Write the (HF name, tensor) pairs `tensors()` yields for a model with `config` to `path`, atomically.

    `tensors()` is called twice (tensor infos, then data): memory stays at the model plus one tensor.
    """
    arch = architecture_of(config)
    layout = [(tensor_name, data.shape, stored_type(tensor_name, data.shape, QUANTS[quant]))
              for tensor_name, data in gguf_tensors(tensors(), config, arch)]
    rows = next(shape[0] for tensor_name, shape, _ in layout if tensor_name == TOKEN_EMBD)
    vocab = build_vocab(formatter, rows, chat_template)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch_name(arch))
        writer.add_name(name)
        writer.add_file_type(QUANTS[quant].file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_hyperparameters(writer, config, rows)
        write_tokenizer(writer, vocab)
        for tensor_name, shape, kind in layout:
            writer.add_tensor_info(tensor_name, shape, np.float32, stored_nbytes(shape, kind), raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for (_, data), (_, _, kind) in zip(gguf_tensors(tensors(), config, arch), layout, strict=True):
            writer.write_tensor_data(encode(data, kind))
        writer.close()
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise ReplicaInputError(f"writing the GGUF file failed ({err.strerror or err}); no partial file was left", path=str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return vocab


def write_tokenizer(writer: gguf.GGUFWriter, vocab: GgufVocab) -> None:
    """The `tokenizer.*` keys: the vocabulary (byte-level BPE merges, or SentencePiece scores and prefix space for
    byte fallback), stop tokens and the chat template."""
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.model == "llama":
        writer.add_token_scores(vocab.scores)
        writer.add_add_space_prefix(vocab.add_space_prefix)
    else:
        writer.add_token_merges(vocab.merges)
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_eot_token_id(vocab.eos_id)
    writer.add_array(gguf.Keys.Tokenizer.EOS_ID + "s", vocab.eos_ids)  # Ollama's tokenizer.ggml.eos_token_ids
    if vocab.bos_id is not None:
        writer.add_bos_token_id(vocab.bos_id)
    if vocab.pad_id is not None:
        writer.add_pad_token_id(vocab.pad_id)
    if vocab.unk_id is not None:
        writer.add_unk_token_id(vocab.unk_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
