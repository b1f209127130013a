"""`replica merge RUN_DIR --out DIR`: fold the adapter into the 16-bit base model, a standalone model folder.

The folder loads with plain `AutoModelForCausalLM.from_pretrained(DIR)` (no peft), its tokenizer holds the role
tokens, its generation config stops at the end of turn, and its chat template renders Replica's chat format.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from replica.commands.arguments import OneLineParser
from replica.errors import ReplicaInputError
from replica.settings import DTYPE_NAMES

MODEL_MARKER = "config.json"  # what a folder must hold before --force may replace it


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    from replica.inference.merging import merge_run
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

