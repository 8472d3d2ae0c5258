"""The shape the library keeps (issue 26): spaces and strategies answer for themselves, functions
take a handful of parameters, and the README stays a guide a user reads in minutes."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "jaxnas")
# The hypergradient estimators share one signature on purpose: (loss_fn, w, α, inner_opt,
# inner_state, train_batches, val_batch, *, xi, axis_name, **their options bound by get_estimator).
ESTIMATORS = {"first_order", "darts_fd", "unrolled", "implicit"}


def _sources():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    yield os.path.relpath(path, PACKAGE), f.read()


def test_nothing_outside_spaces_and_strategies_asks_which_one_it_is():
    pattern = re.compile(r'space\.name ==|\.sampled|== "gdas"')
    found = [f"{path}:{n}" for path, text in _sources() if not path.startswith(("spaces/", "search/strategies/"))
             for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_nothing_outside_tasks_and_spaces_asks_which_task_it_is():
    """Issue 36: the engine asks its task (`jaxnas.tasks`) for data, loss, carried state and metrics."""
    pattern = re.compile(r'task(\.name)? ==|== "(language_model|image_classification)"|\.task\.name ==')
    found = [f"{path}:{n}" for path, text in _sources() if not path.startswith(("tasks/", "spaces/"))
             for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_no_function_takes_more_than_eight_parameters():
    too_many = []
    for path, text in _sources():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in ESTIMATORS:
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(names) > 8:
                    too_many.append(f"{path}:{node.lineno} {node.name} ({len(names)})")
    assert not too_many, too_many


def test_the_readme_is_a_short_guide_without_measurement_logs():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    assert len(text.splitlines()) <= 300
    hashes = [h for h in re.findall(r"\b[0-9a-f]{7,40}\b", text) if re.search(r"\d", h) and re.search(r"[a-f]", h)]
    assert not hashes, f"the README names commits: {hashes}"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "the README dates a measurement"


# Issue 35: one-way layering (ARCHITECTURE.md). A function-local import is an import too.
LOWER_NAMES_UPPER = {  # package -> the packages above it, which it must not name
    "vocabulary/": ("jaxnas.",),
    "nn/": ("jaxnas.spaces", "jaxnas.tasks", "jaxnas.search", "jaxnas.train", "jaxnas.study", "jaxnas.compare",
            "jaxnas.driver"),
    "spaces/": ("jaxnas.tasks", "jaxnas.search", "jaxnas.train", "jaxnas.study", "jaxnas.compare", "jaxnas.driver"),
    "tasks/": ("jaxnas.search", "jaxnas.train", "jaxnas.study", "jaxnas.compare", "jaxnas.driver"),
    "benchmarks/": ("jaxnas.spaces", "jaxnas.search", "jaxnas.train", "jaxnas.study", "jaxnas.compare"),
    "data/": ("jaxnas.spaces", "jaxnas.nn", "jaxnas.search", "jaxnas.train", "jaxnas.study", "jaxnas.compare"),
}


def _imported_modules(tree) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_imports_flow_downwards_only():
    upward = [f"{path}: {module}" for path, text in _sources() for lower, upper in LOWER_NAMES_UPPER.items()
              if path.startswith(lower) for module in _imported_modules(ast.parse(text))
              if module.startswith(upper)]
    assert not upward, upward


def test_the_issues_greps_find_nothing():
    import subprocess

    for pattern, folder in ((r"^ *(from|import) jaxnas\.spaces", "jaxnas/nn"),
                            (r"^ *(from|import) jaxnas\.search", "jaxnas/spaces")):
        r = subprocess.run(["git", "grep", "-E", pattern, folder], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 1 and not r.stdout, r.stdout  # git grep: 1 = no match


def test_a_search_run_resolves_its_strategy_by_name_once():
    """Names from the config become objects at the top (`space_and_strategy`) and are passed down."""
    with open(os.path.join(PACKAGE, "search", "loop.py")) as f:
        assert f.read().count("get_strategy(") == 0
