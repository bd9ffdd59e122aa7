import pytest
import timm
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import _create_effnet

from timm_tinynet import Cube
from timm_tinynet.baselines import COMPOUND_B0, GHOSTNET_A, RESNET50, TINYNET_B0, get_baseline
from timm_tinynet.models import TINYNET_CUBES


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("baseline", [TINYNET_B0, COMPOUND_B0])
def test_unit_cube_is_efficientnet_b0(baseline):
    ours = baseline.create("x", Cube(), pretrained_cfg=baseline.pretrained_cfg(Cube()))
    assert shapes(ours) == shapes(timm.create_model("efficientnet_b0"))
    assert baseline.img_size(Cube()) == 224


def test_unit_cube_is_resnet50():
    ours = RESNET50.create("x", Cube(), pretrained_cfg=RESNET50.pretrained_cfg(Cube()))
    assert shapes(ours) == shapes(timm.create_model("resnet50"))


@pytest.mark.parametrize("name", sorted(TINYNET_CUBES))
def test_tinynet_builder_reproduces_timm_tinynets(name):
    cube = TINYNET_CUBES[name]
    ours = TINYNET_B0.create(name, cube, pretrained_cfg=TINYNET_B0.pretrained_cfg(cube))
    theirs = timm.create_model(name)
    assert shapes(ours) == shapes(theirs)
    assert str(ours) == str(theirs)
    assert TINYNET_B0.img_size(cube) == theirs.pretrained_cfg["input_size"][-1]


def _block_out_channels(block):
    return (block.conv_pwl if hasattr(block, "conv_pwl") else block.conv_pw).out_channels


@pytest.mark.parametrize("baseline", [TINYNET_B0, COMPOUND_B0])
@pytest.mark.parametrize("cube", [Cube(0.5, 0.4, 0.6), Cube(1.0, 1.7, 1.3), Cube(0.8, 0.2, 0.3)])
def test_efficientnet_reports_and_arch_strings_describe_the_built_model(baseline, cube):
    model = baseline.create("x", cube, pretrained_cfg=baseline.pretrained_cfg(cube))
    assert [len(stage) for stage in model.blocks] == baseline.stage_repeats(cube)
    assert [_block_out_channels(stage[-1]) for stage in model.blocks] == baseline.stage_channels(cube)
    assert model.conv_stem.out_channels == baseline.stem_size(cube)
    assert model.num_features == baseline.head_size(cube)
    # the scaled arch strings rebuild the same network with no multipliers at all
    rebuilt = _create_effnet(
        "x", False, pretrained_cfg=baseline.pretrained_cfg(cube), block_args=decode_arch_def(baseline.arch_def(cube)),
        stem_size=baseline.stem_size(cube), fix_stem=True, num_features=baseline.head_size(cube),
        act_layer=model.conv_head and type(model.bn2.act))
    assert shapes(rebuilt) == shapes(model)


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


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_b0_compound", "resnet50", "ghostnet_a"])
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
