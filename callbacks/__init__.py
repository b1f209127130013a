"""Lightning callbacks: adapter-only checkpoints, stop-sequence evaluation, stop-at-step."""

from callbacks.adapter_checkpoint import AdapterCheckpoint, export_adapter
from callbacks.stop_at_step import StopAtStep
from callbacks.stop_sequence_eval import StopSequenceEval

__all__ = ["AdapterCheckpoint", "StopAtStep", "StopSequenceEval", "export_adapter"]
