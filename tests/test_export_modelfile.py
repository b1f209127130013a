"""`replica export --ollama`: the Modelfile's TEMPLATE renders, for 10 conversations in each chat format, the same
prompt as the training formatter (text and token ids), and its stops and sampling are `replica chat`'s.

Ollama is not installable here, so its Go text/template is evaluated by a small interpreter of the subset the
Modelfile uses (range, if/else if/else, eq, .Role, .Content, string constants, trim markers), written below.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from replica.model.formatting import ChatFormatter
from replica.model.tokens import RoleTokens
from tests.conftest import CHAT_FRAGMENTS
from tests.helpers import assert_one_line_error
from tests.test_export_gguf import make_merged, replica

ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)
OLLAMA_ROLE = {"them": "user", "me": "assistant"}


# ---- a Go text/template interpreter for the Modelfile's subset ----------------------------------------------------
def parse_go_template(source: str) -> list:
    """Nodes: text strings and (kind, argument, children...) tuples; trim markers applied while reading."""
    pieces: list = []
    position = 0
    for match in ACTION.finditer(source):
        text = source[position : match.start()]
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        pieces.append(("text", text))
        pieces.append(("action", match.group(2)))
        position = match.end()
        if match.group(3):
            rest = source[position:]
            position += len(rest) - len(rest.lstrip(" \t\r\n"))
    pieces.append(("text", source[position:]))
    nodes, rest = _block(pieces, 0)
    assert rest == len(pieces), "unbalanced {{ end }}"
    return nodes


def _block(pieces: list, index: int) -> tuple[list, int]:
    nodes: list = []
    while index < len(pieces):
        kind, value = pieces[index]
        if kind == "text":
            nodes.append(value)
            index += 1
        elif value == "end" or value == "else" or value.startswith("else if "):
            return nodes, index
        elif value.startswith("range "):
            body, index = _block(pieces, index + 1)
            assert pieces[index][1] == "end"
            nodes.append(("range", value[6:].strip(), body))
            index += 1
        elif value.startswith("if "):
            branches = []
            condition = value[3:].strip()
            while True:
                body, index = _block(pieces, index + 1)
                branches.append((condition, body))
                closing = pieces[index][1]
                if closing == "end":
                    break
                condition = closing[8:].strip() if closing.startswith("else if ") else None
            nodes.append(("if", branches))
            index += 1
        else:
            nodes.append(("value", value))
            index += 1
    return nodes, index


def render_go_template(nodes: list, dot: dict) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "value":
            out.append(_value(node[1], dot))
        elif node[0] == "range":
            for item in _value(node[1], dot):
                out.append(render_go_template(node[2], item))
        else:
            for condition, body in node[1]:
                if condition is None or _condition(condition, dot):
                    out.append(render_go_template(body, dot))
                    break
    return "".join(out)


def _value(expression: str, dot: dict):
    if expression.startswith('"'):
        return json.loads(expression)
    assert expression.startswith("."), expression
    return dot[expression[1:]]


def _condition(expression: str, dot: dict) -> bool:
    match = re.fullmatch(r'eq (\.\w+) ("(?:[^"\\]|\\.)*")', expression)
    assert match, expression
    return _value(match.group(1), dot) == json.loads(match.group(2))


def ollama_messages(context: list[dict]) -> list[dict]:
    """A chat client's view of a context: alternating messages, a side's consecutive lines joined by a newline (as
    a chat_template run was trained), starting with the other person."""
    messages: list[dict] = []
    for turn in context:
        role = OLLAMA_ROLE[turn["role"]]
        if messages and messages[-1]["Role"] == role:
            messages[-1] = {"Role": role, "Content": messages[-1]["Content"] + "\n" + turn["text"]}
        elif messages or role == "user":
            messages.append({"Role": role, "Content": turn["text"]})
    return messages


def test_the_interpreter_follows_go_semantics():
    nodes = parse_go_template('a  {{- " b" }} {{ range .Messages }}{{ if eq .Role "x" }}X{{ else if eq .Role "y" }}Y'
                              '{{ else }}Z{{ end }}{{ .Content }}{{ end }}  {{- "c" -}}  d')
    messages = [{"Role": "x", "Content": "1"}, {"Role": "y", "Content": "2"}, {"Role": "q", "Content": "3"}]
    assert render_go_template(nodes, {"Messages": messages}) == "a b X1Y2Z3cd"


# ---- the Modelfile against the formatter -------------------------------------------------------------------------
def conversations(count: int = 10, seed: int = 3) -> list[list[dict]]:
    """Alternating conversations (them first), 1-7 turns, ending on either side."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        turns = rng.randint(1, 7)
        out.append([{"role": "them" if i % 2 == 0 else "me", "text": " ".join(rng.sample(CHAT_FRAGMENTS, rng.randint(1, 3)))}
                    for i in range(turns)])
    return out


VARIANTS = {  # name -> (data.format, make_merged options)
    "role_tokens": ("role_tokens", {}),
    "plain": ("plain", {"bos": True}),
    "chatml": ("chat_template", {"template": "chatml"}),
    "smollm": ("chat_template", {"template": "smollm"}),  # default system turn, BOS = <|im_start|>
}


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def exported(request, tmp_path_factory) -> tuple[str, Path]:
    fmt, options = VARIANTS[request.param]
    folder = make_merged(tmp_path_factory.mktemp(request.param) / "merged", "llama", fmt=fmt, **options)
    result = replica("export", folder, "--gguf", "--quant", "q8_0", "--out", folder / "gguf", "--ollama")
    assert result.returncode == 0, result.stderr
    assert f"ollama create replica -f {folder / 'gguf' / 'Modelfile'}" in result.stdout
    return fmt, folder


def formatter_for(fmt: str, folder: Path) -> ChatFormatter:
    from transformers import AutoTokenizer

    return ChatFormatter(AutoTokenizer.from_pretrained(folder), fmt, RoleTokens(), max_length=1024)


def modelfile_template(folder: Path) -> str:
    text = (folder / "gguf" / "Modelfile").read_text(encoding="utf-8")
    match = re.search(r'^TEMPLATE """(.*?)"""$', text, re.DOTALL | re.MULTILINE)
    assert match, text
    return match.group(1)


def test_template_renders_the_training_prompt_for_10_conversations(exported):
    fmt, folder = exported
    formatter = formatter_for(fmt, folder)
    tokenizer = formatter.tokenizer
    nodes = parse_go_template(modelfile_template(folder))
    for context in conversations():
        messages = [{"Role": OLLAMA_ROLE[turn["role"]], "Content": turn["text"]} for turn in context]
        rendered = render_go_template(nodes, {"Messages": messages})
        expected_ids = formatter.prompt_ids(context)
        # BOS that the tokenizer puts before encoded text (llama.cpp adds it too); a template's own BOS is text
        adds = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id] and fmt != "chat_template"
        bos = [tokenizer.bos_token_id] if adds else []
        expected_text = tokenizer.decode(expected_ids[len(bos):], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert rendered == expected_text
        # what llama.cpp is given: the rendered text, tokenized with its special tokens, after the BOS it adds
        assert bos + tokenizer(rendered, add_special_tokens=False)["input_ids"] == expected_ids


EXPECTED_STOPS = {
    "role_tokens": ["<|eot|>", "<|them|>", "<|me|>"],
    "plain": ["<|endoftext|>", "\nB:", "\nA:"],
    "chat_template": ["<|im_end|>", "<|im_start|>user"],
}


def test_modelfile_stops_and_samples_like_replica_chat(exported):
    fmt, folder = exported
    lines = (folder / "gguf" / "Modelfile").read_text(encoding="utf-8").splitlines()
    assert "FROM ./replica-q8_0.gguf" in lines
    stops = [json.loads(line.split(" ", 2)[2]) for line in lines if line.startswith("PARAMETER stop ")]
    assert stops == EXPECTED_STOPS[fmt]
    parameters = dict(line.split(" ")[1:3] for line in lines if line.startswith("PARAMETER ") and " stop " not in line)
    # replica chat's documented defaults (replica chat --help): temperature 0.8, top-p 0.95, 64 new tokens
    assert parameters == {"temperature": "0.8", "top_p": "0.95", "top_k": "0", "repeat_penalty": "1.0",
                          "num_predict": "64", "num_ctx": "128"}


def test_a_template_that_rewrites_earlier_turns_is_refused(tmp_path):
    folder = make_merged(tmp_path / "merged", "llama", fmt="chat_template")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    # numbers every message by its distance from the end: an earlier turn's text changes as the chat grows
    config["chat_template"] = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + (messages|length - loop.index)|string + '\\n' + m['content'] + "
        "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    result = replica("export", folder, "--gguf", "--out", folder / "gguf", "--ollama")
    assert_one_line_error(result, "replica: error:", "data.format=role_tokens")
    assert not (folder / "gguf").exists() or not any((folder / "gguf").iterdir())
