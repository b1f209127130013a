"""Per-tensor encodings of the export quants: f32, f16, q8_0, q4_0 (quantized in Python with the `gguf` package)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from gguf.quants import quant_shape_to_byte_shape, quantize


@dataclass(frozen=True)
class Quant:
    """A `--quant` choice: the file type it declares and the encoding of its matrices."""

    file_type: LlamaFileType
    matrices: GGMLQuantizationType
    embeddings: GGMLQuantizationType  # token_embd and output, the layers most sensitive to quantization


QUANTS = {
    "f32": Quant(LlamaFileType.ALL_F32, GGMLQuantizationType.F32, GGMLQuantizationType.F32),  # lossless, twice f16
    "f16": Quant(LlamaFileType.MOSTLY_F16, GGMLQuantizationType.F16, GGMLQuantizationType.F16),
    "q8_0": Quant(LlamaFileType.MOSTLY_Q8_0, GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q8_0),
    "q4_0": Quant(LlamaFileType.MOSTLY_Q4_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q8_0),
}
QUANTIZED = (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0)
EMBEDDING_TENSORS = ("token_embd.weight", "output.weight")


def stored_type(name: str, shape: tuple[int, ...], quant: Quant) -> GGMLQuantizationType:
    """The GGML type one tensor is stored in.

    Vectors (norms, biases, RoPE factors) stay float32; a matrix whose rows do not split into whole blocks falls
    back to f16.
    """
    if len(shape) < 2:
        return GGMLQuantizationType.F32
    kind = quant.embeddings if name in EMBEDDING_TENSORS else quant.matrices
    if kind in QUANTIZED and shape[-1] % GGML_QUANT_SIZES[kind][0]:
        return GGMLQuantizationType.F16
    return kind


def stored_nbytes(shape: tuple[int, ...], kind: GGMLQuantizationType) -> int:
    """Bytes one tensor of `shape` takes when stored as `kind`."""
    return int(np.prod(quant_shape_to_byte_shape(shape, kind)))


def encode(data: np.ndarray, kind: GGMLQuantizationType) -> np.ndarray:
    """The array to write for one float tensor stored as `kind`."""
    if kind == GGMLQuantizationType.F32:
        return data.astype(np.float32)
    if kind == GGMLQuantizationType.F16:
        return data.astype(np.float16)
    return quantize(data.astype(np.float32), kind)
