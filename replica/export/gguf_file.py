"""Write a merged replica as one GGUF file, atomically: the old file or the complete new one, never a partial file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import gguf
import numpy as np

from replica.errors import ReplicaInputError
from replica.export.architecture import (
    arch_name,
    architecture_of,
    gguf_tensors,
    write_hyperparameters,
)
from replica.export.quantization import QUANTS, encode, stored_nbytes, stored_type
from replica.export.vocab import GgufVocab, build_vocab


def write_gguf(model, formatter, path: Path, quant: str, *, name: str, chat_template: str | None) -> GgufVocab:
    """Write `model` (merged, any float dtype) with `formatter`'s tokenizer and stop tokens to `path`."""
    arch = architecture_of(model.config)
    rows = model.get_input_embeddings().weight.shape[0]
    vocab = build_vocab(formatter, rows, chat_template)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch_name(arch))
        writer.add_name(name)
        writer.add_file_type(QUANTS[quant].file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_hyperparameters(writer, model.config, rows)
        write_tokenizer(writer, vocab)
        # tensor infos first, then one tensor at a time: memory stays at the model plus one tensor
        for tensor_name, data in gguf_tensors(model, arch):
            kind = stored_type(tensor_name, data.shape, QUANTS[quant])
            writer.add_tensor_info(tensor_name, data.shape, np.float32, stored_nbytes(data.shape, kind), raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor_name, data in gguf_tensors(model, arch):
            writer.write_tensor_data(encode(data, stored_type(tensor_name, data.shape, QUANTS[quant])))
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
    """The `tokenizer.*` keys: byte-level BPE vocabulary, stop tokens and the chat template."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
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
