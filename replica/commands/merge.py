"""`replica merge RUN_DIR --out DIR`: fold the adapter into the 16-bit base model, a standalone model folder.

The folder loads with plain `AutoModelForCausalLM.from_pretrained(DIR)` (no peft), its tokenizer holds the role
tokens, its generation config stops at the end of turn, and its chat template renders Replica's chat format.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from replica.errors import ReplicaInputError

DTYPE_NAMES = ("bfloat16", "float16", "float32")
# replica.json keys copied into the merged folder: the chat format only, never the training config (it names
# the user and their export paths, and a merged folder is meant to be shared).
FORMAT_KEYS = ("format_version", "format", "end_of_turn", "stop_strings", "role_tokens", "max_length", "base_model")
MODEL_MARKER = "config.json"  # what a folder must hold before --force may replace it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replica merge",
        description="Merge a run's LoRA adapter into its base model (loaded in 16-bit, not 4-bit) and save it.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder train.py printed (holds adapter/)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the merged model to")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, help="weights dtype of the saved model (default: the run's model.dtype)")
    parser.add_argument("--force", action="store_true", help="replace an existing merged model in --out")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this Hugging Face Hub repo")
    parser.add_argument("--public", action="store_true", help="make a newly created Hub repo public (default: private)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.public and not args.push_to_hub:
        raise ReplicaInputError("--public only applies with --push-to-hub REPO")
    from replica.model.run_dir import inspect_run

    info = inspect_run(args.run_dir)
    out = Path(args.out).expanduser()
    check_out_dir(out, force=args.force)
    dtype = args.dtype or info.config["model"]["dtype"]
    merge_run(info.run_dir, out, dtype)
    print(f"merged model written to {out}")
    if args.push_to_hub:
        url = push_to_hub(out, args.push_to_hub, private=not args.public)
        print(f"uploaded to {url}")
    return 0


def check_out_dir(out: Path, *, force: bool) -> None:
    """Refuse a file, a non-empty folder without --force, and (even with --force) a folder that holds no model."""
    if out.exists() and not out.is_dir():
        raise ReplicaInputError("--out is a file, not a folder: pick a new or empty folder", path=str(out))
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ReplicaInputError("--out folder is not empty: pick a new or empty folder, or pass --force to replace it", path=str(out))
    if not (out / MODEL_MARKER).is_file():
        raise ReplicaInputError(
            f"--out folder is not empty and holds no {MODEL_MARKER}, so --force will not delete it: pick another folder",
            path=str(out),
        )


def merge_run(run_dir: Path, out: Path, dtype: str) -> Path:
    """Load base (16-bit) + adapter, merge, and write model, tokenizer, generation config and replica.json."""
    from transformers.utils import logging as hf_logging

    from replica.inference.loading import load_run
    from replica.model.base_model import DTYPES

    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():  # library deprecation chatter, not the user's business
        warnings.simplefilter("ignore")
        peft_model, formatter, info = load_run(run_dir, device="cpu", quantized=False)
    model = peft_model.merge_and_unload().to(DTYPES[dtype])
    tokenizer = formatter.tokenizer
    vocab = tokenizer.get_vocab()
    stop_ids = formatter.stop_token_ids + [vocab[m] for m in formatter.stop_strings if m in vocab]
    model.generation_config.eos_token_id = sorted(set(stop_ids))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    template = chat_template(formatter)
    if template is not None:
        tokenizer.chat_template = template
    meta = {key: info.meta[key] for key in FORMAT_KEYS if key in info.meta}
    meta.update(merged_from_step=info.meta.get("global_step"), dtype=dtype, end_of_turn_id=formatter.end_of_turn_id)
    with staging_dir(out) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "replica.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def chat_template(formatter) -> str | None:
    """A Jinja chat template rendering Replica's format (user = them, assistant = me); None keeps the tokenizer's."""
    tokenizer = formatter.tokenizer
    adds_bos = formatter.prompt_ids([])[:1] == [tokenizer.bos_token_id]
    if formatter.style == "role_tokens":
        me, them, eot = formatter.tokens.me, formatter.tokens.them, formatter.tokens.eot
        turn = f"({me!r} if m['role'] == 'assistant' else {them!r}) + m['content'] + {eot!r}"
        opener = me
    elif formatter.style == "plain":
        turn = "('A: ' if m['role'] == 'assistant' else 'B: ') + m['content'] + '\\n'"
        opener = "A:"
    else:
        return None
    return (
        ("{{ bos_token }}" if adds_bos else "")
        + "{%- for m in messages if m['role'] != 'system' -%}{{ " + turn + " }}{%- endfor -%}"
        + "{%- if add_generation_prompt -%}{{ " + repr(opener) + " }}{%- endif -%}"
    )


class staging_dir:
    """A temp folder beside `out` that replaces `out` on success and disappears on failure."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        umask = os.umask(0)
        os.umask(umask)
        self.path.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the final folder private by accident
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        backup = self.out.with_name(f".{self.out.name}.old")
        if self.out.exists():
            shutil.rmtree(backup, ignore_errors=True)
            self.out.rename(backup)
        self.path.rename(self.out)
        shutil.rmtree(backup, ignore_errors=True)


def push_to_hub(folder: Path, repo_id: str, *, private: bool) -> str:
    """Create the Hub model repo if needed (private unless told otherwise) and upload the folder; return its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        repo = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo.repo_id, folder_path=folder, repo_type="model", commit_message="Upload merged Replica model")
    except (HfHubHTTPError, OSError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ReplicaInputError(
            f"upload to {repo_id} failed ({first_line}); the merged model is saved in {folder}: log in with "
            "`hf auth login` and retry the upload"
        ) from None
    return repo.url

