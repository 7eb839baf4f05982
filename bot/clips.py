"""Delivered clips kept on disk for CLIP_RETENTION_DAYS, behind signed `/c/<token>` links.

A chat post whose clip is too big to upload links to it instead. Files live under
`CLIP_DIR/<job id>/<file name>`, written atomically, so a repeated delivery overwrites the
same file. With several hosts, CLIP_DIR must be one shared volume: the host that serves a
link must see the file another host wrote.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from bot.links import LinkSigner

log = logging.getLogger(__name__)
DAY_S = 86_400
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_name(filename: str) -> str:
    """A file name that cannot leave its folder: the base name, other characters as '_'."""
    base = os.path.basename(filename.replace("\\", "/")) or "clip.mp4"
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip("._-")[:128]
    return cleaned or "clip.mp4"


class ClipStore:
    def __init__(
        self,
        root: Path,
        *,
        retention_days: int,
        links: LinkSigner | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.retention_s = max(1, retention_days) * DAY_S
        self.links = links
        self._clock = clock

    def keep(self, job_id: str, data: bytes, filename: str) -> str | None:
        """Write the clip; its signed link (valid for the retention period) when
        PUBLIC_BASE_URL is set, else None (the file is still kept)."""
        name = safe_name(filename)
        if not _NAME.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        tmp = folder / f".{name}.part"
        tmp.write_bytes(data)
        tmp.replace(target)
        if self.links is None:
            return None
        return self.links.url("clip", job_id, name, self._clock() + self.retention_s)

    def path_for(self, token: str) -> Path | None:
        """The file a link points at, if the link is genuine, unexpired and the file kept."""
        if self.links is None:
            return None
        claims = self.links.verify("clip", token)
        if claims is None or not _NAME.fullmatch(claims.job_id):
            return None
        path = self.root / claims.job_id / safe_name(claims.item)
        return path if path.is_file() else None

    def purge(self) -> int:
        """Delete clips older than the retention period; how many files went."""
        if not self.root.is_dir():
            return 0
        cutoff = self._clock() - self.retention_s
        removed = 0
        for folder in self.root.iterdir():
            if not folder.is_dir() or not _NAME.fullmatch(folder.name):
                continue
            for file in folder.iterdir():
                try:
                    if file.is_file() and file.stat().st_mtime < cutoff:
                        file.unlink()
                        removed += 1
                except FileNotFoundError:  # another process purged it first
                    continue
            with contextlib.suppress(OSError):  # only an empty folder goes
                folder.rmdir()
        if removed:
            log.info("purged %d clip(s) older than %d days", removed, self.retention_s // DAY_S)
        return removed
