"""`replica serve RUN_DIR|MERGED_DIR`: an OpenAI-compatible API, a web chat (/) and a blind test (/blind); feedback
sent to /v1/feedback is stored, masked, in the served folder (`replica.feedback`).

The model is loaded once (4-bit base + adapter for a run folder, the merged model for a `replica merge` folder).
Safe by default: binds to 127.0.0.1, refuses another interface without --api-key, never logs request bodies.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from replica.commands.arguments import (
    OneLineParser,
    non_negative_float,
    port,
    positive_float,
    positive_int,
    setting,
)
from replica.devices import DEVICES, device_flag
from replica.errors import ReplicaInputError
from replica.settings import ENGINES

if TYPE_CHECKING:
    from replica.feedback.store import FeedbackStore
    from replica.model.run_dir import RunInfo

LOOPBACK_NAMES = ("localhost",)
FROM_RUN = "(default: the run's generation block; a merged folder's defaults)"
WINDOW_MS = {"transformers": 20.0, "llama_cpp": 0.0}  # a batch's wait for company when no flag is given
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long (uvicorn's timeout_keep_alive)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="replica serve",
        description="Serve a run (or a merged model) over an OpenAI-compatible HTTP API, with a web chat and a blind test.",
    )
    parser.add_argument("model_dir", metavar="RUN_DIR|MERGED_DIR", help="a run folder (holds adapter/) or a `replica merge` folder")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; others need --api-key)")
    parser.add_argument("--port", type=port, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--api-key", help="require Authorization: Bearer KEY on every endpoint but /health")
    parser.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME",
        help="a host name clients may use in the Host header, besides localhost and IP addresses (repeatable)",
    )
    parser.add_argument("--device", type=device_flag, help=f"where to run the model: {DEVICES} (default: auto, cuda if available)")
    parser.add_argument("--engine", choices=ENGINES, help=f"what generates: llama_cpp (the run's GGUF, built once) or transformers; auto = llama.cpp on CPU, transformers on a GPU {FROM_RUN}")
    parser.add_argument("--max-batch", type=positive_int, default=8, help="requests generated together (default 8; 1 = one at a time)")
    parser.add_argument("--batch-window-ms", type=non_negative_float, help="how long an idle server waits for more requests before it starts generating (default: 20 on transformers; 0 on llama.cpp, whose running batch takes requests as they come)")
    parser.add_argument("--queue-size", type=positive_int, default=64, help="requests allowed to wait behind a generating batch; more get 503 (default 64)")
    parser.add_argument("--max-tokens", type=setting("generation", "max_new_tokens"), help=f"reply length when a request names none, at most the limit {FROM_RUN}")
    parser.add_argument("--max-tokens-limit", type=positive_int, default=512, help="largest max_tokens a request may ask for (default 512)")
    parser.add_argument("--max-body-kb", type=positive_int, default=256, help="request body limit in KiB (default 256)")
    parser.add_argument("--read-timeout", type=positive_float, default=10.0, help="seconds a client has for its request headers, and again for its body (default 10)")
    parser.add_argument("--max-connections", type=positive_int, default=64, help="open connections served at once; more get 503 (default 64)")
    parser.add_argument("--blind-guesses-per-hour", type=positive_int, default=60, help="blind-test guesses one browser may add per hour (default 60)")
    parser.add_argument("--temperature", type=setting("generation", "temperature"), help=f"sampling temperature when a request names none {FROM_RUN}")
    parser.add_argument("--top-p", type=setting("generation", "top_p"), help=f"nucleus sampling mass when a request names none {FROM_RUN}")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    check_exposure(args.host, args.api_key)
    if args.max_tokens is not None and args.max_tokens > args.max_tokens_limit:
        raise ReplicaInputError(f"--max-tokens {args.max_tokens} is above --max-tokens-limit {args.max_tokens_limit}")
    from replica.model.run_dir import inspect_run
    from replica.model.run_meta import is_merged_dir

    merged = is_merged_dir(args.model_dir)
    info = None if merged else inspect_run(args.model_dir)  # fail fast, before torch and the model load
    check_port_free(args.host, args.port)
    app = build_app(args, merged, info)
    import uvicorn

    print(f"replica serve: http://{_url_host(args.host)}:{args.port}/ (API at /v1, blind test at /blind)", file=sys.stderr, flush=True)
    from replica.serve.connections import protocol_with_header_timeout

    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, server_header=False,
        http=protocol_with_header_timeout(args.read_timeout), limit_concurrency=args.max_connections, timeout_keep_alive=KEEP_ALIVE_S,
    )
    return 0


def check_exposure(host: str, api_key: str | None) -> None:
    """A non-loopback interface needs an API key: anyone on the network could otherwise talk to the replica."""
    if api_key is not None and not api_key.strip():
        raise ReplicaInputError("--api-key is empty: pass a long random key, e.g. --api-key $(openssl rand -hex 24)")
    if api_key is None and not is_loopback(host):
        raise ReplicaInputError(
            f"--host {host} is reachable from other machines: add --api-key KEY (clients send Authorization: Bearer KEY) "
            "or keep the default --host 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname may resolve to anything: treat it as exposed


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise ReplicaInputError(f"cannot listen on {host}:{port} ({err.strerror}): pick another --port or --host") from None


def build_app(args: argparse.Namespace, merged: bool, info):
    """Open the engine once and wire its scheduler, the service, the blind test and the FastAPI app."""
    from replica.devices import resolve_device
    from replica.inference.engines import (
        choose_engine,
        is_auto,
        open_merged_engine,
        open_run_engines,
    )
    from replica.inference.loading import merged_formatter, quiet_loading
    from replica.serve.app import Limits, Service, create_app
    from replica.serve.batcher import Batcher
    from replica.serve.blind import BlindLimits, blind_test_of_run
    from replica.serve.feedback import FeedbackWriter
    from replica.serve.guard import host_policy
    from replica.settings import GenerationSection

    logging.getLogger("replica").setLevel(logging.INFO)
    device = resolve_device(args.device, option="--device")
    recorded = merged_formatter(args.model_dir)[1] if merged else info.config
    block = GenerationSection.of_run(recorded)
    requested = args.engine or block.engine
    engine_name = choose_engine(requested, device, option="--engine" if args.engine else "generation.engine")
    window_ms = args.batch_window_ms if args.batch_window_ms is not None else WINDOW_MS[engine_name]
    window_s = window_ms / 1000
    opened = dict(engine=engine_name, quant=block.engine_quant, slots=args.max_batch, max_new_tokens=args.max_tokens_limit,
                  device=device, window_s=window_s, queue_size=args.queue_size, fallback=is_auto(requested))
    with quiet_loading():
        if merged:
            engine, _ = open_merged_engine(Path(args.model_dir).expanduser(), **opened)
        else:
            engine = open_run_engines(info, sides=(True,), **opened)[True]
    scheduler = engine if hasattr(engine, "submit") else Batcher(
        engine.generate_batch, max_batch=args.max_batch, window_s=window_s, queue_size=args.queue_size)
    formatter = engine.formatter
    sampling = served_sampling(block, args)
    limits = Limits(
        max_body_bytes=args.max_body_kb * 1024, max_tokens=args.max_tokens_limit,
        default_max_tokens=min(sampling.max_new_tokens, args.max_tokens_limit), read_timeout_s=args.read_timeout,
    )
    labels = formatter.labels if formatter.relationship_in_prompt else []  # the ablation's labels do not reach prompts
    service = Service(scheduler, sampling, "replica", limits, formatter.prompt_ids, labels)
    blind = blind_test_of_run(None if merged else info, BlindLimits(guesses_per_hour=args.blind_guesses_per_hour), bool(labels))
    feedback = FeedbackWriter(feedback_store(args.model_dir, merged, info))
    print(f"replica serve: generating with {engine.name}", file=sys.stderr, flush=True)
    return create_app(service, args.api_key, host_policy(args.host, args.allowed_host), blind, feedback)


def feedback_store(model_dir: str, merged: bool, info: RunInfo | None) -> FeedbackStore:
    """The served folder's feedback store, masked with the run's data settings; a merged folder records none (its
    entries are masked without the exports' contact names)."""
    from replica.feedback.store import FeedbackStore

    if merged:
        return FeedbackStore.of_run(Path(model_dir).expanduser(), {})
    return FeedbackStore.of_run(info.run_dir, info.config)


def served_sampling(block, args: argparse.Namespace):
    """What a request that names no setting gets: the recorded block, overridden by the flags given; a block that
    does not sample answers greedily unless --temperature is given."""
    from replica.inference.jobs import Sampling

    sample = True if args.temperature is not None else None
    return Sampling.from_block(block, do_sample=sample, temperature=args.temperature, top_p=args.top_p,
                               max_new_tokens=args.max_tokens)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
