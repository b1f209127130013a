"""The `replica` command line: parse, senders, prepare, chat, merge, serve.

Start-up stays light: each subcommand imports what it needs when it runs (`replica parse` never loads torch or
Hydra). A ReplicaInputError becomes one `replica: error: ...` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from replica.commands.arguments import OneLineParser
from replica.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, ReplicaInputError
from replica.prepare.shown_paths import mask_shown_paths

# Commands owned by their own modules; they receive the rest of the command line untouched.
DELEGATED = {
    "chat": ("replica.commands.chat", "talk to a fine-tuned adapter"),
    "merge": ("replica.commands.merge", "merge an adapter into its base model for export"),
    "export": ("replica.commands.export", "export a run to one GGUF file (llama.cpp, LM Studio) and an Ollama Modelfile"),
    "serve": ("replica.commands.serve", "serve a run over an OpenAI-compatible API, with a web chat and a blind test"),
}


def build_parser() -> argparse.ArgumentParser:
    from replica.commands import ingest

    parser = OneLineParser(
        prog="replica",
        description="Clone how one person texts: chat exports -> private dataset -> QLoRA fine-tune.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest.add_commands(subcommands)
    for name, (_, summary) in DELEGATED.items():
        subcommands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    mask_shown_paths()  # export names in errors and logs lose their contacts' names and numbers
    try:
        if args and args[0] in DELEGATED:
            module = importlib.import_module(DELEGATED[args[0]][0])
            return module.main(args[1:]) or 0
        parsed = build_parser().parse_args(args)
        return parsed.run(parsed) or 0
    except ReplicaInputError as err:
        print(f"replica: error: {' '.join(str(err).split())}", file=sys.stderr)
        return ReplicaInputError.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
