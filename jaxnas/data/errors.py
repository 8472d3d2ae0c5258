"""The error every data path raises for bad or unavailable data: the CLIs print it as one line."""


class DataError(ValueError):
    """A data set that is unknown, not an image classification set, or not available."""
