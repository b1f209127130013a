"""The `replica` command line: parse, senders, prepare, chat, merge, serve.

Start-up stays light: each subcommand imports what it needs when it runs (`replica parse` never loads torch or
Hydra). How a command ends (errors, exit codes, Ctrl-C) is `replica.task`'s.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from replica.commands.arguments import OneLineParser
from replica.prepare.shown_paths import mask_shown_paths
from replica.task import exit_code

# Commands owned by their own modules; they receive the rest of the command line untouched.
DELEGATED = {
    "chat": ("replica.commands.chat", "talk to a fine-tuned adapter"),
    "merge": ("replica.commands.merge", "merge an adapter into its base model for export"),
    "export": ("replica.commands.export", "export a run to one GGUF file (llama.cpp, LM Studio) and an Ollama Modelfile"),
    "serve": ("replica.commands.serve", "serve a run over an OpenAI-compatible API, with a web chat and a blind test"),
    "feedback": ("replica.commands.feedback", "show or delete the corrections (/fix) and good marks (/good) given in chat"),
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
    return exit_code("replica", lambda: _dispatch(args))


def _dispatch(args: list[str]) -> int | None:
    if args and args[0] in DELEGATED:
        module = importlib.import_module(DELEGATED[args[0]][0])
        return module.main(args[1:])
    parsed = build_parser().parse_args(args)
    return parsed.run(parsed)


if __name__ == "__main__":
    sys.exit(main())
