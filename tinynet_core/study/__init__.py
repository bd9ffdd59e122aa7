"""The torch-free stages of the paper's random-sampling study: drawing the plan of twisted models (``sample``) and
the plan/results tables (``tables``). Training, the Pareto analysis and the figures are in ``timm_tinynet.study``."""


class StudyError(ValueError):
    """A plan, results table or option the study cannot use, with the reason."""
