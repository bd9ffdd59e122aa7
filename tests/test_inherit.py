"""Weight inheritance (issue 13 part 2): a shrunk network initialised from a larger one by weight selection."""
from __future__ import annotations

import random
import warnings

import pytest
import timm
import torch

from timm_tinynet.channels import UnsupportedNetwork, trace
from timm_tinynet.inherit import _Layout, _parent_sizes, inherit, select_channels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The model's own random initialisation, plus random batch-norm scales, shifts and statistics and random biases
    (none left at 0 or 1, so a copy error shows), in eval mode."""
    generator = torch.Generator().manual_seed(seed)

    def uniform_(tensor: torch.Tensor, lo: float, hi: float) -> None:
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (hi - lo) + lo)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                uniform_(module.weight, 0.5, 1.5)
                uniform_(module.bias, -0.1, 0.1)
                uniform_(module.running_mean, -0.1, 0.1)
                uniform_(module.running_var, 0.5, 1.5)
            elif getattr(module, "bias", None) is not None and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                uniform_(module.bias, -0.1, 0.1)
    return model.eval()


def inflate(child: torch.nn.Module, parent: torch.nn.Module, choose) -> torch.nn.Module:
    """``parent`` made to compute ``child``'s function: the child's channels at the positions ``choose(parent_size,
    child_size)`` gives, every other channel and every extra block zero (a dead channel; a residual block whose
    branch adds nothing)."""
    graph = trace(child)
    target = parent.state_dict()
    for tensor in target.values():
        if tensor.is_floating_point():
            tensor.zero_()
    for key, tensor in target.items():
        if "running_var" in key:
            tensor.fill_(1.0)
    sizes = _parent_sizes(graph, target)
    chosen = {space: choose(sizes[space], graph.sizes[space]) for space in graph.base_spaces()}
    with torch.no_grad():
        for key, value in child.state_dict().items():
            index = []
            for dim, axis in enumerate(graph.axes[key]):
                if axis.kind == "channels":
                    index.append(torch.tensor(_Layout(graph, axis.channels, sizes, target[key].shape[dim]).indices(
                        chosen)))
                else:
                    start = (target[key].shape[dim] - value.shape[dim]) // 2
                    index.append(torch.arange(start, start + value.shape[dim]))
            if index:
                target[key][torch.meshgrid(*index, indexing="ij")] = value
            else:
                target[key].copy_(value)
    return parent.eval()


def uniform(parent_size: int, child_size: int):
    return select_channels(parent_size, child_size, "uniform")


def scattered(seed: int):
    rng = random.Random(seed)
    return lambda parent_size, child_size: sorted(rng.sample(range(parent_size), child_size))


LOSSLESS = [  # (child kwargs, parent kwargs): the parent wider and deeper
    (dict(r=0.5, d=0.5, w=0.5), dict(r=0.5, d=1.2, w=1.0)),
    (dict(baseline="mobilenetv3_large_100", r=0.5, d=0.6, w=0.6), dict(baseline="mobilenetv3_large_100", r=0.5)),
    (dict(baseline="resnet50d", r=0.3, d=0.4, w=0.3), dict(baseline="resnet50d", r=0.3, d=0.8, w=0.6)),
    (dict(baseline="resnet18", r=0.3, d=0.5, w=0.5), dict(baseline="resnet18", r=0.3, w=0.75)),  # both downsample
    (dict(baseline="spnasnet_100", r=0.5, d=0.5, w=0.5), dict(baseline="spnasnet_100", r=0.5)),
    (dict(baseline="ghostnet_a", r=0.5, d=0.5, w=0.5), dict(baseline="ghostnet_a", r=0.5, w=0.8)),
]


@pytest.mark.parametrize("child_kwargs,parent_kwargs", LOSSLESS, ids=lambda k: str(k.get("baseline", "b0")))
@pytest.mark.parametrize("selection", ["uniform", "magnitude"])
def test_a_lossless_selection_gives_the_parents_function(child_kwargs, parent_kwargs, selection):
    """The parent holds the child's channels (at the uniform positions, or anywhere for magnitude) and nothing
    else that reaches the output: the inherited child computes exactly what the parent computes."""
    source = randomise(timm.create_model("tinynet", num_classes=7, **child_kwargs), seed=1)
    parent = inflate(source, timm.create_model("tinynet", num_classes=7, **parent_kwargs),
                     uniform if selection == "uniform" else scattered(2))
    child = timm.create_model("tinynet", num_classes=7, **child_kwargs).eval()
    result = inherit(child, parent.state_dict(), selection)
    assert result.inherited == result.total and not result.kept
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want, got = parent(x), child(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (got - want).abs().max()
    assert torch.allclose(got, source(x), rtol=1e-4, atol=1e-5)


def test_magnitude_finds_the_live_channels_that_uniform_misses():
    kwargs = dict(r=0.5, d=0.5, w=0.5)
    source = randomise(timm.create_model("tinynet", num_classes=5, **kwargs), seed=3)
    parent = inflate(source, timm.create_model("tinynet", num_classes=5, r=0.5, w=1.0), scattered(4))
    x = torch.randn(2, 3, 96, 96)
    outputs = {}
    for selection in ("uniform", "magnitude"):
        child = timm.create_model("tinynet", num_classes=5, **kwargs).eval()
        inherit(child, parent.state_dict(), selection)
        with torch.no_grad():
            outputs[selection] = child(x)
    with torch.no_grad():
        assert torch.allclose(outputs["magnitude"], parent(x), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(outputs["uniform"], parent(x), rtol=1e-2, atol=1e-3)


def test_equal_shapes_are_copied_whole_and_the_rest_keeps_its_shape():
    parent = randomise(timm.create_model("tinynet_a"), seed=5)  # TinyNet's 32-channel stem is fixed
    child = timm.create_model("tinynet", c=0.25)
    shapes = {k: v.shape for k, v in child.state_dict().items()}
    result = inherit(child, parent.state_dict(), "uniform", "tinynet_a")
    assert {k: v.shape for k, v in child.state_dict().items()} == shapes
    for key in ("conv_stem.weight", "bn1.weight", "bn1.running_mean", "bn1.running_var"):
        assert torch.equal(child.state_dict()[key], parent.state_dict()[key]), key
    assert result.whole >= 4 and result.inherited == result.total
    assert result.line().startswith(f"inherited {result.total} of {result.total} tensors from tinynet_a")
    # a cut tensor is the parent's at the selected channels: the head conv keeps every stream channel it reads
    head = child.state_dict()["conv_head.weight"]
    assert head.shape[0] == parent.state_dict()["conv_head.weight"].shape[0] == 1280
    picked = select_channels(parent.state_dict()["conv_head.weight"].shape[1], head.shape[1], "uniform")
    assert torch.equal(head, parent.state_dict()["conv_head.weight"][:, picked])


def test_the_same_network_inherits_everything_whole():
    parent = randomise(timm.create_model("tinynet", baseline="resnet18", r=0.4, d=0.5, w=0.5), seed=6)
    child = timm.create_model("tinynet", baseline="resnet18", r=0.4, d=0.5, w=0.5).eval()
    result = inherit(child, parent.state_dict(), "magnitude")
    assert result.whole == result.inherited == result.total
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(child(x), parent(x))


def test_what_the_parent_cannot_give_stays_as_initialised():
    parent = randomise(timm.create_model("tinynet", r=0.5, d=0.5, w=0.5), seed=7)
    child = timm.create_model("tinynet", r=0.5, d=1.0, w=0.75, num_classes=10)  # deeper, wider, other classes
    before = {k: v.clone() for k, v in child.state_dict().items()}
    result = inherit(child, parent.state_dict(), "magnitude")
    after = child.state_dict()
    assert set(result.kept) >= {"classifier.weight", "classifier.bias", "blocks.5.3.conv_pw.weight"}
    assert all(torch.equal(after[k], before[k]) for k in result.kept)
    assert result.inherited + len(result.kept) == result.total
    assert torch.equal(after["conv_stem.weight"], parent.state_dict()["conv_stem.weight"])


def test_kernels_take_the_parents_centre():
    parent = randomise(timm.create_model("tinynet", r=0.5, d=0.5, w=0.5), seed=8)
    state = parent.state_dict()
    child = timm.create_model("tinynet", r=0.5, d=0.5, w=0.5)
    key = "blocks.2.0.conv_dw.weight"  # a 5x5 depthwise conv; give the child a 3x3 one of the same channels
    conv = child.blocks[2][0].conv_dw
    child.blocks[2][0].conv_dw = torch.nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, 1,
                                                  groups=conv.groups, bias=False)
    inherit(child, state, "uniform")
    assert torch.equal(child.state_dict()[key], state[key][:, :, 1:4, 1:4])


def test_bad_selection_and_unsupported_networks():
    child = timm.create_model("tinynet", r=0.5, d=0.5, w=0.5)
    with pytest.raises(ValueError, match="unknown selection 'largest'"):
        inherit(child, child.state_dict(), "largest")
    with pytest.raises(ValueError, match="cannot select 5 of 3 channels"):
        select_channels(3, 5, "uniform")
    grouped = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=2))
    with pytest.raises(UnsupportedNetwork, match="1: a grouped conv .2 groups of 8 channels. is neither dense nor"):
        trace(grouped)
    with pytest.raises(UnsupportedNetwork, match="LayerNorm has parameters"):
        trace(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.LayerNorm(8)))


def test_select_channels():
    assert select_channels(10, 4, "uniform") == [0, 3, 6, 9]
    assert select_channels(8, 8, "magnitude") == list(range(8))
    assert select_channels(6, 3, "magnitude", torch.tensor([0.1, 5, 0.2, 5, 3, 0.0])) == [1, 3, 4]
    assert select_channels(5, 1, "uniform") == [0]
    for parent_size in range(1, 40):
        for child_size in range(1, parent_size + 1):
            picked = select_channels(parent_size, child_size, "uniform")
            assert len(set(picked)) == child_size and picked == sorted(picked) and picked[-1] < parent_size


# ---- the nearest published parent: timm.create_model(..., pretrained=True) --------------------------------------

def test_the_nearest_parent_covers_the_child_and_is_the_smallest_that_does():
    from timm_tinynet.parents import _parent_shapes, coverage, nearest_parent, published_parents

    assert published_parents("efficientnet_b0")[-1] == "efficientnet_b0" and published_parents("ghostnet_a") == ()
    assert published_parents("mobilenetv3_small_100") == ("mobilenetv3_small_100",)
    for c, want in ((0.04, "tinynet_e"), (0.1, "tinynet_d"), (0.3, "tinynet_b"), (0.6, "efficientnet_b0")):
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # c=0.04 lies below the frontier: the formula says it extrapolates
            child = timm.create_model("tinynet", c=c)
        shapes = {k: tuple(v.shape) for k, v in child.state_dict().items()}
        assert nearest_parent(child, "efficientnet_b0") == want, c
        full = coverage(shapes, _parent_shapes(want))
        assert all(coverage(shapes, _parent_shapes(other)) <= full for other in published_parents("efficientnet_b0"))


def test_pretrained_inherits_from_a_local_file_and_names_the_parent(tmp_path, caplog):
    import logging

    parent = randomise(timm.create_model("tinynet_c"), seed=9)
    path = tmp_path / "weights.pth"
    torch.save(parent.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="timm_tinynet"):
        same = timm.create_model("tinynet", r=0.825, d=0.85, w=0.54, pretrained=True,
                                 pretrained_cfg_overlay=dict(file=str(path)))
    line = same.tinynet_inheritance.line()
    assert line == f"inherited 338 of 338 tensors from tinynet_c ({path}) (338 whole, 0 cut to shape by magnitude " \
                   f"channel selection); 0 kept as initialised"
    assert line in caplog.text
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(same.eval()(x), parent(x))
    smaller = timm.create_model("tinynet", c=0.1, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                                num_classes=10)
    result = smaller.tinynet_inheritance
    assert result.inherited == result.total - 2 and set(result.kept) == {"classifier.weight", "classifier.bias"}
    assert smaller.pretrained_cfg["input_size"][-1] == timm.create_model("tinynet", c=0.1).pretrained_cfg[
        "input_size"][-1]
    from safetensors.torch import save_file

    other = tmp_path / "mine.safetensors"  # a file of no published shape: named by its path
    save_file(randomise(timm.create_model("tinynet", r=0.5, d=1.0, w=0.6), 10).state_dict(), str(other))
    result = timm.create_model("tinynet", c=0.1, pretrained=True, pretrained_cfg_overlay=dict(file=str(other)))
    assert result.tinynet_inheritance.parent == str(other)


def test_a_feature_extractor_selects_its_feature_maps_too(tmp_path):
    """The feature maps a features_only network returns are channels like any other; only logits are fixed."""
    path = tmp_path / "tinynet_b.pth"
    parent = randomise(timm.create_model("tinynet_b"), seed=13)
    torch.save(parent.state_dict(), path)
    features = timm.create_model("tinynet", c=0.3, features_only=True, pretrained=True,
                                 pretrained_cfg_overlay=dict(file=str(path)))
    result = features.tinynet_inheritance
    assert result.inherited == result.total and result.whole < result.total
    pooled = timm.create_model("tinynet", c=0.3, num_classes=0, pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(path)))
    assert pooled.tinynet_inheritance.inherited == pooled.tinynet_inheritance.total


def test_weights_of_another_family_are_refused(tmp_path):
    path = tmp_path / "b0.pth"
    torch.save(timm.create_model("tinynet_b").state_dict(), path)
    with pytest.raises(ValueError, match=r"weights in .*b0.pth are not of a network of mobilenetv3_large_100's family "
                                         r"\(blocks.4.0.conv_dw.weight is 384x1x5x5 there, 240x1x3x3 here\)"):
        timm.create_model("tinynet", baseline="mobilenetv3_large_100", c=0.3, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path)))
    with pytest.raises(ValueError, match="resnet18's family .only 5 of the network's 80 tensors have a namesake"):
        timm.create_model("tinynet", baseline="resnet18", r=0.5, d=0.5, w=0.5, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path)))


def test_pretrained_inherits_from_the_published_parent_in_the_hub_cache(tmp_path, monkeypatch):
    """The real download path, offline: the nearest parent's weights are where the Hugging Face client caches
    timm/tinynet_b.in1k, and no connection is made."""
    import socket

    from huggingface_hub import constants
    from safetensors.torch import save_file

    from timm_tinynet import loading

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(loading, "probe", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    parent = randomise(timm.create_model("tinynet_b"), seed=11)
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--timm--tinynet_b.in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(parent.state_dict(), str(repo / "snapshots" / commit / "model.safetensors"))
    child = timm.create_model("tinynet", c=0.3, pretrained=True)
    result = child.tinynet_inheritance
    assert result.parent == "tinynet_b (published weights)" and result.inherited == result.total
    assert torch.equal(child.state_dict()["conv_stem.weight"], parent.state_dict()["conv_stem.weight"])


def test_pretrained_without_a_parent_or_a_network_says_what_to_do(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from timm_tinynet.loading import ModelLoadError
    from timm_tinynet.parents import NoParentError

    with pytest.raises(NoParentError, match="no published weights exist in ghostnet_a's family"):
        timm.create_model("ghostnet_tiny", c=0.3, pretrained=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="tinynet_b could not be downloaded.*nearest published parent to inherit "
                                             "from; offline, give its weights with pretrained_cfg_overlay"):
        timm.create_model("tinynet", c=0.3, pretrained=True)


def test_a_saved_network_still_loads_exactly_not_by_inheritance(tmp_path):
    from timm_tinynet.hub import save_for_hf

    model = randomise(timm.create_model("tinynet", c=0.3, num_classes=4), seed=12)
    save_for_hf(model, tmp_path / "hf")
    rebuilt = timm.create_model(f"local-dir:{tmp_path / 'hf'}", pretrained=True).eval()
    assert not hasattr(rebuilt, "tinynet_inheritance")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
