"""The linkage evaluation end to end (``exchange eval-linkage``, ``make eval-linkage``): Febrl4
sent through the running service, scored pairwise from what its query API answers."""

from exchange_bench.linkage_eval.report import markdown
from exchange_bench.linkage_eval.run import EvalConfig, run_eval

__all__ = ("EvalConfig", "markdown", "run_eval")
