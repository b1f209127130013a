"""The model layer: chat formatting, role tokens, base-model loading, batching, the reply loss, run folders."""
