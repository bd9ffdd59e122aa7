import pytest
import timm
import torch
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import _create_effnet
from timm.models.mobilenetv3 import _create_mnv3

from timm_tinynet import Cube
from timm_tinynet.baselines import (BASELINES, COMPOUND_B0, EFFICIENTNET_FAMILY, GHOSTNET_A, RESNET50, RESNET_FAMILY,
                                    TINYNET_B0, get_baseline)
from timm_tinynet.models import TINYNET_CUBES

TIMM_NAMED = sorted(name for name in BASELINES if name not in ("efficientnet_b0_compound", "ghostnet_a"))


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def build(baseline, cube, **kwargs):
    return baseline.create("x", cube, pretrained_cfg=baseline.pretrained_cfg(cube), **kwargs)


@pytest.mark.parametrize("name", TIMM_NAMED)
def test_unit_cube_is_timms_model_key_by_key_and_in_function(name):
    baseline = get_baseline(name)
    with torch.device("meta"):  # shapes only; the weights come from timm's model below
        ours = build(baseline, Cube()).eval()
    theirs = timm.create_model(name).eval()
    assert shapes(ours) == shapes(theirs)  # same keys in the same order, same shapes
    ours.load_state_dict(theirs.state_dict(), assign=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # same activations, SE gates and heads: the same function, not only the same tensors
        assert torch.equal(ours(x), theirs(x))
    assert baseline.img_size(Cube()) == theirs.pretrained_cfg["input_size"][-1]
    for key in ("mean", "std", "interpolation", "crop_pct", "first_conv", "classifier"):
        assert baseline.pretrained_cfg(Cube())[key] == theirs.pretrained_cfg[key], key


def test_compound_b0_is_efficientnet_b0_at_the_unit_cube():
    assert shapes(build(COMPOUND_B0, Cube())) == shapes(timm.create_model("efficientnet_b0"))
    assert COMPOUND_B0.img_size(Cube()) == 224


def test_every_timm_generator_family_is_covered():
    from timm.models.efficientnet import EfficientNet
    from timm.models.mobilenetv3 import MobileNetV3
    from timm.models.resnet import ResNet

    with torch.device("meta"):
        classes = {type(timm.create_model(name)) for name in TIMM_NAMED}
    assert classes == {EfficientNet, MobileNetV3, ResNet}
    assert len(EFFICIENTNET_FAMILY) >= 9 and len(RESNET_FAMILY) >= 5
    for name in ("efficientnet_b1", "efficientnet_b2", "efficientnet_lite0", "mobilenetv2_100",
                 "mobilenetv3_large_100", "mobilenetv3_small_100", "mnasnet_100", "resnet18", "resnet34",
                 "resnet101", "resnet50d"):  # the ones issue 13 asks for
        assert name in BASELINES


@pytest.mark.parametrize("name", sorted(TINYNET_CUBES))
def test_tinynet_builder_reproduces_timm_tinynets(name):
    cube = TINYNET_CUBES[name]
    ours = TINYNET_B0.create(name, cube, pretrained_cfg=TINYNET_B0.pretrained_cfg(cube))
    theirs = timm.create_model(name)
    assert shapes(ours) == shapes(theirs)
    assert str(ours) == str(theirs)
    assert TINYNET_B0.img_size(cube) == theirs.pretrained_cfg["input_size"][-1]


def _block_out_channels(block):
    for last_conv in ("conv_pwl", "conv_pw", "conv"):  # InvertedResidual, DepthwiseSeparableConv, ConvBnAct
        if hasattr(block, last_conv):
            return getattr(block, last_conv).out_channels


@pytest.mark.parametrize("name", sorted(EFFICIENTNET_FAMILY))
@pytest.mark.parametrize("cube", [Cube(0.5, 0.4, 0.6), Cube(1.0, 1.7, 1.3), Cube(0.8, 0.2, 0.3)])
def test_efficientnet_reports_and_arch_strings_describe_the_built_model(name, cube):
    baseline = EFFICIENTNET_FAMILY[name]
    model = build(baseline, cube)
    assert [len(stage) for stage in model.blocks] == baseline.stage_repeats(cube)
    assert [_block_out_channels(stage[-1]) for stage in model.blocks] == baseline.stage_channels(cube)
    assert model.conv_stem.out_channels == baseline.stem_size(cube)
    assert model.head_hidden_size == baseline.head_size(cube)
    # the scaled arch strings rebuild the same network with no multipliers at all
    kwargs = baseline.model_kwargs(cube)
    create = _create_mnv3 if baseline.spec.model_class == "MobileNetV3" else _create_effnet
    rebuilt = create(
        "x", False, pretrained_cfg=baseline.pretrained_cfg(cube), block_args=decode_arch_def(baseline.arch_def(cube)),
        stem_size=baseline.stem_size(cube), fix_stem=True, num_features=baseline.head_size(cube),
        **({"se_layer": kwargs["se_layer"]} if "se_layer" in kwargs else {}))
    assert shapes(rebuilt) == shapes(model)


def test_each_family_scales_stem_and_head_by_its_own_generators_rule():
    half = Cube(w=0.5)
    assert [get_baseline(n).stem_size(half) for n in ("efficientnet_b1", "efficientnet_lite0", "mobilenetv2_100",
                                                       "mobilenetv3_large_100", "fbnetc_100")] == [16, 32, 16, 16, 8]
    assert [get_baseline(n).head_size(half) for n in ("efficientnet_b1", "efficientnet_lite0", "mobilenetv2_100",
                                                       "mobilenetv3_large_100", "mnasnet_100")] == [640, 1280, 1280,
                                                                                                     1280, 1280]
    assert get_baseline("efficientnet_b2").stage_channels(Cube()) == [16, 24, 48, 88, 120, 208, 352]  # x1.1
    assert get_baseline("efficientnet_b1").stage_repeats(Cube()) == [2, 3, 3, 4, 4, 5, 2]  # ceil(1.1 n)
    assert get_baseline("efficientnet_lite0").stage_repeats(Cube(d=2)) == [1, 4, 4, 6, 6, 8, 1]  # first/last fixed
    # a stage of several block definitions shares its scaled repeats out as timm does (at least one each)
    assert get_baseline("mobilenetv3_large_100").stage_repeats(Cube(d=0.5)) == [1, 2, 2, 3, 1, 2, 1]


def test_tinynet_head_never_shrinks_but_compound_head_does():
    assert TINYNET_B0.head_size(Cube(w=0.5)) == 1280
    assert TINYNET_B0.head_size(Cube(w=1.5)) == 1920
    assert COMPOUND_B0.head_size(Cube(w=0.5)) == 640
    assert TINYNET_B0.stem_size(Cube(w=0.5)) == 32 and COMPOUND_B0.stem_size(Cube(w=0.5)) == 16


def test_resnet_scales_depth_and_width_and_keeps_timms_fixed_stem():
    cube = Cube(0.5, 0.5, 0.5)
    model = RESNET50.create("x", cube, pretrained_cfg=RESNET50.pretrained_cfg(cube))
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [2, 2, 3, 2]  # round(3/2)=2, round(1.5)=2
    assert model.conv1.out_channels == 64
    assert [getattr(model, f"layer{i}")[-1].conv3.out_channels for i in range(1, 5)] == [128, 256, 512, 1024]


@pytest.mark.parametrize("name", ["resnet18", "resnet50d"])
def test_resnet_variants_keep_their_block_and_stem(name):
    baseline = RESNET_FAMILY[name]
    cube = Cube(0.5, 0.5, 0.5)
    model = build(baseline, cube)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == baseline.stage_repeats(cube)
    last = [getattr(model, f"layer{i}")[-1] for i in range(1, 5)]
    assert [(b.conv3 if hasattr(b, "conv3") else b.conv2).out_channels for b in last] == baseline.stage_channels(cube)
    if name == "resnet50d":
        assert [model.conv1[i].out_channels for i in (0, 3, 6)] == [32, 32, 64]  # the deep stem keeps its width
        assert isinstance(model.layer2[0].downsample[0], torch.nn.AvgPool2d)
    else:
        assert model.conv1.out_channels == 64 and baseline.stage_channels(cube) == [32, 64, 128, 256]


def test_ghostnet_a_matches_table_7():
    model = GHOSTNET_A.create("ghostnet_a", Cube(), pretrained_cfg=GHOSTNET_A.pretrained_cfg(Cube()))
    assert model.conv_stem.out_channels == 28
    blocks = [b for stage in model.blocks[:-1] for b in stage]
    assert [b.ghost2.out_chs for b in blocks] == [28, 44, 44, 72, 72, 72, 140, 140, 140, 140, 196, 196, 196,
                                                  280, 280, 280, 280, 280, 280]
    assert sum(1 for b in blocks if b.stride == 2) == 4
    assert all(b.se is not None for b in blocks)
    assert model.num_features == 1680 and model.head_hidden_size == 1400
    assert GHOSTNET_A.img_size(Cube()) == 240


def test_ghostnet_depth_scaling_keeps_stride_blocks():
    cube = Cube(d=0.5)
    model = GHOSTNET_A.create("x", cube, pretrained_cfg=GHOSTNET_A.pretrained_cfg(cube))
    blocks = [b for stage in model.blocks[:-1] for b in stage]
    assert len(blocks) == sum(GHOSTNET_A.stage_repeats(cube))
    assert sum(1 for b in blocks if b.stride == 2) == 4


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_arch_key_tells_apart_exactly_the_different_networks(name):
    baseline = get_baseline(name)
    assert baseline.arch_key(Cube(r=0.5)) == baseline.arch_key(Cube())  # resolution is not architecture
    assert baseline.arch_key(Cube(w=0.5)) != baseline.arch_key(Cube())
    assert baseline.arch_key(Cube(d=0.5)) != baseline.arch_key(Cube())


def test_unknown_baseline_and_tiny_resolution():
    with pytest.raises(ValueError, match="unknown baseline 'vgg16'"):
        get_baseline("vgg16")
    with pytest.raises(ValueError, match="minimum is 32px"):
        TINYNET_B0.img_size(Cube(r=0.1))
