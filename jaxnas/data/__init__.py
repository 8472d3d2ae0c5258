"""Data: TFDS pipelines (any TFDS image-classification set by name) and the offline digits set."""
