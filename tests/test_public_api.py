"""The public API as IDEs, type checkers and documentation tools see it.

Names are defined statically (no generated globals), public signatures carry no private
parameters, every public function has resolvable type hints and a numpydoc docstring, the
package ships ``py.typed``, and the fixed-rank aliases behave as the N-D call they stand for.
"""

import ast
import importlib.resources
import inspect
import re
import typing
from pathlib import Path

import numpy as np
import pytest

import numbapool as nbp
from numbapool import _checks, _docstrings, spatial

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "numbapool"

ND = ["max_pool", "min_pool", "avg_pool", "lp_pool", "adaptive_max_pool", "adaptive_avg_pool",
      "global_max_pool", "global_avg_pool", "gem_pool"]
ALIASES = [(name, rank) for name in ND for rank in (1, 2, 3)]
FUNCTIONS = [name for name in nbp.__all__ if callable(getattr(nbp, name))]


def _module_level_names(path):
    """Names bound at module level by a def, an assignment or an explicit import."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
    return tree, names


def _literal_all(tree):
    """The value of the module's ``__all__ = [...]``, which must be a literal."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "__all__"):
            return ast.literal_eval(node.value)
    raise AssertionError("no __all__ assignment")


# --------------------------------------------------------------------------- static names


def test_every_public_name_is_defined_statically():
    spatial_tree, spatial_names = _module_level_names(PACKAGE / "spatial.py")
    init_tree, init_names = _module_level_names(PACKAGE / "__init__.py")
    assert _literal_all(spatial_tree) == spatial.__all__
    assert sorted(_literal_all(init_tree) + spatial.__all__) == sorted(nbp.__all__)
    assert len(set(nbp.__all__)) == len(nbp.__all__)
    missing = [n for n in nbp.__all__ if n not in spatial_names | init_names]
    assert not missing, f"not defined by a statement a static tool can read: {missing}"
    assert set(spatial.__all__) <= spatial_names
    assert {f"{name}{rank}d" for name, rank in ALIASES} <= set(spatial.__all__)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_signatures_have_no_private_parameters(name):
    params = inspect.signature(getattr(nbp, name)).parameters
    assert not [p for p in params if p.startswith("_")]


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("name, rank", ALIASES)
def test_alias_looks_like_its_nd_function(name, rank):
    func, alias = getattr(nbp, name), getattr(nbp, f"{name}{rank}d")
    assert alias.__name__ == alias.__qualname__ == f"{name}{rank}d"
    assert alias.__module__ == func.__module__ == "numbapool.spatial"
    assert inspect.signature(alias) == inspect.signature(func)
    assert typing.get_type_hints(alias) == typing.get_type_hints(func)
    doc = alias.__doc__
    assert doc.startswith(f"{rank}-D :func:`numbapool.{name}`")
    assert inspect.cleandoc(func.__doc__) in doc
    assert "\nParameters\n----------\n" in doc and "\nExamples\n--------\n" in doc


X4 = np.random.default_rng(0).random((2, 3, 6, 7))
X5 = np.random.default_rng(1).random((2, 3, 4, 5, 6))


@pytest.mark.parametrize("alias_call, nd_call", [
    (lambda: nbp.max_pool2d(X4, 3, 2), lambda: nbp.max_pool(X4, (3, 3), 2)),
    (lambda: nbp.max_pool2d(X4, kernel_size=3, padding=1),
     lambda: nbp.max_pool(X4, (3, 3), padding=1)),
    (lambda: nbp.max_pool2d(X4[0, 0], 2), lambda: nbp.max_pool(X4[0, 0], (2, 2))),
    (lambda: nbp.max_pool1d(X4, 2, return_indices=True)[1],
     lambda: nbp.max_pool(X4, (2,), return_indices=True)[1]),
    (lambda: nbp.avg_pool3d(X5, [2, 1, 3]), lambda: nbp.avg_pool(X5, (2, 1, 3))),
    (lambda: nbp.avg_pool1d(X5, 2, layout="channels_last"),
     lambda: nbp.avg_pool(X5, (2,), layout="channels_last")),
    (lambda: nbp.lp_pool2d(X4, 2.0, kernel_size=2), lambda: nbp.lp_pool(X4, 2.0, (2, 2))),
    (lambda: nbp.adaptive_avg_pool3d(X5, (2, None, 3)),
     lambda: nbp.adaptive_avg_pool(X5, (2, None, 3))),
    (lambda: nbp.adaptive_max_pool2d(X5, output_size=2),
     lambda: nbp.adaptive_max_pool(X5, (2, 2))),
    (lambda: nbp.global_avg_pool2d(X5), lambda: nbp.global_avg_pool(X5, spatial_dims=2)),
    (lambda: nbp.global_max_pool3d(X5, 3, keepdims=True),
     lambda: nbp.global_max_pool(X5, 3, keepdims=True)),
    (lambda: nbp.gem_pool1d(X4, 2.0), lambda: nbp.gem_pool(X4, 2.0, spatial_dims=1)),
    (lambda: nbp.gem_pool2d(X4, 2.0, 1e-3, 2), lambda: nbp.gem_pool(X4, 2.0, 1e-3, 2)),
])
def test_alias_equals_the_nd_call(alias_call, nd_call):
    got, want = alias_call(), nd_call()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: nbp.max_pool2d(X4, (2, 2, 2)), ValueError, "kernel_size must have 2 entries"),
    (lambda: nbp.avg_pool3d(X5, kernel_size=[2, 2]), ValueError, "kernel_size.*3 entries"),
    (lambda: nbp.lp_pool1d(X4, 2.0, (2, 2)), ValueError, "kernel_size"),
    (lambda: nbp.adaptive_max_pool2d(X4, (2, 2, 2)), ValueError,
     "output_size must have 2 entries"),
    (lambda: nbp.global_max_pool2d(X5, 3), ValueError, "spatial_dims=3 contradicts"),
    (lambda: nbp.global_avg_pool1d(X5, spatial_dims=2), ValueError, "spatial_dims"),
    (lambda: nbp.gem_pool3d(X5, 3.0, 1e-6, 2), ValueError, "spatial_dims"),
    (lambda: nbp.max_pool2d(X4, 2.0), TypeError, "kernel_size"),
    (lambda: nbp.global_avg_pool2d(X4, spatial_dims=2.0), TypeError, "spatial_dims"),
    (lambda: nbp.max_pool2d(X4), TypeError, "kernel_size"),
    (lambda: nbp.global_max_pool1d(X4, 1, spatial_dims=1), TypeError, "spatial_dims"),
])
def test_alias_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# --------------------------------------------------------------------------- type hints


@pytest.mark.parametrize("name", FUNCTIONS)
def test_type_hints_resolve_and_cover_every_parameter(name):
    func = getattr(nbp, name)
    hints = typing.get_type_hints(func)
    assert set(hints) == set(inspect.signature(func).parameters) | {"return"}


def _literal_choices(hint):
    """The strings of a ``Literal[...]`` hint, optionally inside an ``Optional``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return set(args)
    (inner,) = args
    return _literal_choices(inner)


def test_literal_hints_match_the_accepted_values():
    hints = typing.get_type_hints(nbp.max_pool)
    assert _literal_choices(hints["nan_policy"]) == set(_checks.NAN_POLICIES)
    assert _literal_choices(hints["layout"]) == set(_checks.LAYOUTS)
    assert _literal_choices(hints["device"]) == {"cpu", "cuda"}
    assert type(None) in typing.get_args(hints["device"])
    token_hints = typing.get_type_hints(nbp.pool_tokens)
    modes = typing.get_args(token_hints["mode"])[0]
    assert typing.get_args(modes) == nbp.TOKEN_MODES


# --------------------------------------------------------------------------- packaging


def test_py_typed_is_shipped():
    assert importlib.resources.files("numbapool").joinpath("py.typed").is_file()
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["numbapool"]


# --------------------------------------------------------------------------- docstrings


def _documented_parameters(doc):
    """Parameter names listed in a numpydoc ``Parameters`` section, in order."""
    match = re.search(r"^Parameters\n-{10}\n(.*?)(?:\n\n[A-Z]\w+\n-+\n|\Z)", doc, re.S | re.M)
    if match is None:
        return []
    names = []
    for line in match.group(1).splitlines():
        entry = re.match(r"^(\w+(?:, \w+)*) : ", line) or re.match(r"^(\w+)$", line)
        if entry:
            names += entry.group(1).split(", ")
    return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpydoc_sections(name):
    func = getattr(nbp, name)
    doc = inspect.cleandoc(func.__doc__)
    assert _documented_parameters(doc) == list(inspect.signature(func).parameters)
    for section in ("Returns", "Examples"):
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, section


@pytest.mark.parametrize("name", FUNCTIONS)
def test_docstrings_keep_no_placeholder(name):
    doc = getattr(nbp, name).__doc__
    assert not _docstrings._PLACEHOLDER.search(doc), "a shared-entry placeholder was not filled"


def test_shared_entries_are_filled_and_checked():
    def pool(x, layout):
        """Pool.

        Parameters
        ----------
        {x, layout}
            Own words.
        """

    doc = inspect.cleandoc(_docstrings.fill(pool).__doc__)
    assert _documented_parameters(doc) == ["x", "layout"]
    assert doc.endswith("    Whether a channel axis follows the spatial axes.\n    Own words.")
    with pytest.raises(KeyError, match="kernel"):
        @_docstrings.fill(like=pool)
        def other():
            """Other.

            {Parameters}
            {kernel}
            """
