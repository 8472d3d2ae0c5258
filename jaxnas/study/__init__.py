"""Gradient-approximation studies (python -m jaxnas.study)."""
