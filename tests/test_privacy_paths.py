"""File names as logs and errors show them: contacts' names and numbers masked, the path's shape kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from replica.prepare.shown_paths import display_path

ROOT = Path(__file__).resolve().parents[1]


def test_personal_parts_of_export_names_are_masked():
    shown = [display_path(path) for path in (
        "/home/u/chats/WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt",
        "export.zip!WhatsApp Chat - Luca Ferri/_chat.txt",
        "/e/messages/inbox/giovannaverdi_1015882731/message_1.json",
        "/e/Chat WhatsApp con Zoë Müller.txt",
        "/e/notes of luca@example.com/x.txt",
    )]
    for path in shown:
        for raw in ("Giovanna", "Verdi", "347", "Luca", "Ferri", "giovannaverdi", "Zoë", "Müller", "luca@"):
            assert raw not in path
    assert shown[0].startswith("/home/u/chats/WhatsApp Chat with <NAME_") and "> <PHONE_" in shown[0]
    assert shown[0].endswith(">.txt")
    assert shown[2].endswith("_1015882731/message_1.json") and "/inbox/<NAME_" in shown[2]
    assert display_path("/e/ChatExport_2024-01-01/result.json") == "/e/ChatExport_2024-01-01/result.json"


def test_content_addressed_folders_are_shown_whole():
    """A dataset folder is a sha256: a run of its digits is no phone number (an error naming it stays readable)."""
    key = "67c42aeb1aff71f9b9c2d04cbd408b8d29af9650402bc09ad25d44caa82cf91b".replace("9650402", "3471112233")
    assert display_path(f"/home/u/data/datasets/{key}/train.jsonl") == f"/home/u/data/datasets/{key}/train.jsonl"
    assert "3471112233" not in display_path("/home/u/chats/call me 3471112233.txt")


def test_errors_mask_the_file_once_the_process_installs_the_masking():
    """The ground floor imports no masker: an entry point installs it, and from then on every error naming an export
    shows it masked."""
    name = "/e/WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt"
    script = (
        "import sys; from replica.errors import ReplicaInputError; from replica.prepare.shown_paths import "
        "mask_shown_paths; print(ReplicaInputError('empty', path=sys.argv[1])); mask_shown_paths(); "
        "print(ReplicaInputError('empty', path=sys.argv[1]))"
    )
    shown = subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout.splitlines()
    assert shown[0] == f"{name}: empty"  # nothing installed: a library caller sees the path as given
    assert shown[1] == "/e/WhatsApp Chat with <NAME_1> <PHONE_1>.txt: empty"


def test_skipped_files_and_errors_name_the_file_without_the_contact(tmp_path):
    folder = tmp_path / "chats"
    folder.mkdir()
    (folder / "WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt").write_text("", encoding="utf-8")
    (folder / "WhatsApp Chat with Luca.txt").write_text("12/03/2021, 21:04 - Luca: ciao\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([sys.executable, "-m", "replica.cli", "parse", str(folder)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "skipped" in listed.stderr and "WhatsApp Chat with <NAME_1> <PHONE_1>.txt" in listed.stderr
    assert "Giovanna" not in listed.stderr and "347" not in listed.stderr
    broken = folder / "WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt"
    failed = subprocess.run([sys.executable, "-m", "replica.cli", "parse", str(broken)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "WhatsApp Chat with <NAME_" in failed.stderr and "Giovanna" not in failed.stderr


def test_signal_chat_folders_and_discord_files_are_masked(tmp_path):
    chat = tmp_path / "signal-chats" / "Tomás Ruiz"
    chat.mkdir(parents=True)
    (chat / "chat.md").write_text("[2023-02-11 09:12:40] Tomás Ruiz: ciao  \n", encoding="utf-8")
    (chat / "data.json").write_text("{", encoding="utf-8")  # signal-export's sidecar, truncated on purpose
    discord = tmp_path / "Direct Messages - Ivan Petrov [900].json"
    discord.write_text("{", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([sys.executable, "-m", "replica.cli", "parse", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "skipped" in listed.stderr
    for raw in ("Tomás", "Ruiz", "Ivan", "Petrov"):
        assert raw not in listed.stderr
    assert "Direct Messages - <NAME_" in listed.stderr and "[900].json" in listed.stderr
    assert "signal-chats/<NAME_" in listed.stderr
