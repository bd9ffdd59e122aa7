"""The user's cache folder and the one way this package reads a file from it.

Two caches live there: the formula's fitted states (``formula/``, ``gp_cache.py``) and measured latencies
(``latency/``, ``timm_tinynet/latency.py``). Whatever is found there is read without blocking and without trusting
it: the callers parse it strictly and fall back to recomputing.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

from .atomic import write_text


def cache_dir() -> Optional[Path]:
    """``$TINYNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/timm-tinynet``, else ``~/.cache/timm-tinynet`` (None when
    there is no home to put it in)."""
    explicit = os.environ.get("TINYNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative path is invalid and must be ignored
        return Path(xdg) / "timm-tinynet"
    try:
        return Path.home() / ".cache" / "timm-tinynet"
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        return None


def read_regular_file(path: Path, limit: int) -> Optional[bytes]:
    """The bytes of a regular file of at most ``limit`` bytes; None for anything else (missing, unreadable, a
    folder, a pipe, too large), without blocking (opened non-blocking, so a FIFO is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with open(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def write_quietly(path: Optional[Path], text: str) -> None:
    """Write ``text`` to ``path`` atomically if possible: a cache that cannot be written (no folder, read-only, a
    folder where the file should be) is no cache, not an error."""
    if path is None:
        return
    try:
        write_text(path, text)
    except OSError:
        pass
