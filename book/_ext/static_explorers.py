"""Sphinx extension: the book shows explorers as static HTML, never as live widgets.

Loaded from _config.yml (`sphinx: local_extensions`). An explorer (reglab.explore) displays
one output with two renderings: an ipywidgets view for a live kernel and plain HTML with
every frame inline. `nb_mime_priority_overrides` makes myst-nb pick the HTML. But executing
a chapter also records the widgets' state in the notebook's metadata, and myst-nb then writes
that state into the page as a <script type="application/vnd.jupyter.widget-state+json"> (with
a frame inside every Image widget): dead weight, since no widget manager runs in the book.
Here the page's script list drops it.
"""

from __future__ import annotations

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def drop_widget_state(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    kept = [s for s in scripts if getattr(s, "attributes", {}).get("type") != WIDGET_STATE]
    if len(kept) != len(scripts):
        context["script_files"] = kept  # a new list: the builder's own stays as it was


def setup(app):
    app.connect("html-page-context", drop_widget_state, priority=901)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
