"""GGUF files of a model: tensors (merged, or straight from a live PeftModel), tokenizer, stop tokens, quantization.

Below inference and training, so that llama.cpp engines and the stop-sequence callback can build the file a run
generates with; `replica export` (replica/export/) writes the same files for other runtimes.
"""
