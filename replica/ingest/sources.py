"""Read export files from plain files, folders and .zip archives (in memory), and decode text exports."""

from __future__ import annotations

import lzma
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from replica.errors import ReplicaInputError
from replica.ingest.limits import Budget, LimitError
from replica.privacy import display_path

MAX_COMPRESSION_RATIO = 100  # uncompressed/compressed above this (members or whole archive > 1 MiB): a zip bomb
RATIO_CHECK_MIN_BYTES = 1024 * 1024
READ_CHUNK = 1024 * 1024
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# What a damaged zip member can raise while it is opened or inflated (CRC and header errors are BadZipFile).
MEMBER_ERRORS = (
    zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, NotImplementedError, RuntimeError, ValueError,
    UnicodeDecodeError, struct.error,
)
# What a damaged archive's central directory can raise while the archive is opened.
ARCHIVE_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, UnicodeDecodeError, struct.error, OverflowError)

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


def iter_files(path: Path, skipped: Skipped, budget: Budget) -> Iterator[tuple[str, bytes]]:
    """Yield (display name, raw bytes) for a file, every file under a folder, or every member of a zip.

    Unreadable members of folders/archives are appended to `skipped` as (display name, reason); a broken archive or
    a non-regular file (FIFO, device, socket) given explicitly raises ReplicaInputError. Every byte read counts
    against `budget`, as it streams in.
    """
    if path.is_dir():
        yield from _walk_dir(path, skipped, budget)
        return
    _check_regular(path, str(path))
    if is_zip(path):
        yield from _read_zip(path, str(path), skipped, budget)
    else:
        yield str(path), _read_file(path, str(path), budget)


def _check_regular(path: Path, display: str) -> None:
    """Refuse FIFOs, devices and sockets before anything opens them (reading one can block or never end)."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise ReplicaInputError(f"cannot read file ({err.strerror}); check the path", path=display) from None
    if not stat.S_ISREG(mode):
        raise ReplicaInputError(
            "not a regular file (a FIFO, device or socket); pass the export file itself", path=display
        )


def _read_file(path: Path, display: str, budget: Budget) -> bytes:
    try:
        with path.open("rb") as handle:
            return read_bounded(handle, display, budget)
    except OSError as err:
        raise ReplicaInputError(f"cannot read file ({err.strerror}); check its permissions", path=display) from err


def read_bounded(handle: BinaryIO, display: str, budget: Budget) -> bytes:
    """Read a stream in chunks, counting each against the budget (which raises once the run's limit is passed)."""
    chunks = []
    while chunk := handle.read(min(READ_CHUNK, budget.bytes_left + 1)):
        budget.add_bytes(len(chunk), display)
        chunks.append(chunk)
    return b"".join(chunks)


def is_zip(path: Path) -> bool:
    """True for a .zip file name or zip content."""
    if path.suffix.lower() == ".zip":
        return True
    try:
        return zipfile.is_zipfile(path)
    except ARCHIVE_ERRORS:
        return False


def _walk_dir(root: Path, skipped: Skipped, budget: Budget) -> Iterator[tuple[str, bytes]]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIR_NAMES)
        for name in sorted(names):
            if is_ignored_name(name):
                continue
            file = Path(folder, name)
            display = str(file)
            try:
                _check_regular(file, display)
                if is_zip(file):
                    yield from _read_zip(file, display, skipped, budget)
                else:
                    yield display, _read_file(file, display, budget)
            except LimitError:
                raise
            except ReplicaInputError as err:
                skipped.append((display, reason_of(err)))


def _read_zip(path: Path, display: str, skipped: Skipped, budget: Budget) -> Iterator[tuple[str, bytes]]:
    """Read the archive's members in memory, never extracting anything to disk."""
    try:
        archive = zipfile.ZipFile(path)
    except ARCHIVE_ERRORS as err:
        message = f"not a readable .zip archive ({_short(err)}); download the export again"
        raise ReplicaInputError(message, path=display) from None
    with archive:
        members = sorted(
            (info for info in archive.infolist() if not info.is_dir() and not is_ignored_name(info.filename)),
            key=lambda info: info.filename,
        )
        _check_zip_sizes(members, display, budget)
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
                    data = read_bounded(handle, name, budget)
            except MEMBER_ERRORS as err:
                skipped.append((name, f"damaged zip member ({_short(err)}); download the export again"))
                continue
            yield name, data


def _check_zip_sizes(members: list[zipfile.ZipInfo], display: str, budget: Budget) -> None:
    """Refuse, before inflating anything, an archive that declares more than the run may read, or a zip bomb."""
    declared = sum(info.file_size for info in members)
    budget.check_room(declared, display)
    packed = sum(info.compress_size for info in members)
    suspects = [(info.filename, info.file_size, info.compress_size) for info in members]
    suspects.append(("(all members)", declared, packed))
    for member, size, compressed in suspects:
        ratio = size / max(compressed, 1)
        if size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ReplicaInputError(
                f"member {display_path(member)!r} expands {ratio:.0f}x (zip bomb?); extract the chats you need by "
                "hand",
                path=display,
            )


def _short(err: BaseException) -> str:
    """An exception in a few words, for a one-line reason; quoted parts (zipfile quotes member names, which may
    hold a contact's name) are left out."""
    text = " ".join(_QUOTED.sub("", str(err)).split())[:80]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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
_CONTROL_RX = re.compile(  # C0 and C1 control characters, those of plain text excepted
    "["
    + "".join(re.escape(chr(code)) for code in (*range(0x20), *range(0x7F, 0xA0)) if chr(code) not in _TEXT_CONTROLS)
    + "]"
)
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
    controls = len(_CONTROL_RX.findall(sample))
    return controls + sample.count("\ufffd") > _MAX_CONTROL_SHARE * len(sample)
