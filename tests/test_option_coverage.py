"""Every option the README names and every flag a `replica` command's --help lists is exercised by some test: a
new option without a test fails here."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TESTS = Path(__file__).resolve().parent
# Config groups whose choices are options (`group=choice`); a group with a single file has no choice to make.
GROUPS = sorted(path.name for path in CONF.iterdir() if path.is_dir() and len(list(path.glob("*.yaml"))) > 1)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
OVERRIDE = re.compile(r"(?<![\w./~+-])\+?((?:hydra/)?[a-z_][a-z0-9_]*(?:[./][a-z0-9_]+)*)=([^\s`\"'\]),]*)")
# Named in the README but needing what no test machine here has; each is exercised only indirectly.
INDIRECT = {
    "hydra/launcher=submitit_slurm": "needs a SLURM cluster and hydra-submitit-launcher (not a dependency)",
    "hydra.launcher.gpus_per_node=": "a submitit launcher setting (SLURM)",
    "hydra.launcher.timeout_min=": "a submitit launcher setting (SLURM)",
    "quant.quant_storage=bfloat16": "FSDP + QLoRA, documented as untested (needs several GPUs)",
    "--push-to-hub": "uploads to the Hugging Face Hub; tests run offline",
}


def string_literals(source: str) -> list[str]:
    """The string values a Python file's code holds (f-string parts included); comments and docstrings are not code."""
    tree = ast.parse(source)
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@lru_cache(maxsize=1)
def sources_of_tests() -> str:
    """What the tests pass: every string in the code of every test file but this one (helpers included), one per
    line, and the text of its data files (.toml). An option named only in a comment or a docstring is not tested."""
    texts = []
    for path in sorted(TESTS.rglob("*")):
        if path.name == Path(__file__).name:
            continue
        if path.suffix == ".py":
            texts += string_literals(path.read_text(encoding="utf-8"))
        elif path.suffix == ".toml":
            texts.append(path.read_text(encoding="utf-8"))
    return "\n".join(texts)


@lru_cache(maxsize=1)
def config_roots() -> set[str]:
    """Top-level keys of train.py's and evaluate.py's configs, plus `hydra`: what an override can start with."""
    from replica.config import compose

    groups = {path.name for path in CONF.iterdir() if path.is_dir()}
    return {*compose("train", output_dir="out"), *compose("evaluate", ["run_dir=x"], output_dir="out"), *groups}


def readme_overrides(text: str) -> set[str]:
    """Overrides the README names: `key=word` whole (a group choice, `auto`, `drop`, `false`), else `key=` alone."""
    found = set()
    for key, value in OVERRIDE.findall(text):
        if re.split(r"[./]", key)[0] not in config_roots() or value.startswith("="):
            continue  # prose such as `torch==2.13.0` or a Python keyword argument
        word = re.fullmatch(r"[a-z][a-z0-9_.-]*", value) and not re.fullmatch(r"[\d.e-]+", value)
        found.add(f"{key}={value}" if key in GROUPS or word else f"{key}=")
    return found


def readme_options() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return set(FLAG.findall(text)) | readme_overrides(text)


def group_choices() -> set[str]:
    """`group=choice` for every choice of a config group (conf/<group>/<choice>.yaml)."""
    return {f"{group}={path.stem}" for group in GROUPS for path in (CONF / group).glob("*.yaml")}


def replica_help(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "replica.cli", *args, "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@lru_cache(maxsize=1)
def help_flags() -> frozenset[str]:
    """Every flag of every `replica` subcommand's --help (the subcommands read from `replica --help`)."""
    commands = re.findall(r"^    ([a-z]+) ", replica_help(), flags=re.MULTILINE)
    assert {"parse", "prepare", "chat", "serve"} <= set(commands), commands
    return frozenset(flag for command in commands for flag in FLAG.findall(replica_help(command))) - {"--help"}


def untested(options: set[str]) -> list[str]:
    sources = sources_of_tests()
    return sorted(option for option in options if option not in INDIRECT and option not in sources)


def test_an_option_in_a_comment_or_docstring_does_not_count():
    found = string_literals('''"""Uses --in-docstring."""
# --in-comment
run("--in-code", f"lora.r={8}")
''')
    assert found == ["--in-code", "lora.r="]


def test_every_readme_option_is_exercised_by_a_test():
    options = readme_options()
    assert {"hparams_search=optuna", "--max-batch", "ckpt_path=auto", "lora.r="} <= options  # the collector works
    assert untested(options) == []


def test_every_config_group_choice_is_exercised_by_a_test():
    assert "optimizer=adamw" in group_choices()
    assert untested(group_choices()) == []


def test_every_flag_of_every_replica_command_is_exercised_by_a_test():
    flags = help_flags()
    assert {"--max-batch", "--once", "--out", "--max-messages"} <= flags  # the collector works
    assert untested(flags) == []


def test_the_indirect_list_holds_only_options_still_documented():
    named = readme_options() | help_flags()
    assert set(INDIRECT) <= named, set(INDIRECT) - named
