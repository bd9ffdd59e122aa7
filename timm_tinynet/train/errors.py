"""The error a training run reports in one line (exit code 2), without a traceback."""


class TrainingError(RuntimeError):
    """A problem with the run's inputs (data, model, checkpoint, options), reported without a traceback."""
