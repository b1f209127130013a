"""Lightning callbacks: adapter-only checkpoints, final validation, stop-sequence evaluation, stop-at-step."""

from callbacks.adapter_checkpoint import AdapterCheckpoint, export_adapter
from callbacks.final_validation import FinalValidation
from callbacks.stop_at_step import StopAtStep
from callbacks.stop_sequence_eval import StopSequenceEval

__all__ = ["AdapterCheckpoint", "FinalValidation", "StopAtStep", "StopSequenceEval", "export_adapter"]
