"""Read export files from plain files, folders and .zip archives (in memory), and decode text exports."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from replica.errors import ReplicaInputError

MAX_MEMBER_BYTES = 512 * 1024 * 1024  # largest uncompressed zip member we read
MAX_ZIP_TOTAL_BYTES = 512 * 1024 * 1024  # largest uncompressed total read from one archive
MAX_COMPRESSION_RATIO = 100  # uncompressed/compressed above this (on members > 1 MiB) means a zip bomb
RATIO_CHECK_MIN_BYTES = 1024 * 1024

# Attachments that sit next to the chat exports and can never be one.
IGNORED_SUFFIXES = frozenset(
    """
    .jpg .jpeg .png .gif .webp .heic .heif .bmp .tif .tiff .svg .ico .tgs
    .mp4 .mov .avi .mkv .webm .3gp .m4v .wmv .flv
    .opus .ogg .oga .mp3 .m4a .aac .wav .amr .flac .wma
    .pdf .doc .docx .xls .xlsx .ppt .pptx .odt .ods .vcf .apk .exe .dll .so
    .css .js .woff .woff2 .ttf .otf .crypt12 .crypt14 .crypt15 .db
    """.split()
)

SKIPPED_DIR_NAMES = frozenset({"__MACOSX"})

Skipped = list[tuple[str, str]]


def is_ignored_name(name: str) -> bool:
    """True for hidden files/folders, macOS zip metadata and media attachments."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if any(part.startswith(".") or part in SKIPPED_DIR_NAMES for part in parts):
        return True
    return PurePosixPath(parts[-1]).suffix.lower() in IGNORED_SUFFIXES if parts else True


def iter_files(path: Path, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    """Yield (display name, raw bytes) for a file, every file under a folder, or every member of a zip.

    Unreadable members of folders/archives are appended to `skipped` as (display name, reason);
    a broken archive given explicitly raises ReplicaInputError.
    """
    if path.is_dir():
        yield from _walk_dir(path, skipped)
    elif is_zip(path):
        yield from _read_zip(path, str(path), skipped)
    else:
        yield str(path), _read_file(path)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ReplicaInputError(f"cannot read file ({err.strerror}); check its permissions", path=str(path)) from err


def is_zip(path: Path) -> bool:
    """True for a .zip file name or zip content."""
    return path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)


def _walk_dir(root: Path, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIR_NAMES)
        for name in sorted(names):
            if is_ignored_name(name):
                continue
            file = Path(folder, name)
            display = str(file)
            try:
                if is_zip(file):
                    yield from _read_zip(file, display, skipped)
                else:
                    yield display, _read_file(file)
            except ReplicaInputError as err:
                skipped.append((display, reason_of(err)))


def _read_zip(path: Path, display: str, skipped: Skipped) -> Iterator[tuple[str, bytes]]:
    """Read the archive's members in memory, never extracting anything to disk."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        message = f"not a readable .zip archive ({err}); download the export again"
        raise ReplicaInputError(message, path=display) from err
    with archive:
        members = sorted(
            (info for info in archive.infolist() if not info.is_dir() and not is_ignored_name(info.filename)),
            key=lambda info: info.filename,
        )
        _check_zip_sizes(members, display)
        total = 0
        for info in members:
            name = f"{display}!{info.filename}"
            if info.flag_bits & 0x1:
                skipped.append((name, "encrypted zip member; unzip the archive with its password first"))
                continue
            if info.filename.lower().endswith(".zip"):
                skipped.append((name, "zip inside a zip; extract the outer archive first"))
                continue
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError) as err:
                skipped.append((name, f"unreadable zip member ({err}); download the export again"))
                continue
            total += len(data)
            if len(data) > MAX_MEMBER_BYTES or total > MAX_ZIP_TOTAL_BYTES:
                raise ReplicaInputError(_too_big_message(), path=display)
            yield name, data


def _check_zip_sizes(members: list[zipfile.ZipInfo], display: str) -> None:
    if sum(info.file_size for info in members) > MAX_ZIP_TOTAL_BYTES or any(
        info.file_size > MAX_MEMBER_BYTES for info in members
    ):
        raise ReplicaInputError(_too_big_message(), path=display)
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ReplicaInputError(
                f"member {info.filename!r} expands {ratio:.0f}x (zip bomb?); extract the chats you need by hand",
                path=display,
            )


def _too_big_message() -> str:
    limit = MAX_MEMBER_BYTES // (1024 * 1024)
    return f"archive expands beyond {limit} MiB; extract it and pass only the chat files"


def reason_of(err: ReplicaInputError) -> str:
    """The error's message without its leading `path:` / `path:line:` prefix (the line is kept as words)."""
    text = str(err)
    if err.path is None:
        return text
    if err.line is not None:
        return f"line {err.line}: " + text.removeprefix(f"{err.path}:{err.line}: ")
    return text.removeprefix(f"{err.path}: ")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_MAX_CONTROL_SHARE = 0.05
_SNIFF_CHARS = 65536


def decode_text(data: bytes) -> str | None:
    """Decode a text export (UTF-8 with/without BOM, UTF-16 with BOM, else cp1252/latin-1); None if binary."""
    if data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16", errors="replace")
    elif b"\x00" in data:
        return None
    else:
        text = _decode_legacy(data)
    return None if _mostly_control(text) else text


def _decode_legacy(data: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _mostly_control(text: str) -> bool:
    sample = text[:_SNIFF_CHARS]
    if not sample:
        return False
    controls = sum(1 for ch in sample if (ch < " " or "\x7f" <= ch < "\xa0") and ch not in _TEXT_CONTROLS)
    return controls + sample.count("\ufffd") > _MAX_CONTROL_SHARE * len(sample)
