"""TinyNet for timm: the model Rubik's cube (Han et al., NeurIPS 2020).

Importing this package registers the paper's models with timm (``timm.create_model('tinynet', c=0.25)``).
"""
__version__ = "0.1.0"

__all__ = ["BASELINES", "Cube", "Inheritance", "MODEL_NAMES", "NoPretrainedWeightsError", "Shrunk", "TargetError",
           "UnreachableTargetError", "count_flops", "count_params", "inherit", "shrink"]

from tinynet_core.cube import Cube
from tinynet_core.solve import Shrunk, UnreachableTargetError
from tinynet_core.targets import TargetError
from .budgets import shrink
from .flops import count_flops, count_params
from . import models  # registers the models with timm
from .models import MODEL_NAMES, NoPretrainedWeightsError
from .inherit import Inheritance, inherit
from .baselines import BASELINES as _TIMM_BASELINES

BASELINES = tuple(_TIMM_BASELINES)  # what timm.create_model("tinynet", baseline=...) twists
