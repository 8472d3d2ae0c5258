"""Bilevel search: hypergradient estimators and (next) the search step, loop and CLI."""
