"""The training layer: the QLoRA LightningModule, run composition, resume and schedules."""
