import os

# Several tests compare float32 fast paths with float64 references; x64 must be on before use.
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
