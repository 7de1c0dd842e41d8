"""Sphinx configuration for the clusterlab documentation.

Build with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The build needs no network access: intersphinx is loaded but has no mappings, so no
inventory is fetched.
"""

from __future__ import annotations

import datetime

import clusterlab

# -- Project -------------------------------------------------------------------------

project = "clusterlab"
author = "clusterlab developers"
copyright = f"{datetime.date.today().year}, {author}"
release = clusterlab.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
root_doc = "index"
default_role = "literal"

# autosummary writes one page per listed object into api/generated/
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"
autodoc_member_order = "bysource"

# numpydoc: the class template lists the methods itself; numpydoc's own member tables
# would document every method a second time.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# Loaded for the roles it provides, but with no mappings: nothing is downloaded.
intersphinx_mapping: dict = {}
intersphinx_timeout = 1


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated metadata-routing setters (``set_*_request``).

    scikit-learn adds them to every estimator class; their docstrings point at
    scikit-learn's own user guide, which this site does not contain.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)


# -- HTML ----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"clusterlab {release}"
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
