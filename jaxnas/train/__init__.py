"""Train a found architecture from scratch (python -m jaxnas.train)."""
