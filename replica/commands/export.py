"""`replica export RUN --gguf`: one GGUF file (and with --ollama a Modelfile) that stops at the replica's end of turn.

RUN is a run folder (its adapter is merged into the 16-bit base in memory) or a `replica merge` folder. No
llama.cpp checkout is needed: the file is written with the `gguf` package, quantized in Python.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from replica.commands.arguments import OneLineParser
from replica.errors import ReplicaInputError

QUANT_NAMES = ("f16", "q8_0", "q4_0", "f32")
DEFAULT_OUT = "gguf"  # inside the run folder
MODELFILE = "Modelfile"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="replica export",
        description="Export a run (or a merged model) to one GGUF file for llama.cpp, Ollama and LM Studio.",
    )
    parser.add_argument("run_dir", metavar="RUN", help="the run folder train.py printed, or a `replica merge` folder")
    parser.add_argument("--gguf", action="store_true", help="write a GGUF file (the export format)")
    parser.add_argument("--quant", choices=QUANT_NAMES, default="q8_0", help="weights encoding (default q8_0; f32 is lossless)")
    parser.add_argument("--out", metavar="DIR", help=f"folder to write to (default: RUN/{DEFAULT_OUT}/)")
    parser.add_argument("--ollama", action="store_true", help="also write an Ollama Modelfile and print `ollama create`")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    return parser


def output_paths(run: Path, out: str | None, quant: str, ollama: bool) -> tuple[Path, Path | None]:
    """The GGUF path and, with --ollama, the Modelfile path."""
    folder = Path(out).expanduser() if out else run / DEFAULT_OUT
    return folder / gguf_file_name(quant), (folder / MODELFILE if ollama else None)


def gguf_file_name(quant: str) -> str:
    return f"replica-{quant}.gguf"


def check_outputs(paths: Sequence[Path], *, force: bool) -> None:
    """Refuse an --out that is a file, and existing outputs unless --force."""
    folder = paths[0].parent
    if folder.exists() and not folder.is_dir():
        raise ReplicaInputError("--out is a file, not a folder: pick a new or existing folder", path=str(folder))
    for path in paths:
        if path.is_dir():
            raise ReplicaInputError("is a folder where the export writes a file: move it or pick another --out", path=str(path))
        if path.exists() and not force:
            raise ReplicaInputError("already exists: pass --force to replace it, or pick another --out", path=str(path))


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not args.gguf:
        raise ReplicaInputError("choose the export format: replica export RUN --gguf [--quant f16|q8_0|q4_0]")
    run = Path(args.run_dir).expanduser()
    if not run.is_dir():
        raise ReplicaInputError("no such folder: pass the run folder train.py printed, or a `replica merge` folder", path=str(run))
    gguf_path, modelfile_path = output_paths(run, args.out, args.quant, args.ollama)
    check_outputs([p for p in (gguf_path, modelfile_path) if p is not None], force=args.force)

    from replica.atomic import write_text
    from replica.export.modelfile import modelfile_text
    from replica.export.source import load_source
    from replica.gguf.gguf_file import write_gguf
    from replica.model.run_meta import recorded_generation

    started = time.perf_counter()
    source = load_source(run)
    loaded = time.perf_counter()
    modelfile = modelfile_text(source.formatter, gguf_path.name, recorded_generation(source.meta)) if modelfile_path else None
    write_gguf(source.model, source.formatter, gguf_path, args.quant, name=source.name, chat_template=source.chat_template)
    written = time.perf_counter()
    size_mb = gguf_path.stat().st_size / 1e6
    print(
        f"wrote {gguf_path} ({args.quant}, {size_mb:.1f} MB; loading and merging {loaded - started:.1f} s, "
        f"writing {written - loaded:.1f} s)"
    )
    if modelfile_path is not None and modelfile is not None:
        write_text(modelfile_path, modelfile)
        print(f"wrote {modelfile_path}")
        print(f"next: ollama create replica -f {modelfile_path}")
    else:
        print(f"next: llama-cli -m {gguf_path} -cnv   (or load it in LM Studio; --ollama writes a Modelfile)")
    return 0
