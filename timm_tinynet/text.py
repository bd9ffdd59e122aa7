"""Short texts for one-line error reports, shared by the loaders (``loading``, ``train.checkpoint``,
``train.data``) so that none of them imports another for it."""
from __future__ import annotations


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line (its type when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
