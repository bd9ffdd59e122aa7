"""Training on timm's components: the paper's recipes, checkpoints, the loop."""
from tinynet_core.guard import GuardError
from ..loading import ModelLoadError
from .checkpoint import CheckpointError, load_checkpoint, model_state
from .data import DataError
from .errors import TrainingError
from .recipes import RECIPES, apply_recipe, default_recipe_for, scaled_lr
from .session import Session, open_session, run

# what a training entrypoint reports as a one-line error (bad data, model, checkpoint, options or files)
TrainingFailure = (TrainingError, DataError, CheckpointError, ModelLoadError, GuardError)

__all__ = ["CheckpointError", "DataError", "RECIPES", "Session", "TrainingError", "TrainingFailure", "apply_recipe",
           "default_recipe_for", "load_checkpoint", "model_state", "open_session", "run", "scaled_lr"]
