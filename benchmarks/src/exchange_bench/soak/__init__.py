"""``exchange soak``: steady load at half the measured capacity for a long while, every role in
one server process, and whether what the process holds stays flat."""

from exchange_bench.soak.run import SoakConfig, run_soak

__all__ = ("SoakConfig", "run_soak")
