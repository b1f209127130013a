"""`replica chat RUN_DIR`: talk to a fine-tuned run in the terminal; you write as "them", the replica answers as "me".

Nothing of the conversation is written anywhere: no log, no history file.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TextIO

from replica.errors import ReplicaInputError

RESET = "/reset"
QUIT = "/quit"
REPLY_PREFIX = "replica> "
USER_PROMPT = "you> "


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replica chat",
        description="Chat with a fine-tuned run: you write as the other person, the replica answers as you.",
        epilog=f"in the chat: {RESET} clears the context, {QUIT} (or Ctrl-D) exits",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder train.py printed (holds adapter/)")
    parser.add_argument("--context", type=_positive_int, default=8, help="turns of both sides kept as context (default 8)")
    parser.add_argument("--max-new-tokens", type=_positive_int, default=64, help="reply length limit in tokens (default 64)")
    parser.add_argument("--temperature", type=_positive_float, default=0.8, help="sampling temperature (default 0.8)")
    parser.add_argument("--top-p", type=_probability, default=0.95, help="nucleus sampling mass (default 0.95)")
    parser.add_argument("--greedy", action="store_true", help="always pick the most likely token (no sampling)")
    parser.add_argument("--seed", type=int, help="sampling seed for reproducible replies (default: random)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="where to run the model (default: cuda if available)")
    parser.add_argument("--once", metavar="TEXT", help="answer this one message, print the reply line and exit")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from replica.model.run_dir import inspect_run

    info = inspect_run(args.run_dir)  # fail fast, before torch and the model load
    device = _device(args.device)
    session = ChatSession.load(args, device)
    if args.once is not None:
        print(session.reply(args.once))
        return 0
    print(
        f"Chatting with {info.run_dir} ({info.meta['base_model']} + adapter). You write as them, the replica answers "
        f"as you.\nCommands: {RESET} clears the context, {QUIT} or Ctrl-D exits.",
        file=sys.stderr,
    )
    chat_loop(session, sys.stdin, interactive=sys.stdin.isatty())
    return 0


class ChatSession:
    """A loaded run plus the rolling context of the conversation (kept in memory only)."""

    def __init__(self, model, formatter, sampling, context_turns: int, seed: int | None) -> None:
        self.model = model
        self.formatter = formatter
        self.sampling = sampling
        self.context_turns = context_turns
        self.seed = seed
        self.turns: list[dict] = []
        self.replies = 0

    @classmethod
    def load(cls, args: argparse.Namespace, device: str) -> ChatSession:
        from transformers.utils import logging as hf_logging

        from replica.inference.generation import Sampling
        from replica.inference.loading import load_run

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        with warnings.catch_warnings():  # library deprecation chatter would bury the chat
            warnings.simplefilter("ignore")
            model, formatter, info = load_run(args.run_dir, device=device)
        sampling = replace(
            Sampling.from_cfg(info.config.get("generation")),
            max_new_tokens=args.max_new_tokens,
            do_sample=not args.greedy,
            temperature=args.temperature,
            top_p=args.top_p,
        )
        return cls(model, formatter, sampling, args.context, args.seed)

    def reply(self, text: str) -> str:
        """Add `text` as their message, generate the replica's answer (on one line), keep both in the context."""
        from replica.inference.generation import generate_replies

        self.turns.append({"role": "them", "text": text})
        seed = secrets.randbelow(2**31) if self.seed is None else self.seed + self.replies
        sampling = replace(self.sampling, seed=seed)
        generated = generate_replies(self.model, self.formatter, [self.turns[-self.context_turns :]], sampling, 1)
        answer = " ".join(generated[0].text.split())
        self.replies += 1
        if answer:
            self.turns.append({"role": "me", "text": answer})
        self.turns = self.turns[-self.context_turns :]
        return answer

    def reset(self) -> None:
        self.turns.clear()


def chat_loop(session: ChatSession, lines: TextIO, *, interactive: bool) -> None:
    """Read messages until /quit or end of input; print one reply line per message."""
    if interactive:
        import readline  # noqa: F401  (line editing for input(); its history stays in memory)
    while (line := _read_line(lines, interactive)) is not None:
        text = line.strip()
        if text == QUIT:
            return
        if text == RESET:
            session.reset()
            print("(context cleared)", file=sys.stderr)
        elif text:
            print(REPLY_PREFIX + session.reply(text), flush=True)


def _read_line(lines: TextIO, interactive: bool) -> str | None:
    """The next line typed or piped in, None at end of input."""
    if not interactive:
        return lines.readline() or None
    try:
        return input(USER_PROMPT)
    except EOFError:
        print(file=sys.stderr)
        return None


def _device(requested: str | None) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ReplicaInputError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return number


def _probability(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return number
