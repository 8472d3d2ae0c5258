"""What every space class shares about its options: a size given as channels and layers (each
space names its depth its own way), the options a search config sets, and the check of the
supernet's mixing."""

from __future__ import annotations

from typing import Any

PATH_MIXINGS = ("softmax", "path")  # the NB201 and chain supernets: all ops mixed, or one given path


def check_mixing(mixing: str, valid: tuple[str, ...]) -> None:
    if mixing not in valid:
        raise ValueError(f"unknown mixing {mixing!r}; valid: {', '.join(valid)}")


class SpaceOptions:
    """The option class methods of a space (mixed into each space's dataclass)."""

    depth_option = "layers"  # the option a depth given as `layers` sets
    tasks: tuple[str, ...] = ("image_classification",)  # the tasks (`jaxnas.tasks`) its networks learn
    counting_options: dict[str, Any] = {}  # options under which the supernet's params and madds are counted

    @classmethod
    def sized(cls, channels: int | None = None, layers: int | None = None) -> dict[str, Any]:
        """The options of a space of `channels` initial channels and depth `layers` (those given)."""
        return {k: v for k, v in (("channels", channels), (cls.depth_option, layers)) if v is not None}

    @classmethod
    def config_options(cls, config: Any) -> dict[str, Any]:
        """The options a search config sets."""
        return cls.sized(config.channels, config.layers)
