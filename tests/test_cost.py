"""The analytic cost model (tinynet_core.cost) against the networks timm builds.

* fvcore (``count_flops``) and the built model's ``count_params`` on every registered model, every baseline
  at Cube() and seeded random cubes (20 for each of the paper's four baselines, 2 for each other); fvcore's
  activation count on the registered models;
* a shape-only forward of the model built under ``torch.device("meta")`` (``Built``: forward hooks apply fvcore's
  conv/linear formulas, checked equal to fvcore on every registered model) on seeded random cubes (120 for each of
  the paper's four baselines, 12 for each other), with module-by-module checks of names, shapes, parameters and
  conv/linear output elements; edge cubes, other class counts and odd input sizes on one baseline per code path.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import random
import subprocess
import sys
import warnings
from typing import Callable, List, Tuple

import pytest
import timm
import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import make_divisible as timm_make_divisible
from timm.models._efficientnet_builder import decode_arch_def
from timm.models._efficientnet_builder import round_channels as timm_round_channels

import timm_tinynet
from timm_tinynet import Cube, count_flops, count_params
from timm_tinynet.baselines import BASELINES, TimmBaseline, base, get_baseline
from timm_tinynet.models import PAPER_MODELS
from tinynet_core import archs, cost
from tinynet_core import baselines as described
from tinynet_core.cost import Cost, cube_cost_analytic

BASELINE_NAMES = tuple(BASELINES)
PAPER_BASELINES = ("efficientnet_b0", "efficientnet_b0_compound", "resnet50", "ghostnet_a")
GENERIC_MODELS = {"tinynet": "efficientnet_b0", "resnet50_tiny": "resnet50", "ghostnet_tiny": "ghostnet_a"}
REGISTERED = {**{name: (b.name, cube) for name, (b, cube) in PAPER_MODELS.items()},
              **{name: (baseline, Cube()) for name, baseline in GENERIC_MODELS.items()}}
RANDOM_RANGE = (0.15, 1.5)  # r >= 0.15 keeps every baseline's input >= 32 px
FVCORE_CUBES = 20
META_CUBES = 120
# the other baselines run the same layer generators (block types, stems, heads) as these four: fewer cubes each
OTHER_FVCORE_CUBES = 2
OTHER_META_CUBES = 12
# one baseline per further code path (a channel multiplier, fixed first/last stages, MobileNetV2's head, MobileNetV3's
# large and small, stages of several block definitions, BasicBlock, the deep stem with average-pool downsampling, a
# 256 px base input) for the edge-case tests, which the four paper baselines run in full
REPRESENTATIVE = PAPER_BASELINES + ("efficientnet_b2", "efficientnet_lite0", "mobilenetv2_140", "mobilenetv3_large_100",
                                    "mobilenetv3_small_100", "fbnetc_100", "resnet18", "resnet50d", "resnet101d")


def cube_count(baseline: str, paper: int, other: int) -> int:
    return paper if baseline in PAPER_BASELINES else other


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fvcore runs real forwards (tests/conftest.py)


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap():
    # the tests build ~1000 models; without this every full garbage collection rescans the objects of torch, timm
    # and fvcore, a quarter of the run time
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def random_cubes(seed: int, n: int) -> List[Cube]:
    rng = random.Random(seed)
    return [Cube(*(round(rng.uniform(*RANDOM_RANGE), 4) for _ in range(3))) for _ in range(n)]


def build(baseline: str, cube: Cube, **kwargs) -> nn.Module:
    b = get_baseline(baseline)
    return b.create("x", cube, pretrained_cfg=b.pretrained_cfg(cube), **kwargs)


def fvcore_activations(model: nn.Module, size: int) -> int:
    from fvcore.nn import ActivationCountAnalysis

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = ActivationCountAnalysis(model, torch.zeros(1, 3, size, size))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = analysis.by_operator()
    assert set(by_op) <= {"conv", "linear"}, by_op
    return sum(by_op.values())


class Built:
    """A model built under ``torch.device("meta")`` (shapes, no storage). ``run(size)`` does one shape-only
    forward in which hooks on every conv and linear layer add up fvcore's FLOPs formulas and the output elements
    and record the layer as the ``Layer`` fields, in forward order; ``module_params`` counts each module's own
    parameters."""

    def __init__(self, create: Callable[[], nn.Module]) -> None:
        with torch.device("meta"):
            self.model = create().eval()
        self.params = count_params(self.model)
        self.module_params = {name: sum(p.numel() for p in m.parameters(recurse=False))
                              for name, m in self.model.named_modules()
                              if any(True for _ in m.parameters(recurse=False))}
        for name, module in self.model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.register_forward_hook(self._hook(name))
        self.flops, self.activations, self.layers = 0, 0, []

    @classmethod
    def baseline(cls, baseline: str, cube: Cube, **kwargs) -> "Built":
        return cls(lambda: build(baseline, cube, **kwargs))

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            self.activations += output.numel()
            if isinstance(module, nn.Conv2d):
                # fvcore conv_flop_jit: batch * prod(out spatial) * prod(weight shape)
                self.flops += output.shape[0] * math.prod(output.shape[2:]) * math.prod(module.weight.shape)
                assert module.kernel_size[0] == module.kernel_size[1] and output.shape[2] == output.shape[3]
                self.layers.append((name, "conv", module.in_channels, module.out_channels, module.kernel_size[0],
                                    module.stride[0], module.groups, module.bias is not None, output.shape[2]))
            else:
                # fvcore linear_flop_jit: prod(input shape) * out_features
                self.flops += math.prod(args[0].shape) * module.out_features
                self.layers.append((name, "linear", module.in_features, module.out_features, 1, 1, 1,
                                    module.bias is not None, 1))
        return hook

    def run(self, size: int) -> Tuple[int, int]:
        """(FLOPs, params) for one ``size`` x ``size`` image; ``layers`` and ``activations`` are this forward's."""
        self.flops, self.activations, self.layers = 0, 0, []
        with torch.no_grad():
            self.model(torch.empty(1, 3, size, size, device="meta"))
        return self.flops, self.params


def assert_layers_match(baseline: str, cube: Cube, built: Built, size: int, num_classes: int = 1000) -> None:
    analytic = list(cost.layers(baseline, cube, num_classes=num_classes, img_size=size))
    assert [tuple(layer) for layer in analytic if layer.kind != "bn"] == built.layers  # forward order
    assert {layer.name: layer.params for layer in analytic} == built.module_params


# --- one architecture definition for the builders and the cost model ---------------------------------------

def test_the_builders_extend_the_torch_free_descriptions():
    assert set(BASELINES) == set(described.BASELINES) == set(cost.BASELINE_NAMES)
    for name, builder in BASELINES.items():
        description = described.get_baseline(name)
        assert isinstance(builder, TimmBaseline) and isinstance(builder, type(description))
        assert (builder.base_img_size, builder.generic_model) == (description.base_img_size,
                                                                  description.generic_model)
        assert builder.base_img_size == cost._FAMILIES[name].base_img_size
        for cube in random_cubes(5, 20) + [Cube()]:
            assert builder.arch_key(cube) == cost.architecture(name, cube) == description.arch_key(cube)
            assert builder.img_size(cube) == cost.default_img_size(name, cube)
    assert base.MIN_IMG_SIZE == archs.MIN_IMG_SIZE


def test_the_builders_feed_timm_the_archs_definitions():
    b0 = get_baseline("efficientnet_b0").model_kwargs(Cube())
    assert b0["block_args"] == decode_arch_def([list(stage) for stage in archs.B0_ARCH_DEF], 1.0,
                                               depth_trunc="round")
    assert (b0["stem_size"], b0["num_features"]) == (archs.B0_STEM, archs.B0_HEAD)
    for name, spec in archs.EFFNET_SPECS.items():  # the generator's arch, its depth multiplier applied
        kwargs = get_baseline(name).model_kwargs(Cube())
        assert kwargs["block_args"] == decode_arch_def([list(stage) for stage in spec.arch_def],
                                                       spec.depth_multiplier, fix_first_last=spec.fix_first_last)

    from timm.models.resnet import BasicBlock, Bottleneck

    for name, spec in archs.RESNET_SPECS.items():
        kwargs = get_baseline(name).model_kwargs(Cube())
        assert (kwargs["block"], kwargs["layers"], kwargs["channels"]) == (
            Bottleneck if spec.block == "bottleneck" else BasicBlock, spec.layers, archs.RESNET50_PLANES)
        assert kwargs["block"].expansion == cost.resnet_expansion(spec)
    assert count_params(timm.create_model("resnet50")) == cube_cost_analytic("resnet50", Cube()).params

    from timm.models.ghostnet import _SE_LAYER

    ghost = get_baseline("ghostnet_a").model_kwargs(Cube())
    assert (ghost["stem_size"], ghost["head_size"]) == (archs.GHOSTNET_A_STEM, archs.GHOSTNET_A_HEAD)
    assert [block[2] for stage in ghost["cfgs"] for block in stage] == [
        row[2] for row in archs.GHOSTNET_A_ROWS for _ in range(row[5])]
    assert _SE_LAYER.keywords["rd_round_fn"].keywords["divisor"] == archs.GHOST_SE_DIVISOR


def test_the_builders_normalise_as_the_weights_they_start_from():
    for name, b in BASELINES.items():  # each family as timm's own model of that name was trained
        reference = "efficientnet_b0" if name.startswith("efficientnet_b0") else name
        if name == "ghostnet_a":  # no timm model: ImageNet's mean and std
            mean_std = (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        else:
            timm_cfg = timm.models.get_pretrained_cfg(reference)
            mean_std = (tuple(timm_cfg.mean), tuple(timm_cfg.std))
        cfg = b.pretrained_cfg(Cube())
        assert (tuple(cfg["mean"]), tuple(cfg["std"])) == mean_std, name
    for name in timm_tinynet.MODEL_NAMES:
        cfg = timm.models.get_pretrained_cfg(name).to_dict()
        assert (tuple(cfg["mean"]), tuple(cfg["std"])) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    assert (base.IMAGENET_CFG["mean"], base.IMAGENET_CFG["std"]) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)


def test_rounding_helpers_equal_timm():
    rng = random.Random(0)
    for _ in range(3000):
        v, mult = rng.uniform(0.5, 3000), rng.uniform(0.01, 3)
        for divisor in (4, 8):
            assert cost.make_divisible(v, divisor) == timm_make_divisible(v, divisor)
        chs = rng.randrange(1, 2000)
        assert cost.round_channels(chs, mult, 8) == timm_round_channels(chs, mult, 8)
    for repeats in range(1, 8):  # a single-definition stage scaled by timm's decoder, depth rounded to nearest
        for d in (0.01, 0.15, 0.25, 0.5, 0.75, 1.25, 1.5, 2.5, *(rng.uniform(0.01, 3) for _ in range(20))):
            decoded = decode_arch_def([[f"ir_r{repeats}_k3_s1_e6_c16"]], d, depth_trunc="round")
            assert cost.round_repeats(repeats, d) == len(decoded[0])


def test_scale_stage_depth_equals_timms():
    from timm.models._efficientnet_builder import _scale_stage_depth

    rng = random.Random(0)
    for _ in range(2000):
        repeats = [rng.randrange(1, 6) for _ in range(rng.randrange(1, 5))]
        multiplier, trunc = rng.uniform(0.01, 3), rng.choice(("round", "ceil"))
        scaled = _scale_stage_depth(list(range(len(repeats))), repeats, multiplier, trunc)  # args as markers
        assert cost.scale_stage_depth(repeats, multiplier, trunc) == tuple(scaled.count(i) for i in range(len(repeats)))


@pytest.mark.parametrize("name", sorted(archs.EFFNET_SPECS))
def test_decoded_blocks_equal_timm_decode_arch_def(name):
    spec = archs.EFFNET_SPECS[name]
    decoded = decode_arch_def([list(stage) for stage in spec.arch_def], spec.depth_multiplier,
                              fix_first_last=spec.fix_first_last)
    for stage, blocks in zip(cost.base_stages(spec), decoded):
        flat = [block for block in stage for _ in range(block.repeats)]
        assert len(flat) == len(blocks)
        for ours, theirs in zip(flat, blocks):
            assert (ours.block, ours.kernel, ours.stride, ours.out_chs) == (
                theirs["block_type"], theirs.get("dw_kernel_size", theirs.get("kernel_size")), theirs["stride"],
                theirs["out_chs"])
            assert ours.se_ratio == (theirs.get("se_ratio") or 0.0)
            assert ours.exp_ratio == theirs.get("exp_ratio", 1.0)


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_architecture_equals_the_baselines_definition(baseline):
    b = get_baseline(baseline)
    for cube in random_cubes(1, cube_count(baseline, META_CUBES, 50)) + [Cube(), Cube(0.2, 0.1, 0.1), Cube(2, 3, 3)]:
        arch = cost.architecture(baseline, cube)
        if baseline in archs.EFFNET_SPECS:
            assert (arch.stem, arch.head) == (b.stem_size(cube), b.head_size(cube))
            assert [sum(block.repeats for block in stage) for stage in arch.stages] == b.stage_repeats(cube)
            assert [stage[-1].out_chs for stage in arch.stages] == b.stage_channels(cube)
            kwargs = b.model_kwargs(cube)
            assert [len(stage) for stage in kwargs["block_args"]] == b.stage_repeats(cube)
        elif baseline in archs.RESNET_SPECS:
            assert arch.repeats == tuple(b.stage_repeats(cube)) and list(arch.planes) == b.planes(cube)
        else:
            kwargs = b.model_kwargs(cube)
            assert [[list(block) for block in stage] for stage in arch.stages] == kwargs["cfgs"]
            assert (arch.stem, arch.final, arch.head) == (
                kwargs["stem_size"], kwargs["final_size"], kwargs["head_size"])


# --- exactness against fvcore ---------------------------------------------------------------------------------

def test_registered_model_table_is_complete():
    assert set(REGISTERED) == set(timm_tinynet.MODEL_NAMES)


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_registered_models_equal_fvcore_and_the_meta_forward(name):
    baseline, cube = REGISTERED[name]
    model = timm.create_model(name)
    size = model.pretrained_cfg["input_size"][-1]
    want = (count_flops(model), count_params(model), fvcore_activations(model, size))
    got = cube_cost_analytic(baseline, cube)
    assert got.img_size == size
    assert (got.flops, got.params, got.activations) == want
    built = Built(lambda: timm.create_model(name))  # the reference of the many-cube tests below
    assert (*built.run(size), built.activations) == want
    assert_layers_match(baseline, cube, built, size)


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_baselines_at_the_unit_cube_equal_fvcore(baseline):
    model = build(baseline, Cube())
    got = cube_cost_analytic(baseline, Cube())
    assert (got.flops, got.params, got.activations) == (
        count_flops(model), count_params(model), fvcore_activations(model, got.img_size))
    if baseline.startswith("efficientnet_b0"):  # both styles are EfficientNet-B0 at Cube()
        assert got.flops == 385_814_752 and got.params == count_params(timm.create_model("efficientnet_b0"))
    elif baseline != "ghostnet_a":  # timm's own model of that name
        assert (got.flops, got.params) == (count_flops(timm.create_model(baseline), (3, got.img_size, got.img_size)),
                                           count_params(model))


@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_random_cubes_equal_fvcore(baseline):
    mismatches = []
    for cube in random_cubes(2, cube_count(baseline, FVCORE_CUBES, OTHER_FVCORE_CUBES)):
        got = cube_cost_analytic(baseline, cube)
        model = build(baseline, cube)
        want = (count_flops(model, (3, got.img_size, got.img_size)), count_params(model))
        if (got.flops, got.params) != want:
            mismatches.append((cube, (got.flops, got.params), want))
    assert not mismatches, mismatches


def assert_the_cost_is_the_built_models(baseline: str, cube: Cube, num_classes: int = 1000) -> None:
    """FLOPs, params and activations equal the meta-device forward's, and so does every layer."""
    got = cube_cost_analytic(baseline, cube, num_classes=num_classes)
    built = Built.baseline(baseline, cube, num_classes=num_classes)
    assert (got.flops, got.params) == built.run(got.img_size), cube
    assert got.activations == built.activations, cube
    assert_layers_match(baseline, cube, built, got.img_size, num_classes)


# --- many cubes against the meta-device forward, module by module --------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_random_cubes_equal_the_meta_forward_layer_by_layer(baseline):
    for cube in random_cubes(3, cube_count(baseline, META_CUBES, OTHER_META_CUBES)):
        assert_the_cost_is_the_built_models(baseline, cube)


@pytest.mark.parametrize("baseline", REPRESENTATIVE)
def test_edge_cubes_layer_by_layer(baseline):
    # thinnest/shallowest and widest/deepest nets, odd sizes, the ResNet width whose stage 1 needs no downsample
    cubes = [Cube(0.15, 0.15, 0.15), Cube(1.5, 1.5, 1.5), Cube(0.5, 0.01, 0.01), Cube(0.77, 1.0, 0.25),
             Cube(1.0, 0.3, 2.0), Cube(0.3, 2.0, 0.3)]
    for cube in cubes:
        assert_the_cost_is_the_built_models(baseline, cube)


@pytest.mark.parametrize("baseline", REPRESENTATIVE)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_num_classes(baseline, num_classes):
    assert_the_cost_is_the_built_models(baseline, Cube(0.6, 0.7, 0.8), num_classes)


@pytest.mark.parametrize("baseline", REPRESENTATIVE)
def test_explicit_img_size_any_parity(baseline):
    cube = Cube(1.0, 0.9, 0.7)
    built = Built.baseline(baseline, cube)
    for size in (1, 7, 32, 33, 63, 97, 128, 131, 225, 301):  # any size PyTorch accepts
        got = cube_cost_analytic(baseline, cube, img_size=size)
        assert got.img_size == size
        assert (got.flops, got.params, got.activations) == (*built.run(size), built.activations), size


# --- API -------------------------------------------------------------------------------------------------------

def test_default_img_size_is_the_baselines():
    for name, b in BASELINES.items():
        for cube in random_cubes(4, 50):
            assert cost.default_img_size(name, cube) == b.img_size(cube)
        with pytest.raises(ValueError, match="minimum is 32px"):
            cube_cost_analytic(name, Cube(r=0.1))
        assert cube_cost_analytic(b, Cube(r=0.1), img_size=64).img_size == 64  # a Baseline object works too


def test_cost_is_a_frozen_record_and_cached():
    got = cube_cost_analytic("efficientnet_b0", Cube(0.5, 0.5, 0.5))
    assert isinstance(got, Cost) and dataclasses.asdict(got).keys() == {"flops", "params", "activations", "img_size"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.flops = 0
    assert cube_cost_analytic("efficientnet_b0", Cube(0.5, 0.5, 0.5)) is got
    # same architecture (w rounds to the same channels), same input size: one cache entry
    assert cube_cost_analytic("efficientnet_b0", Cube(0.5, 0.5, 0.5001)) is got


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown baseline"):
        cube_cost_analytic("vgg16", Cube())
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="num_classes"):
            cube_cost_analytic("resnet50", Cube(), num_classes=bad)
    for bad in (0, -5, 64.0):
        with pytest.raises(ValueError, match="img_size"):
            cube_cost_analytic("resnet50", Cube(), img_size=bad)


def test_module_imports_neither_torch_nor_timm_nor_numpy():
    code = ("import sys; from tinynet_core.cost import cube_cost_analytic; from tinynet_core.cube import Cube; "
            "assert cube_cost_analytic('efficientnet_b0', Cube()).flops == 385_814_752; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'numpy')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
