"""``exchange chaos``: faults under steady load on a split deployment, checked from the database
and the object store, with a privacy sweep of every output (issue 19)."""

from exchange_bench.chaos.report import markdown
from exchange_bench.chaos.run import ChaosConfig, run_chaos

__all__ = ("ChaosConfig", "markdown", "run_chaos")
