"""The paper's random-sampling study (§3.2, §4.2): sample twisted models, train them, keep the Pareto frontier,
measure Spearman correlations, fit the tiny formula's GPs. Sampling and the tables are torch-free and live in
``tinynet_core.study``; this package trains and analyses."""
from tinynet_core.study import StudyError

__all__ = ["StudyError"]
