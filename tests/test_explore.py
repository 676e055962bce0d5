"""reglab.explore: the grid of frames, the control specs, clear errors, and both renderings."""

from __future__ import annotations

import base64
import json
import re

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from reglab.explore import MAX_FRAMES, Dropdown, Player, Slider, explore  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def line(slope, shift=0.0, kind="solid"):
    """A frame: one line whose slope and shift the controls set; returns a caption."""
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [shift, shift + slope], ls="-" if kind == "solid" else "--")
    ax.set_ylim(-3, 3)
    return {"slope": slope, "shift": shift}


def page_data(explorer) -> dict:
    found = re.search(r'<script type="application/json" class="reglab-explorer-data">(.*?)'
                      r"</script>", explorer.html(), flags=re.DOTALL)
    return json.loads(found.group(1))


# --- the grid ------------------------------------------------------------------------------

def test_every_combination_is_rendered_once_in_row_major_order():
    calls = []

    def frame(slope, shift):
        calls.append((slope, shift))
        return line(slope, shift)

    e = explore(frame, slope=Slider([-1.0, 0.0, 1.0]), shift=Slider([0.0, 0.5]))
    assert e.shape == (3, 2) and len(e.frames) == 6
    assert calls == [(-1.0, 0.0), (-1.0, 0.5), (0.0, 0.0), (0.0, 0.5), (1.0, 0.0), (1.0, 0.5)]
    assert all(f.startswith(PNG) for f in e.frames)
    assert len(set(e.frames)) == 6, "different values drew the same picture"
    assert e.index((2, 1)) == 5 and e.values_at((2, 1)) == {"slope": 1.0, "shift": 0.5}
    assert e.captions[5] == "slope = 1 \u00b7 shift = 0.5"


def test_no_figure_is_left_open_for_the_notebook_to_show():
    before = set(plt.get_fignums())
    explore(line, slope=[0.5, 1.0])
    assert set(plt.get_fignums()) == before


def test_numpy_values_reach_the_frame_as_plain_numbers():
    seen = []

    def frame(slope):
        seen.append(type(slope))
        return line(slope)

    explore(frame, slope=Slider(np.linspace(0, 1, 3)))
    assert seen == [float, float, float]


def test_a_caption_may_be_a_string_or_nothing():
    def titled(slope):
        line(slope)
        return f"slope {slope}"

    def silent(slope):
        line(slope)

    assert explore(titled, slope=[2]).captions == ["slope 2"]
    assert explore(silent, slope=[2]).captions == [""]


# --- control specs -------------------------------------------------------------------------

def test_control_specs_carry_labels_formats_and_start():
    s = Slider([0.001, 0.01, 0.1], label="λ", fmt="{:.0e}", start=0.01)
    assert s.kind == "slider" and s.labels == ("1e-03", "1e-02", "1e-01") and s.start == 1
    d = Dropdown({"rotate": "rot", "flip": "flip"}, label="transform", start="flip")
    assert d.values == ("rot", "flip") and d.labels == ("rotate", "flip") and d.start == 1
    p = Player(range(0, 10, 2), label="epoch", interval_ms=100)
    assert p.kind == "player" and p.values == (0, 2, 4, 6, 8) and p.interval_ms == 100


def test_a_plain_list_is_a_slider_and_a_dict_a_dropdown():
    e = explore(line, slope=[1, 2], kind={"solid": "solid", "dashed": "dashed"})
    kinds = {name: c.kind for name, c in e.controls.items()}
    assert kinds == {"slope": "slider", "kind": "dropdown"}


# --- clear errors for bad input ------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda: explore("not a function", slope=[1]), TypeError, "function that draws one frame"),
    (lambda: explore(line), ValueError, "at least one control"),
    (lambda: explore(line, slope=[]), ValueError, "empty"),
    (lambda: explore(line, slope=Slider([])), ValueError, "empty"),
    (lambda: explore(line, slope=[1], tilt=[2]), TypeError, "no parameter 'tilt'"),
    (lambda: explore(line, shift=[1]), TypeError, "no control for line()'s parameter 'slope'"),
    (lambda: explore(line, slope=5), TypeError, "must be a Slider, Dropdown or Player"),
    (lambda: explore(line, slope=Slider([1, 2], start=3)), ValueError, "not one of"),
    (lambda: explore(line, slope=Player([1]), shift=Player([1])), ValueError, "one Player"),
    (lambda: explore(line, slope=range(MAX_FRAMES), shift=[0, 1]), ValueError, "more than"),
])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_a_frame_that_draws_nothing_is_named_with_its_values():
    with pytest.raises(ValueError, match=re.escape("frame(slope=2) drew no figure")):
        explore(lambda slope: None, slope=[2])


def test_an_error_inside_the_frame_says_which_values_raised_it():
    def fragile(slope):
        if slope > 1:
            raise ZeroDivisionError("boom")
        return line(slope)

    with pytest.raises(ZeroDivisionError) as info:
        explore(fragile, slope=[1, 2])
    assert "frame(slope=2)" in "\n".join(getattr(info.value, "__notes__", []))


# --- the static page -----------------------------------------------------------------------

def test_static_html_has_the_controls_every_frame_and_the_start_frame_shown():
    e = explore(line, slope=Slider([-1, 0, 1], label="slope", start=0),
                kind=Dropdown(["solid", "dashed"]), shift=Player([0.0, 0.5, 1.0], label="t"))
    text = e.html()
    assert f'id="{e.id}"' in text
    assert text.count('type="range"') == 2  # the slider, and the player's scrubber
    assert "<select data-control=\"1\"" in text and text.count("<option") == 2 + 2
    for action in ("restart", "back", "play", "forward"):
        assert f'data-action="{action}"' in text
    assert ">0.25\u00d7</option>" in text and ">1\u00d7</option>" in text
    data = page_data(e)
    assert data["shape"] == [3, 2, 3] and data["start"] == [1, 0, 0]
    assert [base64.b64decode(f) for f in data["frames"]] == e.frames
    shown = re.search(r'<img class="reglab-explorer-frame"[^>]*src="data:image/png;base64,'
                      r'([^"]+)"', text).group(1)
    assert base64.b64decode(shown) == e.frames[e.index((1, 0, 0))]
    assert not re.search(r"(?:src|href)=[\"'](?:https?:)?//", text), "loads from another host"


def test_the_page_is_the_same_on_every_run():
    first = explore(line, slope=[0.5, 1.0]).html()
    assert explore(line, slope=[0.5, 1.0]).html() == first


def test_captions_and_labels_are_escaped():
    def risky(slope):
        line(slope)
        return "<script>alert(1)</script>"

    text = explore(risky, slope=Slider([1], label="<b>")).html()
    assert "<script>alert" not in text.replace('<script type="application/json"', "")
    assert "&lt;b&gt;" in text


def test_zoom_makes_the_picture_clickable():
    assert "reglab-zoomable" in explore(line, slope=[1], zoom=True).html()
    assert "reglab-zoomable" not in explore(line, slope=[1]).html()


# --- the live widget -----------------------------------------------------------------------

def test_one_output_carries_the_live_widget_and_the_static_page():
    e = explore(line, slope=[1, 2])
    bundle = e._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html",
                           "application/vnd.jupyter.widget-view+json"}
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == e.widget().model_id


def test_moving_a_live_control_shows_the_precomputed_frame_and_caption():
    import ipywidgets as w

    e = explore(line, slope=Slider([-1, 0, 1], start=0), kind=Dropdown(["solid", "dashed"]))
    box = e.widget()
    slider, dropdown = box.children[0], box.children[1]
    image, caption = box.children[-2], box.children[-1]
    assert isinstance(slider, w.SelectionSlider) and isinstance(dropdown, w.Dropdown)
    assert isinstance(image, w.Image) and image.value == e.frames[e.index((1, 0))]
    slider.value = 2  # the frontend sends the index of the chosen label
    assert image.value == e.frames[e.index((2, 0))] and "slope = 1" in caption.value
    dropdown.value = 1
    assert image.value == e.frames[e.index((2, 1))]
    assert e.widget() is box, "the widget is built once"


def test_the_live_player_steps_restarts_and_changes_speed():
    import ipywidgets as w

    e = explore(line, slope=Player([0.0, 0.5, 1.0, 1.5], label="epoch", interval_ms=200))
    row = e.widget().children[0]
    restart, back, play, forward, scrub, speed, readout = row.children
    assert isinstance(play, w.Play) and isinstance(scrub, w.IntSlider)
    image = e.widget().children[-2]
    forward.click()
    forward.click()
    assert scrub.value == 2 and image.value == e.frames[2] and readout.value == "1.0 / 1.5"
    back.click()
    assert scrub.value == 1 and image.value == e.frames[1]
    restart.click()
    assert scrub.value == 0 and not play.playing
    back.click()  # already at the start: stays there
    assert scrub.value == 0
    speed.value = 0.25
    assert play.interval == 800


def test_under_the_grader_no_frame_is_drawn(monkeypatch):
    calls = []

    def frame(slope):
        calls.append(slope)
        return line(slope)

    monkeypatch.setenv("REGLAB_GRADING", "1")
    shown = explore(frame, slope=[1, 2, 3])
    assert calls == [] and "3 frames, not drawn while grading" in repr(shown)
    with pytest.raises(ValueError, match="empty"):  # bad input is still reported
        explore(frame, slope=[])
