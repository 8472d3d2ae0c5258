"""jaxnas: gradient-based neural architecture search in JAX."""

from jaxnas.xla_workarounds import apply_xla_workarounds

__version__ = "0.1.0"

apply_xla_workarounds()  # before any backend exists: XLA reads its flags once
