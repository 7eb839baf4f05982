"""What the bot accepts as an image, and the sentences it says when it refuses one."""

from __future__ import annotations

from dataclasses import dataclass

# Pillow's JPEG decoder also opens the multi-picture JPEGs many phones write, as format "MPO".
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ASK = "send a PNG, JPEG or WEBP image"


@dataclass(frozen=True)
class ImageLimits:
    """What we accept from a user; every refusal message quotes these numbers."""

    max_bytes: int = 10 * 1024 * 1024
    min_side: int = 128
    max_side: int = 8192
    max_pixels: int = 50_000_000
    max_aspect: float = 4.0
    max_output_side: int = 2048
    timeout_s: float = 20.0
    allow_private: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_side <= self.max_side or self.max_output_side < self.min_side:
            raise ValueError("need 0 < min_side <= max_side and max_output_side >= min_side")
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.timeout_s <= 0:
            raise ValueError("max_bytes, max_pixels and timeout_s must be positive")
        if self.max_aspect < 1:
            raise ValueError("max_aspect must be at least 1")


@dataclass(frozen=True)
class PreparedImage:
    """The bytes we hand to a provider, and what they are."""

    data: bytes
    content_type: str
    filename: str
    width: int
    height: int
    source_format: str
    converted: bool


class ImageRejected(ValueError):
    """The image cannot be used; `str(exc)` tells the user what was wrong and what is allowed."""


class ImageDownloadFailed(ImageRejected):
    """The image could not be downloaded (network, timeout, HTTP error); trying again may work."""


# --------------------------------------------------------------------------- messages


def human_size(size: int) -> str:
    """12.4 MB, 10 MB, 950 KB: binary units, as chat apps show file sizes."""
    if size >= 1_048_576:
        return f"{size / 1_048_576:.1f}".removesuffix(".0") + " MB"
    return f"{max(1, round(size / 1024))} KB"


def too_big(size: int, limits: ImageLimits) -> str:
    return f"The image is {human_size(size)}; the limit is {human_size(limits.max_bytes)}."
