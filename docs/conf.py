"""Sphinx configuration of the numbapool documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.  Nothing
here needs the network: no intersphinx, and the default theme.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the checkout, installed or not

import numbapool  # noqa: E402

project = "numbapool"
author = "the numbapool developers"
copyright = "numbapool developers, BSD-3-Clause"
release = numbapool.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []

# --------------------------------------------------------------------------- API pages

# One page per public name, written into docs/reference/generated/ (ignored by git).
autosummary_generate = True
autodoc_default_options = {"members": False}
# numpydoc renders the types from the docstrings' Parameters sections; annotations in the
# signatures as well would say everything twice.
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False


def _doc_comment_of_reexport(app, what, name, obj, options, lines):
    """Give re-exported constants the ``#:`` comment written where they are defined.

    Autodoc reads ``#:`` comments from the module it documents (``numbapool``), so a
    constant defined in a submodule would otherwise show its type's docstring (a tuple's).
    """
    text = [line.strip() for line in lines if line.strip()]
    if what != "data" or not text or type(obj).__doc__ is None:
        return
    if text[0] != type(obj).__doc__.strip().splitlines()[0]:
        return  # a docstring of its own
    from sphinx.pycode import ModuleAnalyzer

    short = name.rpartition(".")[2]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("numbapool.") or getattr(module, short, None) is not obj:
            continue
        comment = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", short))
        if comment:
            lines[:] = list(comment)
            return


def _check_reference_is_complete(app):
    """Warn (an error under ``-W``) about public names the API reference does not list."""
    from sphinx.util import logging

    page = Path(app.srcdir) / "reference" / "index.rst"
    listed = set(re.findall(r"^ {3}(\w+)\s*$", page.read_text(), re.M))
    for name in numbapool.__all__:
        if name not in listed:
            logging.getLogger(__name__).warning(
                "numbapool.%s is public but not listed in reference/index.rst", name)


def setup(app):
    app.connect("builder-inited", _check_reference_is_complete)
    app.connect("autodoc-process-docstring", _doc_comment_of_reexport)


# --------------------------------------------------------------------------- Markdown pages

myst_heading_anchors = 3  # link to sections as page.md#section-title
myst_enable_extensions = []

# --------------------------------------------------------------------------- HTML

html_theme = "alabaster"
html_title = f"numbapool {release}"
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
