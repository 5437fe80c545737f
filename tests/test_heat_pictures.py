"""The Explorer's heat maps as pictures: the same colour scales and ranges as the interactive charts, drawn once
per content, and an ω change that re-sends neither a chart nor a new picture of the unchanged maps."""

from pathlib import Path

import numpy as np
from helpers import page_path
from streamlit.testing.v1 import AppTest

from sdsgsm.render import viz

ROOT = Path(__file__).resolve().parent.parent


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5)) if colour.startswith("#") else \
        tuple(int(float(c)) for c in colour[colour.index("(") + 1:-1].split(","))


def test_colour_scales_are_the_charts_own():
    charts = ((viz.saliency_figure(np.random.default_rng(0).random((32, 32)), np.zeros((0, 4))), viz.SALIENCY_HEAT),
              (viz.budget_figure(np.full((32, 32), 2 / 255)), viz.BUDGET_HEAT))
    for fig, settings in charts:
        scale = fig.data[0].colorscale  # what the interactive chart draws
        assert fig.layout.title.text == settings[0] and fig.data[0].colorbar.title.text == settings[2]
        lut = viz.colour_lut(settings[1])
        assert tuple(lut[0]) == _rgb(scale[0][1]) and tuple(lut[-1]) == _rgb(scale[-1][1])
        for at, colour in scale:  # every stop of the chart's scale, within rounding
            assert np.abs(lut[round(at * (len(lut) - 1))].astype(int) - _rgb(colour)).max() <= 3, (settings, at)


def test_nice_ticks_are_round_and_inside_the_range():
    for lo, hi in [(0.0, 1.0), (0.0123, 2.93), (0.0, 8.0), (-3.0, 7.0), (0.001, 0.0042), (120.0, 4500.0)]:
        ticks = viz.nice_ticks(lo, hi)
        assert 3 <= len(ticks) <= 7 and lo <= ticks[0] and ticks[-1] <= hi, (lo, hi, ticks)
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0]) and float(f"{steps[0]:.3g}") == float(f"{steps[0]:.12g}")
    assert viz.nice_ticks(2.0, 2.0) == [2.0]


def test_heat_picture_maps_min_and_max_to_the_ends_of_the_scale_with_red_boxes_and_white_gaps():
    values = np.kron(np.arange(16, dtype=float).reshape(4, 4), np.ones((8, 8)))  # 4 × 4 cells on 32 px
    values[:8, :8] = np.nan
    img = np.asarray(viz.heat_image(values, viz.SALIENCY_HEAT, boxes=[[16, 16, 8, 8]], side=320))
    lut = viz.colour_lut(viz.SALIENCY_HEAT[1])
    head = img.shape[0] - 320  # the title's band above the map
    cell = lambda r, c: tuple(img[head + r * 80 + 40, c * 80 + 40])  # noqa: E731 - centre of cell (r, c)
    assert cell(0, 0) == (255, 255, 255)  # NaN
    assert cell(0, 1) == tuple(lut[0]) and cell(3, 3) == tuple(lut[-1])  # 1 is the finite min, 15 the max
    assert tuple(img[head + 160 + 1, 200]) == viz.RED  # the box's top edge (row 16 of 32 → 160 px)
    budget = np.asarray(viz.budget_heat_image(np.full((32, 32), 4 / 255)))
    blues = viz.colour_lut(viz.BUDGET_HEAT[1])
    assert tuple(budget[-10, 10]) == tuple(blues[-1])  # a uniform E is the top of a scale that starts at 0


def test_omega_change_keeps_the_heat_pictures_and_sends_no_chart():
    at = AppTest.from_file(str(ROOT / page_path("Explorer")), default_timeout=900)
    at.query_params.update({"patch": "56", "steps": "2"})
    at.run()
    assert not at.exception and not at.get("plotly_chart")
    urls = lambda: [i.url for e in at.main.get("image") for i in e.proto.imgs]  # noqa: E731
    before, l2 = urls(), [m.value for m in at.metric if m.label == "L2"]
    assert len(before) == 5  # original, adversarial, perturbation, saliency and budget maps
    at.select_slider(key="ex_omega").set_value(2.0).run()
    after = urls()
    assert not at.exception and [m.value for m in at.metric if m.label == "L2"] != l2
    assert after[0] == before[0] and after[3:] == before[3:]  # the original and both maps: the same files
    assert after[1] != before[1]  # the new adversarial image


def test_pictures_are_keyed_by_every_value():
    from sdsgsm.ui import cache

    big = np.full((512, 512, 3), 0.5, dtype=np.float32)  # 786 432 values: more than Streamlit's hash reads
    other = big.copy()
    other[511, 511, 2] = 0.9  # one value differs
    assert cache.digest(big) != cache.digest(other) and cache.digest(big) == cache.digest(big.copy())
    assert cache.picture(big) != cache.picture(other)
    assert cache.picture(big, [[0, 0, 8, 8]]) != cache.picture(big)
    assert cache.heat_png("budget", big[..., 0]) != cache.heat_png("saliency", big[..., 0])
