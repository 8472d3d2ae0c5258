"""The names every layer shares, at the bottom of the library: op names, edge lists and
architecture types of each search space (plain data; nothing here imports the rest of jaxnas)."""
