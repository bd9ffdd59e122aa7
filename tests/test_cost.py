"""The analytic cost model (timm_tinynet.cost) against the networks timm builds.

* fvcore (``count_flops``) and the built model's ``count_params`` on every registered model, every baseline
  at Cube() and 20 seeded random cubes per baseline; fvcore's activation count on the registered models;
* ``count_flops_meta`` (tested equal to fvcore in test_flops.py) on 200 seeded random cubes per baseline,
  with module-by-module checks of names, shapes, parameters and conv/linear output elements (forward hooks).
"""
from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import List, Tuple

import pytest
import timm
import torch
import torch.nn as nn
from timm.layers import make_divisible as timm_make_divisible
from timm.models._efficientnet_builder import round_channels as timm_round_channels

import timm_tinynet
from timm_tinynet import Cube, count_flops, count_params, cost
from timm_tinynet.baselines import BASELINES, base, efficientnet, get_baseline, ghostnet, resnet
from timm_tinynet.cost import Cost, cube_cost_analytic
from timm_tinynet.flops import MetaCounter
from timm_tinynet.models import PAPER_MODELS

BASELINE_NAMES = ("efficientnet_b0", "efficientnet_b0_compound", "resnet50", "ghostnet_a")
GENERIC_MODELS = {"tinynet": "efficientnet_b0", "resnet50_tiny": "resnet50", "ghostnet_tiny": "ghostnet_a"}
REGISTERED = {**{name: (b.name, cube) for name, (b, cube) in PAPER_MODELS.items()},
              **{name: (baseline, Cube()) for name, baseline in GENERIC_MODELS.items()}}
RANDOM_RANGE = (0.15, 1.5)  # r >= 0.15 keeps every baseline's input >= 32 px
FVCORE_CUBES = 20
META_CUBES = 200


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # fvcore runs real forwards; on a shared 2-core machine intra-op threads spin against each other (10-30x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    """A model built on the meta device: fvcore-formula FLOPs and params (MetaCounter) plus, from forward hooks,
    every conv/linear layer as the ``Layer`` fields and its output elements; per-module parameter counts."""

    def __init__(self, baseline: str, cube: Cube, **kwargs) -> None:
        self.counter = MetaCounter(lambda: build(baseline, cube, **kwargs))
        self.layers: List[Tuple] = []
        self.activations = 0
        for name, module in self.counter.model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.register_forward_hook(self._hook(name))
        self.module_params = {name: sum(p.numel() for p in m.parameters(recurse=False))
                              for name, m in self.counter.model.named_modules()
                              if any(True for _ in m.parameters(recurse=False))}

    def _hook(self, name: str):
        def hook(module, args, output):
            self.activations += output.numel()
            if isinstance(module, nn.Conv2d):
                assert module.kernel_size[0] == module.kernel_size[1] and output.shape[2] == output.shape[3]
                self.layers.append((name, "conv", module.in_channels, module.out_channels, module.kernel_size[0],
                                    module.stride[0], module.groups, module.bias is not None, output.shape[2]))
            else:
                self.layers.append((name, "linear", module.in_features, module.out_features, 1, 1, 1,
                                    module.bias is not None, 1))
        return hook

    def run(self, size: int) -> Tuple[int, int]:
        self.layers, self.activations = [], 0
        return self.counter.count((3, size, size)), self.counter.params


def assert_layers_match(baseline: str, cube: Cube, built: Built, size: int, num_classes: int = 1000) -> None:
    analytic = list(cost.layers(baseline, cube, num_classes=num_classes, img_size=size))
    assert [tuple(layer) for layer in analytic if layer.kind != "bn"] == built.layers  # forward order
    assert {layer.name: layer.params for layer in analytic} == built.module_params


# --- one architecture definition for the builders and the cost model ---------------------------------------

def test_the_baselines_and_the_cost_model_read_the_same_definitions():
    assert efficientnet.B0_ARCH_DEF is cost.B0_ARCH_DEF and ghostnet.GHOSTNET_A_ROWS is cost.GHOSTNET_A_ROWS
    assert resnet.RESNET50_LAYERS is cost.RESNET50_LAYERS and resnet.RESNET50_PLANES is cost.RESNET50_PLANES
    assert cost.RESNET_EXPANSION == resnet.Bottleneck.expansion and cost.MIN_IMG_SIZE == base.MIN_IMG_SIZE
    assert set(cost.BASELINE_NAMES) == set(BASELINES)
    for name in BASELINES:
        assert cost._FAMILIES[name].base_img_size == get_baseline(name).base_img_size


def test_rounding_helpers_equal_timm_and_the_baselines():
    rng = random.Random(0)
    for _ in range(3000):
        v, mult = rng.uniform(0.5, 3000), rng.uniform(0.01, 3)
        for divisor in (4, 8):
            assert cost.make_divisible(v, divisor) == timm_make_divisible(v, divisor)
        chs = rng.randrange(1, 2000)
        assert cost.round_channels(chs, mult, 8) == timm_round_channels(chs, mult, 8)
        repeats = rng.randrange(1, 10)
        assert cost.round_repeats(repeats, mult) == base.round_repeats(repeats, mult)
    for repeats in range(1, 8):
        for d in (0.01, 0.15, 0.25, 0.5, 0.75, 1.25, 1.5, 2.5):
            assert cost.round_repeats(repeats, d) == base.round_repeats(repeats, d)


def test_decoded_b0_blocks_equal_timm_decode_arch_def():
    from timm.models._efficientnet_builder import decode_arch_def

    decoded = decode_arch_def([list(stage) for stage in cost.B0_ARCH_DEF], 1.0, depth_trunc="round")
    for stage, blocks in zip(cost.B0_STAGES, decoded):
        block = blocks[0]
        assert (stage.block, stage.repeats, stage.kernel, stage.stride, stage.out_chs, stage.se_ratio) == (
            block["block_type"], len(blocks), block["dw_kernel_size"], block["stride"], block["out_chs"],
            block["se_ratio"])
        assert stage.exp_ratio == block.get("exp_ratio", 1.0) and not block["noskip"]


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_architecture_equals_the_baselines_definition(baseline):
    b = get_baseline(baseline)
    for cube in random_cubes(1, META_CUBES) + [Cube(), Cube(0.2, 0.1, 0.1), Cube(2, 3, 3)]:
        arch = cost.architecture(baseline, cube)
        if baseline.startswith("efficientnet"):
            assert (arch.stem, arch.head) == (b.stem_size(cube), b.head_size(cube))
            assert [s.repeats for s in arch.stages] == b.stage_repeats(cube)
            assert [s.out_chs for s in arch.stages] == b.stage_channels(cube)
        elif baseline == "resnet50":
            assert arch.repeats == tuple(b.stage_repeats(cube)) and list(arch.planes) == b.planes(cube)
        else:
            kwargs = b.model_kwargs(cube)
            assert [[tuple(block) for block in stage] for stage in arch.stages] == kwargs["cfgs"]
            assert (arch.stem, arch.final, arch.head) == (
                kwargs["stem_size"], kwargs["final_size"], kwargs["head_size"])


# --- exactness against fvcore ---------------------------------------------------------------------------------

def test_registered_model_table_is_complete():
    assert set(REGISTERED) == set(timm_tinynet.MODEL_NAMES)


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_registered_models_equal_fvcore(name):
    baseline, cube = REGISTERED[name]
    model = timm.create_model(name)
    size = model.pretrained_cfg["input_size"][-1]
    got = cube_cost_analytic(baseline, cube)
    assert got.img_size == size
    assert (got.flops, got.params) == (count_flops(model), count_params(model))
    assert got.activations == fvcore_activations(model, size)


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_baselines_at_the_unit_cube_equal_fvcore(baseline):
    model = build(baseline, Cube())
    got = cube_cost_analytic(baseline, Cube())
    assert (got.flops, got.params, got.activations) == (
        count_flops(model), count_params(model), fvcore_activations(model, got.img_size))
    if baseline.startswith("efficientnet"):  # both styles are EfficientNet-B0 at Cube()
        assert got.flops == 385_814_752 and got.params == count_params(timm.create_model("efficientnet_b0"))


@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_random_cubes_equal_fvcore(baseline):
    mismatches = []
    for cube in random_cubes(2, FVCORE_CUBES):
        got = cube_cost_analytic(baseline, cube)
        model = build(baseline, cube)
        want = (count_flops(model, (3, got.img_size, got.img_size)), count_params(model))
        if (got.flops, got.params) != want:
            mismatches.append((cube, (got.flops, got.params), want))
    assert not mismatches, mismatches


# --- many cubes against the meta-device count, module by module --------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_random_cubes_equal_meta_count_layer_by_layer(baseline):
    for cube in random_cubes(3, META_CUBES):
        got = cube_cost_analytic(baseline, cube)
        built = Built(baseline, cube)
        assert (got.flops, got.params) == built.run(got.img_size), cube
        assert got.activations == built.activations, cube
        assert_layers_match(baseline, cube, built, got.img_size)


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_edge_cubes_layer_by_layer(baseline):
    # thinnest/shallowest and widest/deepest nets, odd sizes, the ResNet width whose stage 1 needs no downsample
    cubes = [Cube(0.15, 0.15, 0.15), Cube(1.5, 1.5, 1.5), Cube(0.5, 0.01, 0.01), Cube(0.77, 1.0, 0.25),
             Cube(1.0, 0.3, 2.0), Cube(0.3, 2.0, 0.3)]
    for cube in cubes:
        got = cube_cost_analytic(baseline, cube)
        built = Built(baseline, cube)
        assert (got.flops, got.params) == built.run(got.img_size), cube
        assert got.activations == built.activations, cube
        assert_layers_match(baseline, cube, built, got.img_size)


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_num_classes(baseline, num_classes):
    cube = Cube(0.6, 0.7, 0.8)
    got = cube_cost_analytic(baseline, cube, num_classes=num_classes)
    built = Built(baseline, cube, num_classes=num_classes)
    assert (got.flops, got.params, got.activations) == (*built.run(got.img_size), built.activations)
    assert_layers_match(baseline, cube, built, got.img_size, num_classes)


@pytest.mark.parametrize("baseline", BASELINE_NAMES)
def test_explicit_img_size_any_parity(baseline):
    cube = Cube(1.0, 0.9, 0.7)
    built = Built(baseline, cube)
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


def test_module_imports_neither_torch_nor_timm():
    # load cube.py, archs.py and cost.py under a bare package (timm_tinynet/__init__ imports timm to register models)
    package = Path(cost.__file__).parent
    code = textwrap.dedent(f"""
        import importlib.util, sys, types
        pkg = types.ModuleType("timm_tinynet"); pkg.__path__ = [{str(package)!r}]
        sys.modules["timm_tinynet"] = pkg
        for name in ("cube", "archs", "cost"):
            path = {str(package)!r} + "/" + name + ".py"
            spec = importlib.util.spec_from_file_location("timm_tinynet." + name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        from timm_tinynet.cost import cube_cost_analytic
        from timm_tinynet.cube import Cube
        assert cube_cost_analytic("efficientnet_b0", Cube()).flops == 385_814_752
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "numpy"))
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
