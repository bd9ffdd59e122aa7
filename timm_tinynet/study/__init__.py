"""The paper's random-sampling study (§3.2, §4.2): sample twisted models, train them, keep the Pareto frontier,
measure Spearman correlations, fit the tiny formula's GPs."""


class StudyError(ValueError):
    """A plan, results table or option the study cannot use, with the reason."""
