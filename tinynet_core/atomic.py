"""Writing files so that a kill never leaves half of one: write a temporary file beside it, then rename."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Sequence, Tuple, Union

PathLike = Union[str, Path]
Writer = Callable[[str], None]


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_beside(path: Path, write: Writer) -> str:
    """``write(tmp)`` to a new temporary file in ``path``'s folder, flushed to disk; its name (removed on error)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


@contextmanager
def staged_replace(writes: Sequence[Tuple[PathLike, Writer]]) -> Iterator[None]:
    """Write every path's new content to a temporary file beside it first; when the block ends without error,
    rename them over the paths, in order. An error or a kill before the renames leaves every path as it was
    (and SIGTERM / Ctrl-C no temporary file), so what the block writes meanwhile is never behind these files by
    more than the renames."""
    staged: List[Tuple[Path, str]] = []
    try:
        for path, write in writes:
            staged.append((Path(path), _write_beside(Path(path), write)))
        yield
        for path, tmp in staged:
            os.replace(tmp, path)
    finally:
        for _, tmp in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


def replace_atomically(path: PathLike, write: Writer) -> Path:
    """Call ``write(tmp_path)``, flush it to disk and rename it over ``path``; on any error nothing changes."""
    with staged_replace([(path, write)]):
        pass
    return Path(path)


def write_text(path: PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            f.write(text)

    return replace_atomically(path, write)
