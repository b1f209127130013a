"""What an export starts from: a run (base + adapter, merged in memory) or a `replica merge` folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from replica.errors import ReplicaInputError


@dataclass
class ExportSource:
    """A merged model in eval mode, the run's chat formatter, the chat template to embed and what the folder
    recorded (replica.json)."""

    model: object
    formatter: object
    name: str
    chat_template: str | None
    meta: dict


def load_source(path: str | Path) -> ExportSource:
    """Load `path` (a run folder or a merged folder) as one merged model on CPU (float32 for a merged folder, the
    run's model.dtype for a run)."""
    from replica.inference.loading import load_merged, quiet_loading
    from replica.inference.merging import merged_model
    from replica.model.chat_template import chat_template
    from replica.model.run_dir import inspect_run
    from replica.model.run_meta import is_merged_dir

    path = Path(path).expanduser()
    if is_merged_dir(path):
        with quiet_loading():
            model, formatter, meta = load_merged(path)  # in eval mode, float32 on CPU
    else:
        if path.is_dir() and not (path / "adapter").is_dir() and not (path / "adapter_config.json").is_file():
            raise ReplicaInputError(
                "not a run folder (no adapter/) nor a merged model (no config.json + replica.json): pass the "
                "folder train.py printed, or one written by `replica merge`",
                path=str(path),
            )
        inspect_run(path)
        model, formatter, info = merged_model(path)  # kept in its dtype: tensors are converted one at a time while writing
        meta = info.meta
    template = chat_template(formatter) or formatter.tokenizer.chat_template
    return ExportSource(model, formatter, path.resolve().name, template, meta)
