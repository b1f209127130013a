"""`replica chat RUN_DIR`: talk to a fine-tuned run in the terminal; you write as "them", the replica answers as "me".

Nothing of the conversation is written anywhere (no log, no history file) but the feedback the owner gives: `/fix TEXT`
and `/good` store the last reply, its context and the correction, masked, in the run's private feedback store
(`replica/feedback/store.py`; `replica feedback RUN` counts, lists and deletes it).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TextIO

from replica.commands.arguments import OneLineParser, positive_int, setting
from replica.devices import DEVICES, device_flag
from replica.errors import ReplicaInputError
from replica.feedback.store import FeedbackStore
from replica.prepare.relationships import GROUP
from replica.settings import ENGINES

RESET = "/reset"
QUIT = "/quit"
TO = "/to"
FIX = "/fix"
GOOD = "/good"
REPLY_PREFIX = "replica> "
USER_PROMPT = "you> "
FROM_RUN = "(default: the run's generation block)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="replica chat",
        description="Chat with a fine-tuned run: you write as the other person, the replica answers as you.",
        epilog=f"in the chat: {RESET} clears the context, {TO} LABEL changes who you are to the replica, {FIX} TEXT "
               f"saves TEXT as what you would have said instead of the last reply (the chat goes on from it), {GOOD} "
               f"marks the last reply as right, {QUIT} (or Ctrl-D) exits. Feedback stays in the run folder, masked: "
               "replica feedback RUN_DIR shows and deletes it. A reply of several messages prints one line per message.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder train.py printed (holds adapter/)")
    parser.add_argument(
        "--to", metavar="LABEL",
        help="who you are to the replica: one of the run's relationship labels, e.g. family or friend (default: its "
             "most common; runs trained without data.relationships take none)",
    )
    parser.add_argument("--context", type=positive_int, default=8, help="turns of both sides kept as context (default 8)")
    parser.add_argument("--max-new-tokens", type=setting("generation", "max_new_tokens"), help=f"reply length limit in tokens {FROM_RUN}")
    parser.add_argument("--temperature", type=setting("generation", "temperature"), help=f"sampling temperature {FROM_RUN}")
    parser.add_argument("--top-p", type=setting("generation", "top_p"), help=f"nucleus sampling mass {FROM_RUN}")
    parser.add_argument("--top-k", type=setting("generation", "top_k"), help=f"sample among the k most likely tokens, 0 = all {FROM_RUN}")
    parser.add_argument("--repetition-penalty", type=setting("generation", "repetition_penalty"), help=f"penalty for tokens already seen, 1 = none {FROM_RUN}")
    parser.add_argument(
        "--greedy", action=argparse.BooleanOptionalAction, default=None,
        help=f"always pick the most likely token; --no-greedy samples {FROM_RUN}",
    )
    parser.add_argument("--seed", type=int, help="sampling seed for reproducible replies (default: random)")
    parser.add_argument("--device", type=device_flag, help=f"where to run the model: {DEVICES} (default: auto, cuda if available)")
    parser.add_argument("--engine", choices=ENGINES, help=f"what generates: llama_cpp (the run's GGUF, built once) or transformers; auto = llama.cpp on CPU, transformers on a GPU {FROM_RUN}")
    parser.add_argument("--once", metavar="TEXT", help="answer this one message, print the reply line and exit")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    from replica.devices import resolve_device
    from replica.model.formatting import choose_relationship
    from replica.model.run_dir import inspect_run

    info = inspect_run(args.run_dir)  # fail fast, before torch and the model load
    labels = info.meta.get("relationships", [])
    in_prompt = bool(info.meta.get("relationship_in_prompt"))
    try:
        relationship = choose_relationship(args.to, labels, in_prompt)
    except ReplicaInputError as err:
        raise ReplicaInputError(f"--to: {err}") from None
    session = ChatSession.load(args, resolve_device(args.device, option="--device"), relationship)
    print(f"engine: {session.engine.name}", file=sys.stderr)
    print(f"sampling: {session.settings()}", file=sys.stderr)
    if args.once is not None:
        print("\n".join(session.reply(args.once)))
        return 0
    print(
        f"Chatting with {info.run_dir} ({info.meta['base_model']} + adapter). You write as them, the replica answers "
        f"as you.\nCommands: {RESET} clears the context, {FIX} TEXT corrects the last reply, {GOOD} marks it right, "
        f"{QUIT} or Ctrl-D exits.",
        file=sys.stderr,
    )
    if relationship is not None:
        print(f"talking to you as: {relationship} (this run's labels: {', '.join(labels)}; {TO} LABEL changes it)",
              file=sys.stderr)
    chat_loop(session, sys.stdin, interactive=sys.stdin.isatty())
    return 0


@dataclass
class LastReply:
    """The replica's newest reply and what it was given: what /fix and /good store."""

    context: list[dict]  # the turns the reply answered, oldest first
    text: str  # its messages, one per line
    relationship: str | None  # the label it was generated for
    judged: bool = False  # feedback on it was stored


class ChatSession:
    """A loaded run plus the rolling context of the conversation (kept in memory only) and its feedback store."""

    def __init__(self, engine, sampling, context_turns: int, seed: int | None, relationship: str | None = None,
                 *, feedback: FeedbackStore) -> None:
        self.engine = engine
        self.relationship = relationship
        self.formatter = engine.formatter
        self.sampling = sampling
        self.context_turns = context_turns
        self.seed = seed
        self.feedback = feedback
        self.turns: list[dict] = []
        self.last: LastReply | None = None
        self.replies = 0

    @classmethod
    def load(cls, args: argparse.Namespace, device: str, relationship: str | None = None) -> ChatSession:
        from replica.inference.engines import choose_engine, is_auto, open_run_engines
        from replica.inference.jobs import Sampling
        from replica.inference.loading import quiet_loading
        from replica.model.run_dir import inspect_run
        from replica.settings import GenerationSection

        info = inspect_run(args.run_dir)
        block = GenerationSection.of_run(info.config)
        sampling = Sampling.from_block(
            block,
            max_new_tokens=args.max_new_tokens,
            do_sample=None if args.greedy is None else not args.greedy,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            repetition_penalty=args.repetition_penalty,
        )
        requested = args.engine or block.engine
        name = choose_engine(requested, device, option="--engine" if args.engine else "generation.engine")
        with quiet_loading():
            engine = open_run_engines(info, engine=name, quant=block.engine_quant, sides=(True,), slots=1,
                                      max_new_tokens=sampling.max_new_tokens, device=device, fallback=is_auto(requested))[True]
        return cls(engine, sampling, args.context, args.seed, relationship,
                   feedback=FeedbackStore.of_run(info.run_dir, info.config))

    def settings(self) -> str:
        """The sampling in effect (the run's block, with the flags given), as one line."""
        if not self.sampling.do_sample:
            return f"greedy, max_new_tokens {self.sampling.max_new_tokens}"
        keys = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")
        return ", ".join(f"{key} {getattr(self.sampling, key)}" for key in keys)

    def reply(self, text: str) -> list[str]:
        """Add `text` as their message, generate the replica's answer, keep both in the context; the answer's
        messages (a burst is several), each on one line."""
        from replica.inference.generation import generate_replies

        self.turns.append({"role": "them", "text": text})
        seed = secrets.randbelow(2**31) if self.seed is None else self.seed + self.replies
        sampling = replace(self.sampling, seed=seed)
        context = self.turns[-self.context_turns :]
        generated = generate_replies(self.engine, [context], sampling, 1,
                                     relations=[(self.relationship, self.relationship == GROUP)])
        messages = [" ".join(line.split()) for line in generated[0].text.splitlines()]
        messages = [message for message in messages if message]
        self.replies += 1
        self.last = LastReply([dict(turn) for turn in context], "\n".join(messages), self.relationship)
        if messages:
            self.turns.append({"role": "me", "text": self.last.text})
        self.turns = self.turns[-self.context_turns :]
        return messages

    def fix(self, correction: str) -> str:
        """Store `correction` as what the owner would have said instead of the last reply, and go on from it in the
        context; a one-line notice either way."""
        if not correction:
            return f"{FIX} needs the reply you would have sent: {FIX} TEXT"
        stored = self._store(FIX, correction)
        if isinstance(stored, str):
            return stored
        if self.last.text:
            self.turns[-1] = {"role": "me", "text": correction}  # the reply is the newest turn
        else:
            self.turns = [*self.turns, {"role": "me", "text": correction}][-self.context_turns :]
        return f"(correction saved: feedback {stored}; the chat goes on from it)"

    def good(self) -> str:
        """Store the last reply as right; a one-line notice either way."""
        stored = self._store(GOOD, None)
        return stored if isinstance(stored, str) else f"(reply marked good: feedback {stored})"

    def _store(self, command: str, correction: str | None) -> int | str:
        """Store the last reply with `correction` (None: marked good); the entry's id, or why `command` stored
        nothing (no reply yet, feedback already given, an unwritable store)."""
        last = self.last
        if last is None:
            return f"{command}: no reply yet to give feedback on (send a message first)"
        if last.judged:
            return f"{command}: the last reply already has feedback (replica feedback RUN_DIR --list, --delete ID)"
        try:
            entry = self.feedback.add(last.context, last.text, correction=correction, relationship=last.relationship,
                                      group=last.relationship == GROUP)
        except ReplicaInputError as err:
            return f"{command}: {err}"
        last.judged = True
        return entry

    def talk_to(self, label: str) -> str:
        """Switch the relationship the replica answers (the context is kept); a one-line notice either way."""
        try:
            self.relationship = self.formatter.addressee(label)
        except ReplicaInputError as err:
            return str(err)
        return f"(talking to you as: {self.relationship})"

    def reset(self) -> None:
        self.turns.clear()
        self.last = None


def chat_loop(session: ChatSession, lines: TextIO, *, interactive: bool) -> None:
    """Read messages until /quit or end of input; print each reply (a burst: one line per message)."""
    if interactive:
        import readline  # noqa: F401  (line editing for input(); its history stays in memory)
    while (line := _read_line(lines, interactive)) is not None:
        text = line.strip()
        if text == QUIT:
            return
        if text == RESET:
            session.reset()
            print("(context cleared)", file=sys.stderr)
        elif text.startswith(TO + " ") or text == TO:
            print(session.talk_to(text[len(TO):].strip()), file=sys.stderr)
        elif text.startswith(FIX + " ") or text == FIX:
            print(session.fix(text[len(FIX):].strip()), file=sys.stderr)
        elif text == GOOD:
            print(session.good(), file=sys.stderr)
        elif text:
            print(reply_lines(session.reply(text)), flush=True)


def reply_lines(messages: Sequence[str]) -> str:
    """A reply as printed: its first message after the prompt marker, each further message of a burst on its own
    line below it, indented to the same column."""
    first, *rest = messages or [""]
    return "\n".join([REPLY_PREFIX + first, *(" " * len(REPLY_PREFIX) + message for message in rest)])


def _read_line(lines: TextIO, interactive: bool) -> str | None:
    """The next line typed or piped in, None at end of input."""
    if not interactive:
        return lines.readline() or None
    try:
        return input(USER_PROMPT)
    except EOFError:
        print(file=sys.stderr)
        return None
