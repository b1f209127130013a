"""Replica's default engine behind `replica serve` vs llama.cpp run directly on the run's exported GGUF, on the CPU.

    python benchmarks/generation_speed.py RUN_DIR [--prompts 32] [--max-new-tokens 64] [--clients 8] [--conversations 3]
                                          [--chat-max-tokens 12]

RUN_DIR is a finished run (make one with `python train.py experiment=smollm2_demo`); nothing is trained here.
Both sides get the same prompt token ids (the run's formatter, over its val/test contexts), the same sampling (the
run's generation block; prompt i samples with seed+i) and the same token limit:
  - llama.cpp directly: `replica export RUN --gguf` (the run's engine quant), `llama_cpp.Llama` with every core,
    one prompt after another, each stopping at llama.cpp's end of generation;
  - `replica serve RUN` with its default flags: the prompts one request at a time, then from CLIENTS concurrent
    clients (each sending its share), over HTTP;
  - time to the first token of a chat's fifth turn (streamed): right after turns 1-4 went through the server
    (their prefix is in its KV cache), and the same request on a fresh server (nothing cached). The chat's replies
    are kept short (--chat-max-tokens) so its five turns fit the run's prompt budget (max_length/2 tokens): a longer
    chat loses its oldest turns from the prompt, and with them any prefix to reuse.
Warm-up requests (other contexts, CLIENTS at once, which also replace every cached prefix) and two warm-up
generations run first, so one-time costs count for neither side. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SINGLE_TARGET = 0.8  # replica one request at a time / llama.cpp single stream
CONCURRENT_TARGET = 1.0  # replica with CLIENTS concurrent clients (total) / llama.cpp single stream
DIRECT_WARMUP = 2
CHAT_TURNS = 5
CHAT_MESSAGES = ("hey, are you around tonight?", "did you see the game?", "where are you now?",
                 "shall we go to the beach tomorrow?", "what time works for you?", "ok, I'll bring the snacks",
                 "did you finish the book?", "call me when you can")
ROLE_OF_TURN = {"them": "user", "me": "assistant"}
HOW_TO_MAKE_A_RUN = "make one with `python train.py experiment=smollm2_demo`"


@dataclass(frozen=True)
class Prompt:
    """One timed prompt: its context turns, the token ids Replica builds for it, and its seed."""

    context: list[dict]
    ids: list[int]
    seed: int


@dataclass(frozen=True)
class Setup:
    """What both sides share: the run, its formatter, sampling, relationship label and cores."""

    run_dir: Path
    formatter: object
    sampling: object  # replica.inference.jobs.Sampling
    label: str | None
    quant: str
    cores: int

    def prompt(self, context: list[dict], seed: int) -> Prompt:
        from replica.prepare.relationships import GROUP

        return Prompt(context, self.formatter.prompt_ids(context, self.label, self.label == GROUP), seed)


def held_out_contexts(run_dir: Path, count: int) -> list[list[dict]]:
    """`count` contexts of the run's val then test split, cycling through them when they are fewer."""
    from replica.evaluation.data import load_split
    from replica.prepare.pipeline import run_dataset

    folder = run_dataset(run_dir, log=lambda line: print(line, file=sys.stderr)).dir
    rows = load_split(folder, "val") + load_split(folder, "test")
    return [rows[index % len(rows)]["context"] for index in range(count)]


def load_setup(run_dir: Path, max_new_tokens: int) -> Setup:
    """The run's formatter and generation block (its token limit replaced), without loading a model."""
    from replica.inference.jobs import Sampling
    from replica.inference.llama_cpp_engine import threads
    from replica.inference.loading import quiet_loading, run_formatter
    from replica.model.run_dir import inspect_run
    from replica.settings import GenerationSection

    info = inspect_run(run_dir)
    with quiet_loading():
        formatter = run_formatter(info)
    block = GenerationSection.of_run(info.config)
    sampling = Sampling.from_block(block, max_new_tokens=max_new_tokens)
    return Setup(run_dir, formatter, sampling, formatter.addressee(None), block.engine_quant, threads())


# ---- llama.cpp directly --------------------------------------------------------------------------------
def export_gguf(run_dir: Path, out: Path, quant: str) -> Path:
    """The run's GGUF written by the real `replica export` command."""
    from replica.commands.export import gguf_file_name
    from tests.serve_helpers import replica_cli

    done = replica_cli("export", run_dir, "--gguf", "--quant", quant, "--out", out, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"replica export failed: {done.stderr[-2000:]}")
    return out / gguf_file_name(quant)


def llama_cpp_direct(setup: Setup, gguf: Path, prompts: list[Prompt], warmup: list[Prompt]) -> dict:
    """Tokens, seconds and tokens/s of llama.cpp generating the prompts one after another."""
    from replica.export.llama_cpp_run import generate, load_gguf

    llm = load_gguf(gguf, n_ctx=setup.formatter.max_length + setup.sampling.max_new_tokens, threads=setup.cores)
    for prompt in warmup:
        generate(llm, prompt.ids, setup.sampling, prompt.seed)
    started = time.perf_counter()
    replies = [generate(llm, prompt.ids, setup.sampling, prompt.seed) for prompt in prompts]
    seconds = time.perf_counter() - started
    llm.close()
    tokens = sum(len(reply.token_ids) for reply in replies)
    return {**rate(tokens, seconds), "prompt_tokens": sum(len(prompt.ids) for prompt in prompts),
            "ended_by_eog": sum(reply.ended_by_eog for reply in replies)}


def rate(tokens: int, seconds: float) -> dict:
    """Generated tokens, wall seconds and their quotient."""
    return {"tokens": tokens, "seconds": round(seconds, 6), "tokens_per_s": round(tokens / seconds, 3)}


# ---- replica serve over HTTP ---------------------------------------------------------------------------
def messages(context: list[dict]) -> list[dict]:
    """A context's turns as OpenAI chat messages (their "them" is the user, "me" the replica); a group chat's
    speaker pseudonym goes into the text, as Replica's prompts write it (`contact_3: text`)."""
    return [{"role": ROLE_OF_TURN[turn["role"]],
             "content": f"{turn['speaker']}: {turn['text']}" if turn.get("speaker") else turn["text"]}
            for turn in context]


def body(setup: Setup, turns: list[dict], seed: int, *, stream: bool = False, max_tokens: int | None = None) -> dict:
    """A chat-completions request with the benchmark's sampling (and token limit, unless `max_tokens` is given)."""
    sampling = setup.sampling
    request = {"messages": turns, "max_tokens": max_tokens or sampling.max_new_tokens, "seed": seed, "top_p": sampling.top_p,
               "temperature": sampling.temperature if sampling.do_sample else 0.0}
    if stream:
        request.update(stream=True, stream_options={"include_usage": True})
    return request


def complete(url: str, request: dict) -> dict:
    """One non-streamed request: its text and usage."""
    from tests.serve_helpers import call

    answer = call(url, "POST", "/v1/chat/completions", request, timeout=1800)
    if answer.status != 200:
        raise RuntimeError(f"replica serve answered {answer.status}: {answer.raw[:300]!r}")
    reply = answer.json()
    return {"text": reply["choices"][0]["message"]["content"], **reply["usage"]}


def sequential(url: str, setup: Setup, prompts: list[Prompt]) -> tuple[dict, list[dict]]:
    """The prompts one request at a time; `same_prompt_length`: how many prompts the server read as many tokens
    of as llama.cpp got."""
    started = time.perf_counter()
    replies = [complete(url, body(setup, messages(p.context), p.seed)) for p in prompts]
    seconds = time.perf_counter() - started
    figures = rate(sum(r["completion_tokens"] for r in replies), seconds)
    same = sum(r["prompt_tokens"] == len(p.ids) for r, p in zip(replies, prompts))
    return {**figures, "prompt_tokens": sum(r["prompt_tokens"] for r in replies), "same_prompt_length": same}, replies


def concurrent(url: str, setup: Setup, prompts: list[Prompt], clients: int) -> tuple[dict, list[dict]]:
    """`clients` threads, client k sending prompts k, k+clients, ... one after another."""
    def client(first: int) -> list[tuple[int, dict]]:
        return [(i, complete(url, body(setup, messages(prompts[i].context), prompts[i].seed)))
                for i in range(first, len(prompts), clients)]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = dict(pair for part in pool.map(client, range(clients)) for pair in part)
    seconds = time.perf_counter() - started
    replies = [done[i] for i in range(len(prompts))]
    return {**rate(sum(r["completion_tokens"] for r in replies), seconds), "clients": clients,
            "requests": len(prompts)}, replies


def warm_up(url: str, setup: Setup, warmup: list[Prompt]) -> None:
    """The warm-up prompts all at once: every slot decodes once and holds a prefix no timed prompt shares."""
    with ThreadPoolExecutor(len(warmup)) as pool:
        list(pool.map(lambda p: complete(url, body(setup, messages(p.context), p.seed)), warmup))


def first_token(url: str, request: dict) -> tuple[float, int]:
    """(ms until the first event after the role chunk that holds text or ends the reply, prompt tokens) of a
    streamed request."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=1800)
    try:
        started = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body=json.dumps(request),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        first, prompt_tokens = None, 0
        for line in response:
            if not line.startswith(b"data: {"):
                continue
            event = json.loads(line[6:])
            choice = (event.get("choices") or [{}])[0]
            if first is None and (choice.get("delta", {}).get("content") or choice.get("finish_reason")):
                first = time.perf_counter() - started
            prompt_tokens = (event.get("usage") or {}).get("prompt_tokens", prompt_tokens)
    finally:
        connection.close()
    if first is None:
        raise RuntimeError(f"the streamed reply ended without a token (status {response.status})")
    return first * 1000, prompt_tokens


def chat_until_fifth(url: str, setup: Setup, conversation: int, max_tokens: int) -> list[dict]:
    """Turns 1-4 of a chat through the server (user message, the replica's reply, ...), plus the fifth user
    message: the messages of the fifth request."""
    turns: list[dict] = []
    for turn in range(CHAT_TURNS):
        turns.append({"role": "user", "content": CHAT_MESSAGES[(conversation + turn) % len(CHAT_MESSAGES)]})
        if turn < CHAT_TURNS - 1:
            reply = complete(url, body(setup, turns, setup.sampling.seed + turn, max_tokens=max_tokens))
            turns.append({"role": "assistant", "content": reply["text"]})
    return turns


def cacheable_prefix(setup: Setup, fifth: list[dict]) -> int:
    """Prompt tokens the fifth request shares with the fourth's prompt (what the server can reuse at least)."""
    def ids(turns: list[dict]) -> list[int]:
        context = [{"role": "them" if m["role"] == "user" else "me", "text": m["content"]} for m in turns if m["content"].strip()]
        return setup.prompt(context, 0).ids

    fourth, fifth_ids = ids(fifth[:-2]), ids(fifth)
    return next((i for i, (a, b) in enumerate(zip(fourth, fifth_ids)) if a != b), min(len(fourth), len(fifth_ids)))


# ---- the benchmark -------------------------------------------------------------------------------------
def serve(setup: Setup, scratch: Path, name: str):
    """`replica serve RUN` with its default flags on a free port, started and healthy."""
    from tests.serve_helpers import Server

    return Server(setup.run_dir, scratch / f"{name}.log")


def engine_of(server) -> str:
    """The engine `replica serve` said it generates with."""
    marker = "generating with "
    line = next((line for line in server.output().splitlines() if marker in line), "")
    return line.split(marker, 1)[-1].strip() or "unknown"


def served(setup: Setup, scratch: Path, prompts: list[Prompt], warmup: list[Prompt], conversations: int,
           chat_tokens: int) -> dict:
    """Single-stream and concurrent figures, and the warm fifth-turn first tokens, from one server."""
    server = serve(setup, scratch, "server")
    try:
        warm_up(server.url, setup, warmup)
        single, single_replies = sequential(server.url, setup, prompts)
        warm_up(server.url, setup, warmup)
        many, many_replies = concurrent(server.url, setup, prompts, len(warmup))
        chats, warm = [], []
        for conversation in range(conversations):
            chats.append(chat_until_fifth(server.url, setup, conversation, chat_tokens))
            warm.append(first_token(server.url, fifth_turn(setup, chats[-1], chat_tokens)))
        engine = engine_of(server)
    finally:
        server.stop()
    same = sum(a["text"] == b["text"] for a, b in zip(single_replies, many_replies))
    return {"engine": engine, "single": single, "concurrent": {**many, "same_replies_as_single": same},
            "chats": chats, "warm": warm}


def fifth_turn(setup: Setup, chat: list[dict], chat_tokens: int) -> dict:
    """The streamed request of a chat's fifth turn."""
    return body(setup, chat, setup.sampling.seed, stream=True, max_tokens=chat_tokens)


def cold_first_tokens(setup: Setup, scratch: Path, chats: list[list[dict]], warmup: list[Prompt],
                      chat_tokens: int) -> list[tuple[float, int]]:
    """The same fifth-turn requests on a fresh (warmed-up) server, where no prefix of them is cached."""
    server = serve(setup, scratch, "fresh-server")
    try:
        warm_up(server.url, setup, warmup)
        return [first_token(server.url, fifth_turn(setup, chat, chat_tokens)) for chat in chats]
    finally:
        server.stop()


def benchmark(run_dir: Path, scratch: Path, count: int, max_new_tokens: int, clients: int, conversations: int,
              chat_tokens: int) -> dict:
    """Every figure of the JSON line, raw and as ratios."""
    setup = load_setup(run_dir, max_new_tokens)
    contexts = held_out_contexts(run_dir, count + clients)
    prompts = [setup.prompt(context, setup.sampling.seed + i) for i, context in enumerate(contexts[:count])]
    warmup = [setup.prompt(context, setup.sampling.seed + count + i) for i, context in enumerate(contexts[count:])]
    load_before = os.getloadavg()
    gguf = export_gguf(run_dir, scratch / "gguf", setup.quant)
    direct = llama_cpp_direct(setup, gguf, prompts, warmup[:DIRECT_WARMUP])
    server = served(setup, scratch, prompts, warmup, conversations, chat_tokens)
    cold = cold_first_tokens(setup, scratch, server["chats"], warmup, chat_tokens)
    load_after = os.getloadavg()
    single_ratio = server["single"]["tokens_per_s"] / direct["tokens_per_s"]
    concurrent_ratio = server["concurrent"]["tokens_per_s"] / direct["tokens_per_s"]
    sampling = setup.sampling
    return {
        "run_dir": str(run_dir),
        "prompts": count,
        "max_new_tokens": max_new_tokens,
        "sampling": {"do_sample": sampling.do_sample, "temperature": sampling.temperature, "top_p": sampling.top_p,
                     "top_k": sampling.top_k, "repetition_penalty": sampling.repetition_penalty, "seed": sampling.seed},
        "quant": setup.quant,
        "cores": setup.cores,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),  # llama.cpp's OpenMP threads spin unless PASSIVE
        "replica_engine": server["engine"],
        "llama_cpp_single": direct,
        "replica_single": server["single"],
        "replica_concurrent": server["concurrent"],
        "ttft_fifth_turn": {
            "conversations": conversations,
            "chat_max_tokens": chat_tokens,
            "warm_ms": [round(ms, 1) for ms, _ in server["warm"]],
            "cold_ms": [round(ms, 1) for ms, _ in cold],
            "warm_median_ms": round(statistics.median(ms for ms, _ in server["warm"]), 1),
            "cold_median_ms": round(statistics.median(ms for ms, _ in cold), 1),
            "prompt_tokens": [tokens for _, tokens in server["warm"]],
            "cold_prompt_tokens": [tokens for _, tokens in cold],
            "cacheable_prefix_tokens": [cacheable_prefix(setup, chat) for chat in server["chats"]],
        },
        "single_stream_ratio": round(single_ratio, 4),
        "concurrent_ratio": round(concurrent_ratio, 4),
        "target": {f"single_stream_ratio>={SINGLE_TARGET:g}": single_ratio >= SINGLE_TARGET,
                   f"concurrent_ratio>={CONCURRENT_TARGET:g}": concurrent_ratio >= CONCURRENT_TARGET},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }


def report(result: dict) -> None:
    """The human-readable lines (the JSON follows them)."""
    direct, single, many = result["llama_cpp_single"], result["replica_single"], result["replica_concurrent"]
    ttft = result["ttft_fifth_turn"]
    print(f"{result['prompts']} prompts, max_new_tokens={result['max_new_tokens']}, {result['quant']}, "
          f"{result['cores']} cores; load average {result['loadavg_before'][0]} -> {result['loadavg_after'][0]}")
    print(f"  {'llama.cpp directly:':<34} {direct['tokens_per_s']:8.2f} tokens/s ({direct['tokens']} tokens)")
    print(f"  {'replica serve, one at a time:':<34} {single['tokens_per_s']:8.2f} tokens/s ({single['tokens']} tokens)"
          f"  ratio {result['single_stream_ratio']:.2f} (target >= {SINGLE_TARGET:g})")
    clients = f"replica serve, {many['clients']} clients:"
    print(f"  {clients:<34} {many['tokens_per_s']:8.2f} tokens/s ({many['tokens']} tokens)"
          f"  ratio {result['concurrent_ratio']:.2f} (target >= {CONCURRENT_TARGET:g})")
    print(f"  first token of a fifth turn: {ttft['warm_median_ms']:.0f} ms with turns 1-4 cached, "
          f"{ttft['cold_median_ms']:.0f} ms uncached (engine: {result['replica_engine']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help=f"a finished training run ({HOW_TO_MAKE_A_RUN})")
    parser.add_argument("--prompts", type=int, default=32, help="timed prompts (default 32)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="token limit of every reply (default 64)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--conversations", type=int, default=3, help="chats whose fifth turn is timed (default 3)")
    parser.add_argument("--chat-max-tokens", type=int, default=12, help="token limit of those chats' replies (default 12)")
    args = parser.parse_args(argv)
    problem = None
    if args.run_dir is None:
        problem = f"give a finished run folder: {HOW_TO_MAKE_A_RUN}"
    elif min(args.prompts, args.max_new_tokens, args.clients, args.conversations, args.chat_max_tokens) < 1:
        problem = "--prompts, --max-new-tokens, --clients, --conversations and --chat-max-tokens must be at least 1"
    elif args.prompts < args.clients or args.conversations > len(CHAT_MESSAGES):
        problem = f"--prompts must be at least --clients, --conversations at most {len(CHAT_MESSAGES)}"
    if problem:
        print(f"generation_speed.py: error: {problem}", file=sys.stderr)
        return 2

    from replica.task import exit_code

    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="replica-genbench-") as scratch:
            result = benchmark(args.run_dir, Path(scratch), args.prompts, args.max_new_tokens, args.clients,
                               args.conversations, args.chat_max_tokens)
        report(result)
        print(json.dumps(result))

    return exit_code("generation_speed.py", run)


if __name__ == "__main__":
    sys.exit(main())
