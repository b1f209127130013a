"""An Ollama Modelfile for an exported replica: its TEMPLATE, stop markers and `replica chat`'s sampling defaults."""

from __future__ import annotations

import json

from replica.export.template import ollama_template, turn_layout


def chat_defaults() -> dict[str, float | int]:
    """`replica chat`'s sampling defaults (the generation block's defaults) as Ollama parameters."""
    from replica.settings import GenerationSection

    generation = GenerationSection()
    return {
        "temperature": generation.temperature,
        "top_p": generation.top_p,
        "top_k": generation.top_k,  # 0: no top-k cut
        "repeat_penalty": generation.repetition_penalty,
        "num_predict": generation.max_new_tokens,
    }


def modelfile_text(formatter, gguf_name: str) -> str:
    """The Modelfile: FROM the GGUF beside it, the format's TEMPLATE, stops at end-of-turn and the other role."""
    template = ollama_template(turn_layout(formatter))
    stops = [formatter.end_of_turn, *formatter.stop_strings]
    lines = [
        "# Replica export: ollama create <name> -f Modelfile",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{template}"""',
        *[f"PARAMETER stop {json.dumps(stop)}" for stop in dict.fromkeys(stops) if stop],
        *[f"PARAMETER {key} {value}" for key, value in chat_defaults().items()],
        f"PARAMETER num_ctx {formatter.max_length}",
    ]
    return "\n".join(lines) + "\n"
