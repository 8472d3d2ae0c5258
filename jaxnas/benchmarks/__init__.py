"""Tabular NAS benchmarks shipped with jaxnas: ground truth for a searched architecture without
training it (`nb201`: NAS-Bench-201's test accuracy of all 15,625 cells)."""
