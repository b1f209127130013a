"""Training pieces: tokenizer setup, chat formatting, batching, the QLoRA LightningModule."""
