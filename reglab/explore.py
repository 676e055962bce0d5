"""Explorers: a figure with knobs, live in Jupyter and working in the offline book.

``explore(frame, lam=Slider(grid), epoch=Player(range(40)))`` calls ``frame(lam=..., epoch=...)``
once for every combination of the controls' values. ``frame`` draws one matplotlib figure and
may return a caption: a string, or a dict ``{name: number}`` printed as ``name = number``.
Every figure is rendered once to a small PNG, so turning a knob never recomputes anything.

The returned :class:`Explorer` displays as one output carrying two renderings:

* ``application/vnd.jupyter.widget-view+json``: real ipywidgets controls, which JupyterLab
  shows when a kernel is running; moving one swaps in a rendered frame;
* ``text/html``: the same controls as plain HTML with every frame inline. The book drops the
  widget view (``nb_mime_priority_overrides`` in ``_config.yml``) and keeps this; the
  course's own ``book/_static/reglab-explorer.js`` switches frames. No kernel, no widget
  state and no request to any other host.

Controls: :class:`Slider` (an ordered grid of values), :class:`Dropdown` (named choices) and
:class:`Player` (a step that evolves, such as an epoch: restart, step back, play/pause, step
forward, speed 0.25x or 1x, and a readout). At most one player per explorer.
"""

from __future__ import annotations

import base64
import hashlib
import html
import inspect
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reglab.checks import grading

MAX_FRAMES = 400  # a page carries every frame; more than this is too heavy for a reader
DPI = 80  # the book's column is about 750 px wide; 80 dpi keeps frames sharp and small
PALETTE_COLORS = 96  # frames are stored as palette PNGs: 2-4x smaller, no visible loss
SPEEDS = (0.25, 1.0)
# the player's buttons, in characters every common font has (U+23EE and U+23F8 are often
# missing and show as empty boxes); U+FE0E asks for text, not emoji, presentation
# (reglab-explorer.js shows U+275A U+275A for pause while playing)
ICONS = {"restart": "\u21ba", "back": "|\u25c0\ufe0e", "play": "\u25b6\ufe0e",
         "forward": "\u25b6\ufe0e|"}


@dataclass(frozen=True)
class Control:
    """One knob: its values, how each reads, where it starts, and its kind."""

    kind: str  # "slider", "dropdown" or "player"
    values: tuple
    labels: tuple[str, ...]
    label: str | None = None
    start: int = 0
    interval_ms: int = 250  # a player's time per step at 1x

    def __post_init__(self):
        if not self.values:
            raise ValueError("explore: a control needs at least one value; this one is empty")
        if not 0 <= self.start < len(self.values):
            raise ValueError(f"explore: start {self.start} is outside the control's "
                             f"{len(self.values)} values")


def _labels(values: Sequence, fmt: str | Callable) -> tuple[str, ...]:
    as_text = fmt if callable(fmt) else fmt.format
    return tuple(str(as_text(v)) for v in values)


def _start_index(values: tuple, start) -> int:
    if start is None:
        return 0
    for i, value in enumerate(values):
        if value == start or (isinstance(value, float) and abs(value - start) <= 1e-12 *
                              max(1.0, abs(value))):
            return i
    raise ValueError(f"explore: start value {start!r} is not one of the control's values")


def Slider(values: Sequence, *, label: str | None = None, fmt: str | Callable = "{}",
           start=None) -> Control:
    """A slider over an ordered grid of values (``fmt`` says how a value reads)."""
    values = tuple(_plain(v) for v in values)
    return Control("slider", values, _labels(values, fmt), label, _start_index(values, start))


def Dropdown(options: Sequence | Mapping, *, label: str | None = None, start=None) -> Control:
    """A choice among named options: a list of values, or a dict ``{shown name: value}``."""
    if isinstance(options, Mapping):
        names, values = tuple(str(k) for k in options), tuple(options.values())
    else:
        values = tuple(_plain(v) for v in options)
        names = tuple(str(v) for v in values)
    return Control("dropdown", values, names, label, _start_index(values, start))


def Player(values: Sequence, *, label: str | None = None, fmt: str | Callable = "{}",
           start=None, interval_ms: int = 250) -> Control:
    """A step that evolves (epochs, iterations), with a play/pause control bar."""
    values = tuple(_plain(v) for v in values)
    return Control("player", values, _labels(values, fmt), label, _start_index(values, start),
                   int(interval_ms))


def _plain(value):
    """NumPy scalars as Python numbers, so frames receive plain values."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () \
        else value


def _as_control(name: str, spec) -> Control:
    if isinstance(spec, Control):
        return spec
    if isinstance(spec, Mapping):
        return Dropdown(spec, label=name)
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__len__"):
        raise TypeError(f"explore: control {name!r} must be a Slider, Dropdown or Player "
                        f"(or a list of values for a slider), not {type(spec).__name__}")
    return Slider(list(spec), label=name)


def _caption(result) -> str:
    if result is None or _is_figure(result):
        return ""
    if isinstance(result, str):
        return result
    if isinstance(result, Mapping):
        return " \u00b7 ".join(f"{k} = {_number(v)}" for k, v in result.items())
    raise TypeError("explore: frame must return None, a caption string or a dict "
                    f"{{name: number}}, not {type(result).__name__}")


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_figure(obj) -> bool:
    from matplotlib.figure import Figure

    return isinstance(obj, Figure)


def render_png(fig, dpi: int = DPI) -> bytes:
    """The figure as a palette PNG (small, lossless to the eye), then closed."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    # drawn once, straight to pixels: no PNG written and read back before the palette
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    size = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", size, canvas.buffer_rgba()).convert("RGB")
    plt.close(fig)
    small = io.BytesIO()
    image.quantize(PALETTE_COLORS, method=Image.Quantize.MEDIANCUT).save(
        small, format="png", optimize=True)
    return small.getvalue()


class Explorer:
    """Every frame of a grid of control values, and the two ways to show them."""

    def __init__(self, frame: Callable, controls: dict[str, Control], *, dpi: int = DPI,
                 zoom: bool = False, title: str = ""):
        self.frame, self.controls, self.zoom, self.title = frame, controls, zoom, title
        self.shape = tuple(len(c.values) for c in controls.values())
        self.frames: list[bytes] = []
        self.captions: list[str] = []
        self._widget = None
        for position in itertools.product(*(range(n) for n in self.shape)):
            png, caption = self._render(self.values_at(position), dpi)
            self.frames.append(png)
            self.captions.append(caption)

    def _render(self, values: dict, dpi: int) -> tuple[bytes, str]:
        import matplotlib.pyplot as plt

        before = set(plt.get_fignums())
        try:
            result = self.frame(**values)
        except Exception as err:
            err.add_note(f"explore: raised by frame({_call_args(values)})")
            raise
        drawn = [n for n in plt.get_fignums() if n not in before]
        fig = result if _is_figure(result) else plt.figure(drawn[-1]) if drawn else None
        for n in drawn:  # one figure per frame: anything else it opened is closed unseen
            if fig is None or plt.figure(n) is not fig:
                plt.close(n)
        if fig is None:
            raise ValueError(f"explore: frame({_call_args(values)}) drew no figure; it must "
                             "draw one with matplotlib (plt.subplots(...) and plot)")
        return render_png(fig, dpi), _caption(result)

    # --- positions and frames ----------------------------------------------------------
    def values_at(self, position: Sequence[int]) -> dict:
        return {name: c.values[i] for (name, c), i in zip(self.controls.items(), position)}

    def index(self, position: Sequence[int]) -> int:
        """The flat frame number of a position (one index per control, in order)."""
        flat = 0
        for i, n in zip(position, self.shape):
            flat = flat * n + i
        return flat

    @property
    def start(self) -> tuple[int, ...]:
        return tuple(c.start for c in self.controls.values())

    @property
    def id(self) -> str:
        spec = json.dumps([[name, c.kind, list(c.labels)] for name, c in self.controls.items()])
        digest = hashlib.sha1(f"{self.frame.__qualname__}|{spec}".encode()).hexdigest()
        return f"reglab-explorer-{digest[:10]}"

    def __repr__(self) -> str:
        knobs = ", ".join(f"{name}: {c.kind} over {len(c.values)} values"
                          for name, c in self.controls.items())
        return f"<explorer of {self.frame.__name__}: {len(self.frames)} frames; {knobs}>"

    # --- the static page -----------------------------------------------------------------
    def html(self) -> str:
        first = self.index(self.start)
        data = {"shape": list(self.shape), "start": list(self.start),
                "labels": [list(c.labels) for c in self.controls.values()],
                "frames": [base64.b64encode(f).decode("ascii") for f in self.frames],
                "captions": self.captions}
        # no "<" at all inside the script element: nothing in a caption can close or open a tag
        payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
        classes = "reglab-explorer" + (" reglab-zoomable" if self.zoom else "")
        title = f'<p class="reglab-explorer-title">{html.escape(self.title)}</p>' \
            if self.title else ""
        controls = "".join(_control_html(k, name, c) for k, (name, c)
                           in enumerate(self.controls.items()))
        alt = html.escape(f"{self.title or self.frame.__name__}: one frame of {len(self.frames)}")
        return (
            f'<div class="{classes}" id="{self.id}">{title}'
            f'<div class="reglab-explorer-controls">{controls}</div>'
            f'<div class="reglab-explorer-view"><img class="reglab-explorer-frame" alt="{alt}" '
            f'src="data:image/png;base64,{data["frames"][first]}"></div>'
            f'<p class="reglab-explorer-caption" aria-live="polite">'
            f'{html.escape(self.captions[first])}</p>'
            f'<script type="application/json" class="reglab-explorer-data">{payload}</script>'
            "</div>"
        )

    # --- the live widget -------------------------------------------------------------------
    def widget(self):
        """The ipywidgets view (built once): controls, the frame, its caption."""
        if self._widget is None:
            self._widget = build_widget(self)
        return self._widget

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": repr(self), "text/html": self.html()}
        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:  # no ipywidgets: the static controls still work in the book
            return bundle
        bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle


def _call_args(values: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def _control_html(k: int, name: str, c: Control) -> str:
    label = html.escape(c.label or name)
    start_label = html.escape(c.labels[c.start])
    readout = f'<output class="reglab-explorer-readout" data-control="{k}">{start_label}</output>'
    if c.kind == "slider":
        return (f'<label class="reglab-explorer-control"><span>{label}</span>'
                f'<input type="range" data-control="{k}" min="0" max="{len(c.values) - 1}" '
                f'step="1" value="{c.start}" aria-label="{label}">{readout}</label>')
    if c.kind == "dropdown":
        options = "".join(f'<option value="{i}"{" selected" if i == c.start else ""}>'
                          f"{html.escape(text)}</option>" for i, text in enumerate(c.labels))
        return (f'<label class="reglab-explorer-control"><span>{label}</span>'
                f'<select data-control="{k}" aria-label="{label}">{options}</select></label>')
    buttons = "".join(
        f'<button type="button" data-action="{action}" title="{tip}" aria-label="{tip}">'
        f"{icon}</button>"
        for action, icon, tip in (("restart", ICONS["restart"], "restart"),
                                  ("back", ICONS["back"], "step back"),
                                  ("play", ICONS["play"], "play / pause"),
                                  ("forward", ICONS["forward"], "step forward")))
    speeds = "".join(f'<option value="{s}"{" selected" if s == 1.0 else ""}>{s:g}\u00d7</option>'
                     for s in SPEEDS)
    return (f'<div class="reglab-explorer-control reglab-explorer-player" data-control="{k}" '
            f'data-interval="{c.interval_ms}"><span>{label}</span>{buttons}'
            f'<input type="range" data-control="{k}" min="0" max="{len(c.values) - 1}" '
            f'step="1" value="{c.start}" aria-label="{label}">'
            f'<select class="reglab-explorer-speed" aria-label="speed">{speeds}</select>'
            f'{readout}<span class="reglab-explorer-of">/ {html.escape(c.labels[-1])}</span>'
            "</div>")


def explore(frame: Callable, *, dpi: int = DPI, zoom: bool = False, title: str = "",
            **controls) -> Explorer:
    """Render ``frame`` over every combination of the controls' values; display the result.

    ``frame(**values)`` draws one matplotlib figure and may return a caption (a string, or a
    dict of numbers). Each keyword is a control named after one of ``frame``'s parameters:
    a :func:`Slider`, :func:`Dropdown` or :func:`Player` (a plain list means a slider).
    ``zoom=True`` lets the reader click the picture to see it at twice the size.
    """
    if not callable(frame):
        raise TypeError("explore: the first argument must be the function that draws one "
                        f"frame, not {type(frame).__name__}")
    if not controls:
        raise ValueError("explore: give at least one control, e.g. lam=Slider([0.01, 0.1, 1])")
    specs = {name: _as_control(name, spec) for name, spec in controls.items()}
    _check_signature(frame, specs)
    if sum(c.kind == "player" for c in specs.values()) > 1:
        raise ValueError("explore: at most one Player per explorer")
    count = 1
    for c in specs.values():
        count *= len(c.values)
    if count > MAX_FRAMES:
        raise ValueError(f"explore: {count} frames is more than {MAX_FRAMES}; use fewer "
                         "values per control (every frame is rendered and shipped in the page)")
    if grading():  # nobody looks at a graded notebook's figures: spend no time drawing them
        return NotDrawn(f"explorer of {frame.__name__}: {count} frames, not drawn while grading")
    return Explorer(frame, specs, dpi=dpi, zoom=zoom, title=title)


class NotDrawn(str):
    """What explore() gives under the course's grader: a line of text, no frames."""

    def __repr__(self) -> str:
        return str(self)


def _check_signature(frame: Callable, specs: dict[str, Control]) -> None:
    try:
        params = inspect.signature(frame).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [name for name in specs if name not in params]
    if unknown:
        raise TypeError(f"explore: {frame.__name__}() has no parameter "
                        f"{', '.join(map(repr, unknown))}; its parameters are "
                        f"{', '.join(params) or 'none'}")
    missing = [name for name, p in params.items() if name not in specs
               and p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise TypeError(f"explore: no control for {frame.__name__}()'s parameter "
                        f"{', '.join(map(repr, missing))}")


# --- the live widget: ipywidgets controls over the rendered frames ---------------------------

def build_widget(explorer: Explorer):
    """Controls, the current frame (an ipywidgets Image) and its caption, in one box."""
    import ipywidgets as w

    image = w.Image(value=explorer.frames[explorer.index(explorer.start)], format="png")
    caption = w.HTML(html.escape(explorer.captions[explorer.index(explorer.start)]))
    knobs = [_knob(w, name, c) for name, c in explorer.controls.items()]

    def redraw(_change=None):
        k = explorer.index([knob.value for knob, _ in knobs])
        image.value, caption.value = explorer.frames[k], html.escape(explorer.captions[k])

    for knob, _ in knobs:
        knob.observe(redraw, names="value")
    if explorer.zoom:
        zoom = w.ToggleButton(description="zoom 2\u00d7", value=False)
        zoom.observe(lambda ch: setattr(image.layout, "width", "200%" if ch.new else ""),
                     names="value")
        knobs.append((zoom, zoom))
    box = w.VBox([row for _, row in knobs] + [image, caption])
    box.add_class("reglab-explorer-live")
    box.redraw = redraw  # for tests: the same callback the controls call
    return box


def _knob(w, name: str, c: Control):
    """(the widget whose value is the index into c.values, the row to show)."""
    label = c.label or name
    options = [(text, i) for i, text in enumerate(c.labels)]
    if c.kind == "slider":
        knob = w.SelectionSlider(options=options, value=c.start, description=label,
                                 continuous_update=True)
        return knob, knob
    if c.kind == "dropdown":
        knob = w.Dropdown(options=options, value=c.start, description=label)
        return knob, knob
    return _player(w, label, c)


def _player(w, label: str, c: Control):
    """Restart, step back, play/pause, step forward, speed and a readout, over one slider."""
    last = len(c.values) - 1
    play = w.Play(value=c.start, min=0, max=last, interval=c.interval_ms, show_repeat=False,
                  description=label)
    scrub = w.IntSlider(value=c.start, min=0, max=last, readout=False, description=label)
    w.jslink((play, "value"), (scrub, "value"))
    readout = w.Label(f"{c.labels[c.start]} / {c.labels[-1]}")
    buttons = {name: w.Button(description=icon, tooltip=name, layout=w.Layout(width="3em"))
               for name, icon in (("restart", ICONS["restart"]),
                                  ("step back", ICONS["back"]),
                                  ("step forward", ICONS["forward"]))}
    speed = w.ToggleButtons(options=[(f"{s:g}\u00d7", s) for s in SPEEDS], value=1.0,
                            layout=w.Layout(width="auto"),
                            style={"button_width": "4em"})

    def move(to: int):
        scrub.value = min(max(to, 0), last)

    buttons["restart"].on_click(lambda _: (setattr(play, "playing", False), move(0)))
    buttons["step back"].on_click(lambda _: move(scrub.value - 1))
    buttons["step forward"].on_click(lambda _: move(scrub.value + 1))
    speed.observe(lambda ch: setattr(play, "interval", int(c.interval_ms / ch.new)),
                  names="value")
    scrub.observe(lambda ch: setattr(readout, "value", f"{c.labels[ch.new]} / {c.labels[-1]}"),
                  names="value")
    row = w.HBox([buttons["restart"], buttons["step back"], play, buttons["step forward"],
                  scrub, speed, readout])
    return scrub, row
