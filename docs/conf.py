"""Sphinx configuration of the toymodel documentation site.

Build (from the repository root, warnings are errors, the tutorial notebook is executed):

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -c docs -b html . docs/_build/html

The source folder is the repository root so that the committed derivations/ and figures/ are
used as they are; only docs/ and derivations/ are read as pages.

The explorer's static page (``python -m toymodel.explore --write``) is generated at every build
into docs/_build/extra/explorer.html, which Sphinx copies to the site's root (html_extra_path);
docs/explore.md links to it. Generating it takes about a minute (49 runs of 10^4 steps, and the
kernel's compilation on a cold cache) and needs the explore extra (Bokeh), which the docs extra
installs.
"""

from pathlib import Path

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
# the explorer's static page, written by the builder-inited hook below (the folder must exist when
# the configuration is read)
_EXTRA = Path(__file__).resolve().parent / "_build" / "extra"
_EXTRA.mkdir(parents=True, exist_ok=True)
html_extra_path = [str(_EXTRA)]
html_title = f"toymodel {release}"
suppress_warnings = ["myst.header"]


def _write_explorer(app):
    """Generate the explorer's self-contained page for the site (python -m toymodel.explore --write)."""
    from toymodel.explore.static import write_static_page

    write_static_page(_EXTRA / "explorer.html")


def setup(app):
    app.connect("builder-inited", _write_explorer)
