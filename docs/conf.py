"""Sphinx configuration of the toymodel documentation site.

Build (from the repository root, warnings are errors, the tutorial notebook is executed):

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -c docs -b html . docs/_build/html

The source folder is the repository root so that the committed derivations/ and figures/ are
used as they are; only docs/ and derivations/ are read as pages.
"""

import toymodel

project = "toymodel"
author = "the toymodel developers"
release = toymodel.__version__
version = release

root_doc = "docs/index"
include_patterns = ["docs/**", "derivations/[0-9]*.md"]
exclude_patterns = ["docs/_build", "docs/_build/**", "**/.ipynb_checkpoints"]

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]

# Markdown: $...$ and $$...$$ maths (the derivations use them), heading anchors for links
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# every notebook is executed on every build; a failing cell fails the build
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600

autosummary_generate = False
autodoc_default_options = {"members": True, "undoc-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# numpydoc's cross-references of types in Parameters sections ("array", "int, optional") are
# plain text here: the site does not link to NumPy's inventory (no network at build time)
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"toymodel {release}"
suppress_warnings = ["myst.header"]
