"""Per-tensor encodings of the export quants: f16, q8_0, q4_0 (quantized in Python with the `gguf` package)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from gguf.quants import quantize


@dataclass(frozen=True)
class Quant:
    """A `--quant` choice: the file type it declares and the encoding of its matrices."""

    file_type: LlamaFileType
    matrices: GGMLQuantizationType
    embeddings: GGMLQuantizationType  # token_embd and output, the layers most sensitive to quantization


QUANTS = {
    "f16": Quant(LlamaFileType.MOSTLY_F16, GGMLQuantizationType.F16, GGMLQuantizationType.F16),
    "q8_0": Quant(LlamaFileType.MOSTLY_Q8_0, GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q8_0),
    "q4_0": Quant(LlamaFileType.MOSTLY_Q4_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q8_0),
}
EMBEDDING_TENSORS = ("token_embd.weight", "output.weight")


def encode(name: str, data: np.ndarray, quant: Quant) -> tuple[np.ndarray, GGMLQuantizationType]:
    """The bytes (or float array) to store for one tensor and their GGML type.

    Vectors (norms, biases, RoPE factors) stay float32; a matrix whose rows do not split into whole blocks
    falls back to f16.
    """
    if data.ndim < 2:
        return data.astype(np.float32), GGMLQuantizationType.F32
    kind = quant.embeddings if name in EMBEDDING_TENSORS else quant.matrices
    block = GGML_QUANT_SIZES[kind][0]
    if kind == GGMLQuantizationType.F16 or data.shape[-1] % block:
        return data.astype(np.float16), GGMLQuantizationType.F16
    return quantize(data.astype(np.float32), kind), kind
