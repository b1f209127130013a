"""An Ollama Modelfile for an exported replica: its TEMPLATE, stop markers and `replica chat`'s sampling defaults."""

from __future__ import annotations

import json

from replica.export.template import ollama_template, turn_layout
from replica.settings import GenerationSection


def chat_defaults(generation: GenerationSection) -> dict[str, float | int]:
    """`replica chat`'s sampling defaults (the run's generation block) as Ollama parameters."""
    return {
        "temperature": generation.temperature if generation.do_sample else 0,  # 0: greedy in llama.cpp
        "top_p": generation.top_p,
        "top_k": generation.top_k,  # 0: no top-k cut
        "repeat_penalty": generation.repetition_penalty,
        "num_predict": generation.max_new_tokens,
    }


def modelfile_text(formatter, gguf_name: str, generation: GenerationSection) -> str:
    """The Modelfile: FROM the GGUF beside it, the format's TEMPLATE, stops at end-of-turn and the other role, and
    the sampling `replica chat` would use for the run."""
    layout = turn_layout(formatter)
    template = ollama_template(layout)
    stops = [formatter.end_of_turn, *formatter.stop_strings]
    default = formatter.addressee(None)
    who = [] if layout.header is None else [
        (f"# who you are to the replica: `/set system \"{formatter.header(formatter.labels[-1], False)}\"` in `ollama run`; "
         f"this run's labels: {', '.join(formatter.labels)}"),
        f"SYSTEM {json.dumps(formatter.header(default, False))}",
    ]
    lines = [
        "# Replica export: ollama create <name> -f Modelfile",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
        *who,
        *[f"PARAMETER stop {json.dumps(stop)}" for stop in dict.fromkeys(stops) if stop],
        *[f"PARAMETER {key} {value}" for key, value in chat_defaults(generation).items()],
        f"PARAMETER num_ctx {formatter.max_length}",
    ]
    return "\n".join(lines) + "\n"
