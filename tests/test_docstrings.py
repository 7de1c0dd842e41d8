"""Docstrings of the public API: every parameter documented with its true default, and no
timing numbers (those live in the docs' benchmark pages, with a date)."""

import inspect
import re

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

import clusterlab

PUBLIC = [getattr(clusterlab, name) for name in clusterlab.__all__]
ESTIMATORS = [obj for obj in PUBLIC if inspect.isclass(obj) and hasattr(obj, "get_params")]
FUNCTIONS = [obj for obj in PUBLIC if inspect.isfunction(obj)]

# "default=0.05", "default=None", "default='auto'", "default=\"auto\"", "default=(2, 3)"
_DEFAULT = re.compile(r"default\s*=\s*(.+?)\s*$")
# a duration ("0.3 s", "12 seconds", "40 ms") or a speed ratio ("2.5x faster")
_TIMING = re.compile(
    r"\b\d+(\.\d+)?\s*(s|ms|sec|secs|seconds|minutes)\b"
    r"|\b\d+(\.\d+)?\s*[x\u00d7]\s+(faster|slower)"
)


def _documented(obj):
    doc = (
        ClassDoc(obj, config={"show_class_members": False})
        if inspect.isclass(obj)
        else (FunctionDoc(obj))
    )
    documented = {}
    for param in doc["Parameters"]:
        names = [name.strip() for name in param.name.split(",")]
        # "Z, adjacency, tau : As in :func:`pamc_loss`." documents its defaults there
        deferred = len(names) > 1 and " ".join(param.desc).startswith("As in ")
        documented.update(dict.fromkeys(names, "deferred" if deferred else param.type))
    return documented


def _signature(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(target).parameters.values()
    return [p for p in params if p.name != "self" and p.kind is not p.VAR_KEYWORD]


def _default_matches(text, value):
    """Whether the docstring's default text names ``value``."""
    text = text.strip().strip("`")
    if text in {repr(value), str(value)}:
        return True
    if isinstance(value, str):
        return text.strip("\"'") == value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text.replace("_", "")) == float(value)
        except ValueError:
            return False
    return False


@pytest.mark.parametrize("obj", ESTIMATORS + FUNCTIONS, ids=lambda obj: obj.__name__)
def test_every_parameter_is_documented_with_its_default(obj):
    documented = _documented(obj)
    problems = []
    for param in _signature(obj):
        if param.name not in documented:
            problems.append(f"{param.name}: not documented")
            continue
        if param.default is param.empty or documented[param.name] == "deferred":
            continue
        match = _DEFAULT.search(documented[param.name])
        if match is None:
            problems.append(f"{param.name}: no 'default=' in {documented[param.name]!r}")
        elif not _default_matches(match.group(1), param.default):
            problems.append(
                f"{param.name}: documented default {match.group(1)!r}, signature {param.default!r}"
            )
    assert not problems, f"{obj.__name__}: " + "; ".join(problems)


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda obj: getattr(obj, "__name__", str(obj)))
def test_no_timing_numbers_in_docstrings(obj):
    texts = [inspect.getdoc(obj) or ""]
    if inspect.isclass(obj):
        texts += [
            inspect.getdoc(member) or ""
            for _, member in inspect.getmembers(obj)
            if inspect.isfunction(member) and member.__module__.startswith("clusterlab")
        ]
    found = [m.group(0) for text in texts for m in _TIMING.finditer(text)]
    assert not found, f"timing numbers in the docstrings of {obj.__name__}: {found}"
