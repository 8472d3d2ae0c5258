"""What is learned and how it is scored: each task supplies its data streams, loss, the state
carried from step to step, and its metrics; the search engine asks it and never branches on it.

- `image_classification` (`tasks.image`): the image spaces' task, cross-entropy and accuracy.
- `language_model` (`tasks.language`): next-word prediction on token streams, perplexity.
"""

from __future__ import annotations

from typing import Any

from jaxnas.errors import ConfigError
from jaxnas.tasks.image import ImageClassification
from jaxnas.tasks.language import OPTIONS as LANGUAGE_OPTIONS
from jaxnas.tasks.language import LanguageModel

TASK_CLASSES = {"image_classification": ImageClassification, "language_model": LanguageModel}
TASKS = tuple(TASK_CLASSES)
# The config's `task` block: each task's options with their defaults.
TASK_OPTIONS: dict[str, dict[str, Any]] = {"image_classification": {}, "language_model": dict(LANGUAGE_OPTIONS)}


def get_task(block: Any) -> Any:
    """The task of a config's complete `task` block ({name, ...its options})."""
    options = dict(block)
    name = options.pop("name")
    if name not in TASK_CLASSES:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASK_CLASSES[name](**options)
