"""Small helpers shared by the console scripts."""
from __future__ import annotations

import argparse
import ast
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, NoReturn, Optional, Union


def quiet_third_party_warnings() -> None:
    """Silence deprecation chatter from dependencies (torch.jit in fvcore/timm) in CLI output."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def write_atomic(path: Union[str, Path], text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    from tinynet_core.atomic import write_text

    write_text(path, text)


def report_error(prog: str, error: Union[BaseException, str]) -> int:
    """Print ``prog: error: <reason>`` as one line on stderr; the exit status 2 of a refused input."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    print(f"{prog}: error: {line}", file=sys.stderr)
    return 2


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line ('prog: error: ...') with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def print_stdout(text: str) -> None:
    """Print to stdout; a reader that closed the pipe early (``| head``) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def int_in_range(minimum: int, limit: Optional[int] = None, what: str = "an integer",
                 too_large: str = "", out_of_range: str = "") -> Callable[[str], int]:
    """argparse type: an integer with ``minimum <= value`` and, when ``limit`` is given, ``value <= limit``;
    ``out_of_range`` replaces the bound in the message ('must be <out_of_range>, got <value>')."""
    def refuse(bound: str, value: int) -> NoReturn:
        raise argparse.ArgumentTypeError(f"must be {out_of_range or bound}, got {value}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < minimum:
            refuse(f">= {minimum}", value)
        if limit is not None and value > limit:
            refuse(f"<= {limit}{too_large}", value)
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""
    return int_in_range(minimum)


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
# numpy and torch accept seeds below 2**32 everywhere
seed_int = int_in_range(0, 2 ** 32 - 1, what="an integer seed", out_of_range="a seed in [0, 2**32)")
# 32 px is the smallest input these networks' five stride-2 stages take; 1024 px is above every resolution the
# EfficientNet / TinyNet / GhostNet / ResNet families are defined at (EfficientNet-L2's 800 px is timm's largest),
# while a digit more (10240) would allocate tens of GB per image before failing
IMG_SIZE_MIN, IMG_SIZE_MAX = 32, 1024
img_size = int_in_range(IMG_SIZE_MIN, IMG_SIZE_MAX, too_large=" pixels (larger than any model here is defined at)")
seed_int.__name__ = "seed"


def number(lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False, hi_open: bool = False,
           what: str = "") -> Callable[[str], float]:
    """argparse type: a finite number in the interval from ``lo`` to ``hi`` (open or closed ends; None: unbounded)."""
    left = "" if lo is None else f"{'(' if lo_open else '['}{lo:g}"
    right = "" if hi is None else f"{hi:g}{')' if hi_open else ']'}"
    if lo is not None and hi is not None:
        interval = f"in {left}, {right}"
    elif lo is not None:
        interval = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        interval = f"{'<' if hi_open else '<='} {hi:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        too_high = hi is not None and (value >= hi if hi_open else value > hi)
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {interval}{f' ({what})' if what else ''}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def fraction(what: str = "") -> Callable[[str], float]:
    """argparse type: a number strictly between 0 and 1 (NaN rejected)."""
    return number(0.0, 1.0, lo_open=True, hi_open=True, what=what)


class KeyValues(argparse.Action):
    """``key=value`` pairs into a dict (values parsed as Python literals when they are)."""

    def __call__(self, parser, namespace, values, option_string=None):
        out = {}
        for item in values:
            if "=" not in item:
                parser.error(f"argument {option_string}: expected key=value, got {item!r}")
            key, value = item.split("=", 1)
            try:
                out[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                out[key] = value
        setattr(namespace, self.dest, out)
