"""The model a tool works on: a checkpoint's own network with its weights, the published weights, or a random
initialisation — built through timm, with one-line reasons when it cannot be."""
from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple
from urllib.parse import urlparse

import torch
import torch.nn as nn

from .text import first_line

HEAD_SUFFIXES = ("classifier.weight", "fc.weight", "head.fc.weight")
PROBE_TIMEOUT_S = 3.0  # how long --pretrained waits for the weights' server to answer before it gives up
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm fetches from a hub repo, in its order


class ModelLoadError(ValueError):
    """A model that cannot be built or given its weights, with the reason."""


def head_classes(state: Dict[str, torch.Tensor]) -> Optional[int]:
    """The number of classes the classifier in ``state`` predicts (None when it has no known classifier)."""
    head = [v for k, v in state.items() if k.endswith(HEAD_SUFFIXES)]
    return int(head[0].shape[0]) if head else None


def quiet_hub_retries() -> None:
    """The Hugging Face hub logs every retry of a failing download; the tools report the failure in one line."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        return
    hub_logging.set_verbosity_error()


def _is_download_error(e: Exception) -> bool:
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("huggingface_hub", "requests", "httpx")


def probe(host: str, port: int, timeout: Optional[float] = None) -> Optional[str]:
    """None when a TCP connection to ``host:port`` opens within ``timeout`` seconds (default PROBE_TIMEOUT_S; name
    lookup included), else the reason. Runs in a daemon thread, so a resolver that hangs cannot hold us longer."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    outcome: list = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(e.strerror or str(e) or type(e).__name__)

    thread = threading.Thread(target=connect, name="tinynet-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _proxy_for(scheme: str) -> Optional[Tuple[str, int]]:
    """The proxy the download would go through (host, port), from the usual environment variables."""
    for key in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        value = os.environ.get(key)
        if value:
            parsed = urlparse(value if "://" in value else f"http://{value}")
            if parsed.hostname:
                return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return None


def _hf_offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES",
                                                                                              "TRUE")


def _weights_location(name: str) -> Tuple[str, Any]:
    """Where timm would load ``name``'s pretrained weights from: ('hf-hub', (repo, revision, filename or None)),
    ('url', url), another of timm's sources, or ('', None) when the model has none."""
    from timm.models._builder import _resolve_pretrained_source
    from timm.models._hub import hf_split
    from timm.models._registry import get_pretrained_cfg

    cfg = get_pretrained_cfg(name, allow_unregistered=True)
    if cfg is None:
        return "", None
    source, location = _resolve_pretrained_source(cfg.to_dict())
    if source == "hf-hub":
        repo, filename = location if isinstance(location, tuple) else (location, None)
        repo_id, revision = hf_split(repo)
        return source, (repo_id, revision, filename)
    return source, location


def _hf_cached(repo_id: str, revision: Optional[str], filename: Optional[str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for candidate in (filename,) if filename else HF_WEIGHT_FILES:
        if isinstance(try_to_load_from_cache(repo_id, candidate, revision=revision), str):
            return True
    return False


@contextmanager
def _hub_offline() -> Iterator[None]:
    """The Hugging Face client in offline mode: weights already in its cache load without a network request."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


@contextmanager
def pretrained_weights(name: str) -> Iterator[None]:
    """Around ``timm.create_model(name, pretrained=True)``: weights in the local cache load with no network
    request; otherwise the server is probed for a few seconds first (a dead network fails in one line at once,
    not after a minute of retries), and a download is announced on stderr with what is downloaded."""
    try:
        source, location = _weights_location(name)
    except Exception:  # noqa: BLE001 - an unusual name or cfg: timm itself reports it below
        yield
        return
    if source == "":
        raise ModelLoadError(f"no pretrained weights exist for {name!r}; drop --pretrained, or give --checkpoint")
    if source == "hf-hub":
        from huggingface_hub import constants

        repo_id, revision, filename = location
        what = repo_id + (f"@{revision}" if revision else "")
        if _hf_cached(repo_id, revision, filename):
            with _hub_offline():
                yield
            return
        if _hf_offline():
            raise ModelLoadError(f"the pretrained weights of {name} could not be downloaded: {what} is not in the "
                                 f"Hugging Face cache and HF_HUB_OFFLINE is set; unset it, or use --checkpoint")
        url = constants.ENDPOINT
    elif source == "url":
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(location).path)
        if cached.is_file():
            yield
            return
        what = url = location
    else:  # a local file or a state dict: nothing to download
        yield
        return
    parsed = urlparse(url)
    scheme = parsed.scheme or "https"
    host, port = _proxy_for(scheme) or (parsed.hostname or "", parsed.port or (443 if scheme == "https" else 80))
    problem = probe(host, port)
    if problem is not None:
        raise ModelLoadError(f"the pretrained weights of {name} could not be downloaded: {what} is not in the local "
                             f"cache and {host}:{port} cannot be reached ({problem}); check the network, or use "
                             f"--checkpoint")
    print(f"downloading the pretrained weights of {name}: {what} from {parsed.hostname}", file=sys.stderr)
    yield


def create(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` (with this plugin's models registered); ModelLoadError names what went wrong. With
    ``pretrained``, cached weights load offline and a missing network fails within seconds (``pretrained_weights``)."""
    import timm  # this plugin's models are registered: importing timm_tinynet.loading ran timm_tinynet/__init__

    if not timm.is_model(name):
        raise ModelLoadError(f"unknown model {name!r} (see timm.list_models() and the timm_tinynet README)")
    try:
        if not pretrained:
            return timm.create_model(name, **kwargs)
        if "pretrained_cfg" in kwargs or "pretrained_cfg_overlay" in kwargs:  # weights named by the caller
            return timm.create_model(name, pretrained=True, **kwargs)
        with pretrained_weights(name):
            return timm.create_model(name, pretrained=True, **kwargs)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - timm, the model's own checks and the hub client raise many types
        if pretrained and _is_download_error(e):
            raise ModelLoadError(f"the pretrained weights of {name} could not be downloaded ({type(e).__name__}); "
                                 f"check the network (or the Hugging Face cache), or use --checkpoint") from None
        if isinstance(e, (ValueError, RuntimeError, TypeError, OSError)):
            raise ModelLoadError(f"cannot create {name!r} with {kwargs}: {first_line(e)}") from None
        raise


def load_model(name: Optional[str], model_kwargs: Dict[str, Any], checkpoint: Optional[Path] = None,
               pretrained: bool = False, num_classes: Optional[int] = None,
               prefer_ema: bool = True) -> Tuple[nn.Module, Dict[str, Any]]:
    """The eval-mode model and its checkpoint ({} without one).

    ``name`` defaults to the checkpoint's arch. The checkpoint's recorded model kwargs (r=, d=, w=, ...) are used
    when none are given and ``name`` is the checkpoint's own model; the classes follow its classifier; its EMA
    weights are loaded when present and ``prefer_ema``. Raises ModelLoadError (or CheckpointError)."""
    from tinynet_core.guard import MAX_CHECKPOINT_BYTES, check_input_file
    from .train.checkpoint import load_checkpoint, load_weights, model_state  # lazily: train/__init__ imports us

    kwargs = dict(model_kwargs)
    ckpt: Dict[str, Any] = {}
    state = None
    if checkpoint is not None:
        check_input_file(checkpoint, "--checkpoint", MAX_CHECKPOINT_BYTES)  # never blocks on a pipe
        ckpt = load_checkpoint(checkpoint)
        state = model_state(ckpt, prefer_ema=prefer_ema)
        arch = ckpt.get("arch")
        name = name or arch
        if not kwargs and arch in (None, name):
            kwargs = dict((ckpt.get("args") or {}).get("model_kwargs") or {})
        classes = head_classes(state)
        if classes is not None:
            kwargs["num_classes"] = classes
    if not name:
        raise ModelLoadError("--model is required (the checkpoint does not name its architecture)")
    if num_classes:
        kwargs["num_classes"] = num_classes
    model = create(name, pretrained=pretrained and checkpoint is None, **kwargs)
    if state is not None:
        load_weights(model, state, str(checkpoint))
    return model.eval(), ckpt
