"""--pretrained without a network: weights in the local cache load with no request; otherwise the command fails in
one line within seconds (not after a minute of hub retries); a real download is announced in one line.

Every test here passes with or without internet: the cache is a temporary folder, and the network is either
switched off (HF_HUB_OFFLINE), pointed at an address that answers nothing, or replaced by a stub."""
import time

import pytest
import timm
import torch

import timm_tinynet  # noqa: F401
from timm_tinynet import loading
from timm_tinynet.loading import ModelLoadError, create

REPO = "timm/tinynet_e.in1k"  # where timm fetches tinynet_e's weights


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A Hugging Face cache with nothing in it, and no proxy in the way."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path / "hub"


def no_network(*args, **kwargs):
    raise AssertionError("a network connection was attempted")


def test_hf_hub_offline_fails_at_once(empty_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(loading, "probe", no_network)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="could not be downloaded: timm/tinynet_e.in1k is not in the Hugging "
                                             "Face cache and HF_HUB_OFFLINE is set"):
        create("tinynet_e", pretrained=True)
    assert time.perf_counter() - start < 5


def test_unreachable_hub_fails_within_seconds(empty_cache, monkeypatch):
    """A server (or name server) that answers nothing: the probe gives up after its timeout."""
    import socket

    def hang(*args, **kwargs):
        time.sleep(30)
        raise TimeoutError("timed out")  # long after the probe gave up: its daemon thread just ends

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(loading, "PROBE_TIMEOUT_S", 1.0)
    monkeypatch.setattr("timm.models._builder.load_pretrained", no_network)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        create("tinynet_e", pretrained=True)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "pretrained weights of tinynet_e could not be downloaded" in message
    assert "huggingface.co:443 cannot be reached (no answer within 1 s)" in message and "\n" not in message


def test_cli_offline_is_one_line_within_seconds(empty_cache, monkeypatch, tmp_path, capsys):
    from tinynet_cli.export import main as export_main

    monkeypatch.setattr(loading, "probe", lambda host, port, timeout=None: "timed out")
    start = time.perf_counter()
    assert export_main(["--model", "tinynet_e", "--pretrained", "--out", str(tmp_path / "x.onnx")]) == 2
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "huggingface.co:443 cannot be reached (timed out)" in err[0]
    assert not (tmp_path / "x.onnx").exists()


def _cache_weights(cache, state):
    """Put ``state`` where the Hugging Face client caches timm/tinynet_e.in1k's model.safetensors."""
    from safetensors.torch import save_file

    commit = "0" * 40
    repo = cache / ("models--" + REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))


def test_cached_weights_load_without_any_request(empty_cache, monkeypatch, capsys):
    torch.manual_seed(1)
    state = timm.create_model("tinynet_e").state_dict()
    _cache_weights(empty_cache, state)
    monkeypatch.setattr(loading, "probe", no_network)
    import socket

    monkeypatch.setattr(socket.socket, "connect", no_network)  # whatever client would make a request
    monkeypatch.setattr(socket, "create_connection", no_network)
    model = create("tinynet_e", pretrained=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert "downloading" not in capsys.readouterr().err

    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE is False  # offline only while loading


def test_a_download_is_announced_in_one_line(empty_cache, monkeypatch, capsys):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def fail(*args, **kwargs):
        raise LocalEntryNotFoundError("connection lost")

    monkeypatch.setattr(loading, "probe", lambda host, port, timeout=None: None)  # the server answers
    monkeypatch.setattr("timm.models._builder.load_pretrained", fail)
    with pytest.raises(ModelLoadError, match="could not be downloaded"):
        create("tinynet_e", pretrained=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"downloading the pretrained weights of tinynet_e: {REPO} from huggingface.co"]


def test_model_without_published_weights(monkeypatch):
    monkeypatch.setattr(loading, "probe", no_network)
    with pytest.raises(ModelLoadError, match="no pretrained weights exist for 'ghostnet_a'"):
        create("ghostnet_a", pretrained=True)


def test_probe_reports_a_refused_port():
    import socket

    with socket.socket() as server:  # a port that is bound but not listening refuses connections
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert loading.probe("127.0.0.1", port, timeout=1.0) is not None
        server.listen()
        assert loading.probe("127.0.0.1", port, timeout=1.0) is None
