import subprocess
import sys

import pytest
import timm
import torch

import timm_tinynet
from timm_tinynet import NoPretrainedWeightsError, UnreachableTargetError
from timm_tinynet.models import GENERIC_MODELS

SMALL = 64  # forward/backward at a small size keeps the suite fast; sizes are checked separately


@pytest.mark.parametrize("name", timm_tinynet.MODEL_NAMES)
def test_forward_backward_num_classes_in_chans_drop(name):
    model = timm.create_model(name, num_classes=7, in_chans=1, drop_rate=0.3, drop_path_rate=0.2).train()
    x = torch.randn(2, 1, SMALL, SMALL)
    out = model(x)
    assert out.shape == (2, 7)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", timm_tinynet.MODEL_NAMES)
def test_pretrained_cfg_describes_the_model(name):
    model = timm.create_model(name).eval()
    cfg = model.pretrained_cfg
    size = cfg["input_size"]
    modules = dict(model.named_modules())
    assert cfg["first_conv"] in modules and isinstance(modules[cfg["first_conv"]], torch.nn.Conv2d)
    assert cfg["classifier"] in modules and modules[cfg["classifier"]] is model.get_classifier()
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, *size))
    assert tuple(features.shape[-2:]) == tuple(cfg["pool_size"])


@pytest.mark.parametrize("name", timm_tinynet.MODEL_NAMES)
def test_features_only(name):
    model = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, SMALL, SMALL))
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    assert [SMALL // f.shape[-1] for f in feats] == model.feature_info.reduction() == [4, 8, 16, 32]


@pytest.mark.parametrize("name", [n for n in timm_tinynet.MODEL_NAMES if not n.startswith("tinynet_")
                                  and n not in GENERIC_MODELS])  # those inherit (tests/test_inherit.py)
def test_pretrained_without_published_weights_is_an_error(name):
    with pytest.raises(NoPretrainedWeightsError, match=f"no pretrained weights exist for '{name}'") as info:
        timm.create_model(name, pretrained=True)
    if name not in ("ghostnet_a", "ghostnet_b", "ghostnet_c", "ghostnet_d"):  # GhostNet-A's family has none
        assert "or inherit the weights of a published network of its family: timm.create_model(" in str(info.value)


@pytest.mark.parametrize("name,kwargs", [("tinynet_c", {}), ("ghostnet_a", {"num_classes": 1000}),
                                         ("tinynet", {"r": 0.5, "d": 0.5, "w": 0.5})])
def test_pretrained_loading_path_offline(tmp_path, name, kwargs):
    source = timm.create_model(name, **kwargs)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    loaded = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_tinynets_point_at_the_authors_weights():
    cfg = timm.create_model("tinynet_c").pretrained_cfg
    assert cfg["hf_hub_id"] == "timm/tinynet_c.in1k"
    assert cfg["input_size"] == (3, 184, 184)


def test_import_does_not_overwrite_timms_registry():
    code = "import warnings; warnings.simplefilter('error', UserWarning); import timm; import timm_tinynet"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Overwriting" not in result.stderr


def test_generic_tinynet_by_dims_and_by_rule():
    model = timm.create_model("tinynet", r=0.5, d=0.5, w=0.5)
    assert model.pretrained_cfg["input_size"] == (3, 112, 112)
    model = timm.create_model("tinynet", c=0.5, rule="w")
    assert model.pretrained_cfg["input_size"] == (3, 224, 224)
    assert model.conv_head.out_channels == 1280
    model = timm.create_model("resnet50_tiny", c=0.5, rule="giant")
    assert model.pretrained_cfg["input_size"][-1] < 224
    model = timm.create_model("ghostnet_tiny", w=0.5, act_layer="hard_swish")
    assert isinstance(model.act1, torch.nn.Hardswish)


def test_ghostnet_activation_is_selectable():
    assert isinstance(timm.create_model("ghostnet_a").act2, torch.nn.ReLU)
    model = timm.create_model("ghostnet_a", act_layer="hard_swish")
    assert isinstance(model.blocks[1][0].ghost1.primary_conv[2], torch.nn.Hardswish)


@pytest.mark.parametrize("kwargs,message", [
    ({"r": 0}, "^r must be > 0"), ({"d": float("nan")}, "^d must be finite"), ({"w": 1e4}, "^w=10000.0 is outside"),
    ({"r": -1.0}, "^r must be > 0"), ({"c": 0.5, "r": 0.5}, "either c"), ({"rule": "giant"}, "rule and frontier need c"),
    ({"c": 2.0}, "c must be in"), ({"c": 0.5, "rule": "sideways"}, "unknown rule"), ({"r": 0.1}, "minimum is 32px"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timm.create_model("tinynet", **kwargs)


def test_unreachable_target_through_create_model():
    with pytest.raises(UnreachableTargetError, match="minimum depth"):
        timm.create_model("tinynet", c=0.1, rule="d")


def test_torch_hub_local():
    import importlib.util
    import pathlib

    repo = pathlib.Path(__file__).resolve().parents[1]
    model = torch.hub.load(str(repo), "ghostnet_a", source="local", num_classes=5, trust_repo=True)
    assert model.num_classes == 5
    model = torch.hub.load(str(repo), "tinynet_c", source="local", trust_repo=True)
    assert model.pretrained_cfg["input_size"] == (3, 184, 184)
    spec = importlib.util.spec_from_file_location("hubconf", repo / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert all(callable(getattr(hubconf, name)) for name in timm_tinynet.MODEL_NAMES)
    assert "timm" in hubconf.dependencies


@pytest.mark.parametrize("kwargs,message", [
    ({"c": 0.5, "tol": float("nan")}, "tol must be in (0, 1), got nan"),
    ({"c": 0.5, "tol": "0.1"}, "tol must be a number in (0, 1), got '0.1'"),
    ({"c": 0.5, "tol": 0}, "tol must be in (0, 1), got 0.0"),
    ({"r": 0.5, "tol": 1.5}, "tol must be in (0, 1), got 1.5"),
    ({"c": float("nan")}, "c must be in (0, 1) (a FLOPs ratio for shrinking), got nan"),
    ({"c": "0.5"}, "c must be a number in (0, 1), got '0.5'"),
    ({"c": 0.5, "rule": ""}, "unknown rule ''; choose from tiny, giant, r, d, w"),
    ({"c": 0.5, "rule": ["tiny"]}, "unknown rule ['tiny']"),
    ({"c": 0.5, "frontier": 3}, "frontier must be the path of a frontier CSV file, got int 3"),
    ({"r": "0.5"}, "r must be a number, got '0.5'"),
])
def test_every_argument_is_validated_with_one_line(kwargs, message):
    with pytest.raises(ValueError) as info:
        timm.create_model("tinynet", **kwargs)
    assert str(info.value) == message or str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_every_model_is_a_written_out_entrypoint_registered_with_timm():
    """Each name in MODEL_NAMES is a function of models.py (timm style, not generated) that timm can build; the
    released TinyNets keep timm's own entrypoints where timm has them."""
    import inspect

    from timm.models._registry import _model_entrypoints

    from timm_tinynet import models

    for name in models.MODEL_NAMES:
        owner = _model_entrypoints[name].__module__
        if name in models.TINYNET_CUBES:  # the released TinyNets are timm's own
            assert owner.startswith("timm.") and not hasattr(models, name), (name, owner)
            continue
        fn = getattr(models, name)
        assert inspect.isfunction(fn) and fn.__name__ == name and fn.__module__ == models.__name__, name
        assert "pretrained" in inspect.signature(fn).parameters
        assert owner == models.__name__, (name, owner)
