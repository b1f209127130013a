"""Media type of an attached file from its name (Signal and Discord exports name their attachments)."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote

EXTENSION_MEDIA: dict[str, str] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "heic", "heif", "bmp", "tif", "tiff", "webp", "apng", "svg"), "image"),
    **dict.fromkeys(("mp4", "mov", "mkv", "webm", "mpeg", "qt", "3gp", "avi", "m4v"), "video"),
    **dict.fromkeys(("m4a", "aac", "mp3", "ogg", "oga", "opus", "wav", "flac", "amr"), "audio"),
    "gif": "gif",
    **dict.fromkeys(("vcf",), "contact"),
}


def media_of_file(name: str) -> str:
    """'photo.JPG' -> 'image', 'clip.mp4' -> 'video', any other named file -> 'document'."""
    suffix = PurePosixPath(unquote(name).replace("\\", "/")).suffix.lower().lstrip(".")
    return EXTENSION_MEDIA.get(suffix, "document")
