"""Sphinx configuration of the toymodel documentation site.

Build (from the repository root, warnings are errors, the tutorial notebook is executed):

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html

The site's source is ``docs/``, so its front page (``docs/index.md``) is ``index.html`` at the root
of the build, where readers and documentation hosts look for it. The derivations are generated
into the repository's top-level ``derivations/`` folder; ``docs/derivations`` is a symbolic link
to it, so they are pages of the site as they are. The pages in ``docs/`` link to them, and to the
committed figures, by their paths in the repository (``../derivations/05_equilibrium.md``,
``../figures/phase_diagram.png``), which is what GitHub shows; Sphinx copies the figures as they
are, and :func:`_repository_links` turns the derivation links into links to the site's pages
when it reads a page.

The site works offline: MathJax is bundled (``sphinx-mathjax-offline`` copies it into ``_static``)
instead of loaded from a CDN, and the theme (pydata-sphinx-theme, NumPy's and SciPy's) ships its
own fonts and scripts.

The explorer's static page (``python -m toymodel.explore --write``) is generated at every build
into docs/_build/extra/explorer.html, which Sphinx copies to the site's root (html_extra_path);
docs/explore.md links to it. Generating it takes about a minute (49 runs of 10^4 steps, and the
kernel's compilation on a cold cache) and needs the explore extra (Bokeh), which the docs extra
installs.
"""

import re
from pathlib import Path

import toymodel

project = "toymodel"
author = "the toymodel developers"
release = toymodel.__version__
version = release

root_doc = "index"
exclude_patterns = ["_build", "_build/**", "**/.ipynb_checkpoints", "derivations/README.md"]

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
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

# pydata-sphinx-theme: the theme of NumPy, SciPy and Matplotlib, so the site reads like the
# references our users already know (API pages, navigation bar, search, light and dark); it
# bundles its assets, so nothing is fetched from a network
html_theme = "pydata_sphinx_theme"
# the explorer's static page, written by the builder-inited hook below (the folder must exist when
# the configuration is read)
_EXTRA = Path(__file__).resolve().parent / "_build" / "extra"
_EXTRA.mkdir(parents=True, exist_ok=True)
html_extra_path = [str(_EXTRA)]
html_title = f"toymodel {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
suppress_warnings = ["myst.header"]

# a link to a derivation from a page of docs/, written as GitHub reads it ([05](../derivations/05_x.md)),
# becomes a link to the site's page ({doc}`05 </derivations/05_x>`); MyST would resolve the path
# through the symbolic link to the folder outside the site's source and find no page there
_DERIVATION_LINK = re.compile(r"\[([^\]]+)\]\(\.\./derivations/([^)#\s]+)\.md\)")


def _repository_links(app, docname, source):
    if "/" not in docname:  # pages directly in docs/
        source[0] = _DERIVATION_LINK.sub(r"{doc}`\1 </derivations/\2>`", source[0])


def _write_explorer(app):
    """Generate the explorer's self-contained page for the site (python -m toymodel.explore --write)."""
    from toymodel.explore.static import write_static_page

    write_static_page(_EXTRA / "explorer.html")


def setup(app):
    app.connect("source-read", _repository_links)
    app.connect("builder-inited", _write_explorer)
