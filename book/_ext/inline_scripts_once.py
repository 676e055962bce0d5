"""Sphinx extension: write each inline <script> of a page once (a fix for Sphinx 7.4).

Loaded from _config.yml (`sphinx: local_extensions`). Without it every page of the book
logs "Identifier 'THEBE_JS_URL' has already been declared" in the browser console.

Why: an extension that calls ``app.add_js_file(None, body=...)`` after the HTML builder
was initialised (sphinx-thebe does, on ``env-before-read-docs``; sphinx-togglebutton too)
gets its script recorded twice, once with ``filename=None`` and once, when the builder
prepares writing, with ``filename=''``. Sphinx's de-duplication compares the two names and
keeps both, so the page has the inline script twice, and sphinx-thebe's top-level
``const THEBE_JS_URL = ...`` throws on the second copy. Here the page's script list keeps
the first of any two entries that differ only in that ``None``/``''``.
"""

from __future__ import annotations


def _key(script) -> tuple:
    return (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        try:
            key = _key(script)
        except AttributeError:  # a plain string entry: leave the list alone
            return
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique  # a new list: the builder's own stays as it was


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
