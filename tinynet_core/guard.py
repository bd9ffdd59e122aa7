"""The one guard every command puts its files through: inputs are bounded regular files, outputs never destroy
what the user gave, a run folder has one writer, and a kill leaves no half-written file behind.

Rules, in the order they are checked:

* an input must exist, be a regular file (not a pipe, device, socket or folder) and be at most ``max_bytes``;
* an output is never one of the command's inputs, never lies inside an input folder, and never is an input's
  parent when one of the names it would write there is that input;
* an output file that already exists is replaced only with ``overwrite=True`` (the CLIs' ``--overwrite``) or
  when its folder's manifest (``.tinynet-outputs``, which records what this package wrote there) lists it; an
  output folder's files likewise, only when they are listed in its manifest or with ``overwrite=True``;
* writability is checked before any work is done, without leaving anything behind;
* ``folder_lock`` makes a folder single-writer (``flock`` on a lock file inside it);
* ``exit_on_termination`` turns SIGTERM/SIGHUP into ``SystemExit`` so ``finally`` blocks run: the atomic
  writers remove their temporary files and locks are released, as they already do on Ctrl-C.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Set, Tuple, Union

PathLike = Union[str, Path]
Labelled = Tuple[str, PathLike]  # ("--checkpoint", path): an input with the flag that named it

MANIFEST = ".tinynet-outputs"
LOCK_NAME = ".tinynet.lock"

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30

# what the commands read at most: generous for real files, small enough that a wrong path fails at once
MAX_CHECKPOINT_BYTES = 8 * GB  # a training checkpoint (weights, EMA, optimizer state) of a large timm model
MAX_IMAGE_BYTES = 256 * MB  # one image file (tinynet-cam --image)
MAX_TABLE_BYTES = 256 * MB  # a CSV table (study plans and results)
MAX_SCRIPT_BYTES = 16 * MB  # a Python script (tinynet-timm-train)


class GuardError(ValueError):
    """An input or output a command must refuse, with the reason in one line."""


def human_bytes(size: float) -> str:
    for unit, scale in (("GB", GB), ("MB", MB), ("kB", KB)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} bytes"


# ---- inputs --------------------------------------------------------------------------------------------------

def check_input_file(path: PathLike, what: str, max_bytes: int) -> Path:
    """``path`` as a readable regular file of at most ``max_bytes``; GuardError otherwise (never blocks on a pipe)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise GuardError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise GuardError(f"{what} {path} cannot be read: {e.strerror or e}") from None
    if stat.S_ISDIR(info.st_mode):
        raise GuardError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise GuardError(f"{what} {path} is not a regular file (a pipe, device or socket cannot be read as one)")
    if info.st_size > max_bytes:
        raise GuardError(f"{what} {path} is {human_bytes(info.st_size)}, more than the {human_bytes(max_bytes)} "
                         f"this command reads")
    if not os.access(path, os.R_OK):
        raise GuardError(f"{what} {path} cannot be read (permission denied)")
    return path


def checked_inputs(*files: Tuple[str, Optional[PathLike], int]) -> list:
    """Check each given ``(flag, path, max_bytes)`` input file (None: not given) with ``check_input_file`` and
    return them as ``(flag, path)`` pairs, the ``inputs`` an output must not replace."""
    labelled = []
    for flag, path, max_bytes in files:
        if path is not None:
            check_input_file(path, flag, max_bytes)
            labelled.append((flag, path))
    return labelled


def check_input_dir(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise GuardError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise GuardError(f"{what} {path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise GuardError(f"{what} {path} cannot be read (permission denied)")
    return path


# ---- outputs -------------------------------------------------------------------------------------------------

def _resolved(path: PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    return child != folder and folder in child.parents


def check_not_an_input(path: PathLike, what: str, inputs: Sequence[Labelled]) -> None:
    """GuardError when writing ``path`` would replace one of ``inputs`` or put a file inside an input folder."""
    target = _resolved(path)
    for label, given in inputs:
        source = _resolved(given)
        if _same_file(target, source):
            raise GuardError(f"{what} {path} is also the input {label}; write the output somewhere else")
        if source.is_dir() and _inside(target, source):
            raise GuardError(f"{what} {path} lies inside the input folder {label} {given}; write the output "
                             f"outside it")


def _probe_writable(folder: Path, what: str, shown: Path) -> None:
    """Check that files can be created under ``folder`` (or where it would be created) without leaving any."""
    existing = _resolved(folder)
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise GuardError(f"cannot write {what} {shown}: {existing} is a file, not a folder")
    try:
        probe = tempfile.mkdtemp(dir=existing, prefix=".tinynet-probe-")
        os.rmdir(probe)
    except OSError as e:
        raise GuardError(f"cannot write {what} {shown}: no new file can be made in {existing} "
                         f"({e.strerror or e})") from None


def check_output_file(path: PathLike, what: str, inputs: Sequence[Labelled] = (), overwrite: bool = False) -> Path:
    """``path`` as a file the command may write, checked before any work; GuardError with the reason otherwise.
    An existing file is replaced only with ``overwrite`` or when its folder's manifest lists it (we wrote it)."""
    path = Path(path)
    check_not_an_input(path, what, inputs)
    if path.is_dir():
        raise GuardError(f"{what} {path} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise GuardError(f"{what} {path} exists and is not a regular file")
        if not overwrite and path.name not in manifest_files(path.parent):
            raise GuardError(f"{what} {path} already exists; pass --overwrite to replace it")
    _probe_writable(path.parent, what, path)
    return path


def _manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MB:  # never block on a pipe put in its place
            return {}
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def manifest_files(folder: PathLike) -> Set[str]:
    """The names ``folder``'s manifest lists: files this package wrote there and may replace."""
    files = _manifest(Path(folder)).get("files")
    return {name for name in files if isinstance(name, str)} if isinstance(files, list) else set()


def check_output_dir(path: PathLike, what: str, names: Iterable[str] = (), inputs: Sequence[Labelled] = (),
                     overwrite: bool = False) -> Path:
    """``path`` as a folder the command may write ``names`` into: none of them an input, and each either new or
    one this package wrote there before (its manifest), unless ``overwrite``. Checked before any work."""
    path = Path(path)
    check_not_an_input(path, what, inputs)
    if path.exists() and not path.is_dir():
        raise GuardError(f"{what} {path} is a file, not a folder")
    names = list(names)
    for name in names:
        check_not_an_input(path / name, what, inputs)
    if path.is_dir() and not overwrite:
        ours = manifest_files(path)
        foreign = [n for n in names if (path / n).exists() and n not in ours]
        if foreign:
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise GuardError(f"{what} {path} already holds {foreign[0]}{more}, which this command did not write; "
                             f"choose another folder or pass --overwrite")
    _probe_writable(path, what, path)
    return path


def record_outputs(folder: PathLike, names: Iterable[str], command: str) -> None:
    """Add ``names`` to ``folder``'s manifest: files this package wrote there and may replace later."""
    from .atomic import write_text

    folder = Path(folder)
    files = sorted(manifest_files(folder) | set(names))
    write_text(folder / MANIFEST, json.dumps({"written_by": "timm-tinynet", "command": command, "files": files},
                                             indent=1) + "\n")


# ---- one writer per folder -----------------------------------------------------------------------------------

@contextmanager
def folder_lock(folder: PathLike, what: str = "folder", lock_name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) while the block runs; a second writer gets a
    GuardError at once instead of interleaving its files with the first one's. The lock dies with the process."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GuardError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_NONBLOCK | O_NOFOLLOW: a pipe or a link put in the lock file's place never blocks or redirects us
        fd = os.open(folder / lock_name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        raise GuardError(f"cannot lock {what} {folder}: {e.strerror or e}") from None
    lock_path = folder / lock_name
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise GuardError(f"cannot lock {what} {folder}: {lock_path} is not a regular file")
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise GuardError(f"{what} {folder} is in use by {holder}; wait for it to finish or use another "
                             f"folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield lock_path
        finally:
            f.seek(0)
            f.truncate()


# ---- termination ---------------------------------------------------------------------------------------------

def _raise_exit(signum: int, frame: Optional[object]) -> None:
    raise SystemExit(128 + signum)


def exit_on_termination() -> None:
    """SIGTERM and SIGHUP end the process through ``SystemExit`` so cleanup code runs. Only in the main thread
    (elsewhere Python allows no handler: nothing changes), and a handler someone else installed is kept."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _raise_exit)
