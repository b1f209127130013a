"""How train.py composes a run: each Lightning piece receives at construction what it needs, nothing is set later."""

from __future__ import annotations

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping

from callbacks import AdapterCheckpoint, FinalValidation, StopSequenceEval
from replica.training.run import instantiate_all
from tests.helpers import tiny_cfg


class Formatter:
    """A stand-in for the run's ChatFormatter: the callbacks only keep it at construction."""


def test_callbacks_receive_the_run_inputs_their_constructors_name(tmp_path):
    cfg = tiny_cfg(tmp_path)
    config, formatter = {"seed": 42, "data": {"me": ["Marco"]}}, Formatter()
    examples = [{"context": [], "target": str(index)} for index in range(20)]
    built = instantiate_all(cfg.callbacks, config=config, formatter=formatter, examples=examples)
    by_type = {type(callback): callback for callback in built}
    assert set(by_type) == {AdapterCheckpoint, EarlyStopping, FinalValidation, StopSequenceEval}
    checkpoint, stops = by_type[AdapterCheckpoint], by_type[StopSequenceEval]
    assert checkpoint.config is config and checkpoint.formatter is formatter
    assert stops.formatter is formatter
    assert len(stops.examples) == 8 and all(example in examples for example in stops.examples)  # num_samples=8
    again = instantiate_all(cfg.callbacks, config=config, formatter=formatter, examples=examples)
    assert next(c for c in again if isinstance(c, StopSequenceEval)).examples == stops.examples  # seeded sample


def test_an_adapter_checkpoint_cannot_be_built_without_the_run_config(tmp_path):
    """The exported replica.json can never hold `"config": null`: there is no checkpoint callback without it."""
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(InstantiationException, match="config"):
        instantiate(cfg.callbacks.model_checkpoint)


def test_loggers_are_built_without_run_inputs(tmp_path):
    cfg = tiny_cfg(tmp_path)
    (logger,) = instantiate_all(cfg.logger, config={}, formatter=Formatter(), examples=[])
    assert type(logger).__name__ == "CSVLogger"
