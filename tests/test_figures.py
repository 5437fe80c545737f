"""Print figures: PDF pages and embedded fonts, PNG dpi, SVG parses, grid panel count, every kind."""

import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from sdsgsm.attacks import build_config, method_label
from sdsgsm.cli import main
from sdsgsm.experiments import figure_grid
from sdsgsm.experiments.benchmark import run_benchmark
from sdsgsm.experiments.sweep import Axis, run_sweep
from sdsgsm.render import figures

CIFAR = ["cifar10/cifar10_00_3.png", "cifar10/cifar10_01_8.png", "cifar10/cifar10_02_8.png"]


def _fonts(page) -> list:
    """The page's font dictionaries, Type0 fonts' descendant fonts included."""
    out = []
    for ref in page["/Resources"].get_object()["/Font"].get_object().values():
        font = ref.get_object()
        out.append(font)
        out += [d.get_object() for d in font.get("/DescendantFonts") or []]
    return out


def check_files(files: dict, stem: str):
    """The four files of a figure: 1-page PDF with embedded TrueType fonts, 300-dpi PNG, parsable SVG, JSON."""
    assert set(files) == {f"{stem}.{e}" for e in ("pdf", "png", "svg", "json")}
    pdf = PdfReader(io.BytesIO(files[f"{stem}.pdf"]))
    assert len(pdf.pages) == 1
    fonts = _fonts(pdf.pages[0])
    assert fonts, "the PDF holds text, so it must hold fonts"
    leaves = [f for f in fonts if f.get("/Subtype") != "/Type0"]
    assert leaves and all("/FontFile2" in f["/FontDescriptor"].get_object() for f in leaves)  # TrueType, embedded
    png = Image.open(io.BytesIO(files[f"{stem}.png"]))
    assert png.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    root = ET.fromstring(files[f"{stem}.svg"])
    assert root.tag.endswith("svg") and any(e.tag.endswith("text") for e in root.iter())  # text kept as text
    caption = json.loads(files[f"{stem}.json"])
    assert caption["figure"] and caption["versions"]["matplotlib"] and caption["versions"]["torch"]
    return png


@pytest.fixture(scope="module")
def tiny_records():
    """Image records of 3 CIFAR gallery images × 2 methods on a tiny fixed CNN (fast, exact)."""
    from helpers import tiny_classifier

    model = tiny_classifier()
    cfg = build_config({"patch": 8, "steps": 2})
    return figure_grid.grid_records(model, CIFAR, ["fgsm", "sd-sgsm"], cfg)


def test_grid_of_three_images_and_two_methods_has_the_expected_panels(tiny_records):
    rows, names = tiny_records
    cols = figures.parse_columns(None)
    shared, per, panels = figures.grid_layout(3, 2, cols)
    assert (shared, per, panels) == (2, 2, 18)
    fig = figures.build(figures.grid_figure, rows, names, ["fgsm", "sd-sgsm"], cols)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == panels
    # the panels form a 3 × 6 lattice: 3 distinct rows, 6 distinct columns, all the same size
    xs = sorted({round(ax.get_position().x0, 4) for ax in image_axes})
    ys = sorted({round(ax.get_position().y0, 4) for ax in image_axes})
    assert len(xs) == 6 and len(ys) == 3
    assert len({(round(ax.get_position().width, 4), round(ax.get_position().height, 4)) for ax in image_axes}) == 1
    texts = [t.get_text() for t in fig.texts]
    assert method_label("fgsm") in texts and method_label("sd-sgsm") in texts  # method headers: display names
    png = check_files(figures.figure_files(fig, "grid", {"images": CIFAR}, "grid"), "grid")
    w_in, h_in = fig.get_size_inches()
    assert png.size == (round(w_in * 300), round(h_in * 300))
    every = figures.build(figures.grid_figure, rows, names, ["fgsm", "sd-sgsm"], tuple(figures.COLUMNS))
    assert len([ax for ax in every.axes if ax.images]) == 3 * (2 + 2 * 3)


def test_grid_columns_are_checked():
    assert figures.parse_columns("budget,original") == ("original", "budget")
    with pytest.raises(ValueError, match="Unknown grid column 'blob'"):
        figures.parse_columns("original,blob")


def test_radar_bars_and_sweep_figures_render(tiny_cnn, rand_images):
    res = run_benchmark(tiny_cnn, rand_images, None, ["fgsm", "sd-sgsm", "pgd"], build_config({"patch": 8}),
                        criterion="all")
    rows = res.summary.to_dict("records")
    radar = figures.build(figures.radar_figure, rows)
    assert len(radar.axes[0].lines) == 3
    check_files(figures.figure_files(radar, "radar", {}, "radar"), "radar")
    bars = figures.build(figures.bars_figure, rows)
    assert len(bars.axes) == 5 and all(len(ax.patches) == 3 for ax in bars.axes)
    check_files(figures.figure_files(bars, "bars", {}, "bars"), "bars")
    sweep = run_sweep(tiny_cnn, rand_images, None, ["fgsm", "sd-sgsm"], [Axis("eps", (0.0, 4 / 255, 12 / 255))],
                      {"patch": 8}, criterion="all")
    fig = figures.build(figures.sweep_figure, sweep.points, ["eps"])
    assert sum(len(ax.lines) for ax in fig.axes) >= 6 * 2
    assert "fair cap" in fig._supxlabel.get_text()  # 12/255 lifts ε_max: the plot says so
    check_files(figures.figure_files(fig, "sweep", sweep.config, "sweep"), "sweep")
    two = run_sweep(tiny_cnn, rand_images[:2], None, ["sd-sgsm"],
                    [Axis("eps_weak", (0.0, 4 / 255)), Axis("eps_strong", (2 / 255, 8 / 255))], {"patch": 8},
                    criterion="all")
    heat = figures.build(figures.sweep_figure, two.points, ["eps_weak", "eps_strong"])
    z = np.ma.filled(heat.axes[0].images[0].get_array().astype(float), np.nan)
    assert z.shape == (2, 2) and np.isnan(z[1, 0]) and np.isfinite(z[0]).all()  # ε_weak 4 > ε_strong 2: blank
    assert not two.points["valid"].iloc[2] and "ε_weak" in two.points["note"].iloc[2]


def test_cli_figure_grid_and_bad_values(tmp_path, capsys):
    out = tmp_path / "g"
    rc = main(["figure", "grid", "--images", "imagenet/imagenet_00_243.jpg", "--methods", "fgsm,sd-sgsm",
               "--patch", "112", "--steps", "1", "--columns", "original,adversarial,perturbation,budget",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    check_files(files, "grid")
    caption = json.loads(files["grid.json"])
    assert caption["panels"] == 1 + 2 * 3 and caption["parameters"]["patch"] == 112
    assert caption["seed"] == 0 and caption["model"] == "efficientnet_lite0"
    rc = main(["sweep", "--param", "eps", "--values", "0:26/255", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "start:stop:count" in err
    rc = main(["figure", "radar", "--results", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r")])
    assert rc == 2 and "results.csv" in capsys.readouterr().err


def test_figure_from_a_results_csv(tmp_path, tiny_cnn, rand_images):
    res = run_benchmark(tiny_cnn, rand_images, None, ["fgsm", "sd-fgsm"], build_config({"patch": 8}),
                        criterion="all")
    csv = tmp_path / "results.csv"
    csv.write_bytes(res.summary.to_csv(index=False).encode())
    for kind in ("radar", "bars"):
        assert main(["figure", kind, "--results", str(csv), "--out", str(tmp_path / kind)]) == 0
        check_files({p.name: p.read_bytes() for p in (tmp_path / kind).iterdir()}, kind)




def test_matrix_figure_annotates_every_finite_cell_and_leaves_nan_blank():
    import pandas as pd

    from sdsgsm.render import viz

    df = pd.DataFrame([[10.0, np.nan], [30.0, 40.0]], index=pd.Index(["fgsm", "pgd"], name="attack"),
                      columns=pd.Index(["none", "jpeg"], name="defence"))
    fig = figures.build(figures.matrix_figure, [("non-adaptive", df), ("adaptive", df + 1)], "ASR (%)")
    texts = [t.get_text() for ax in fig.axes[:2] for t in ax.texts]
    assert texts == ["10", "30", "40", "11", "31", "41"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["non-adaptive", "adaptive"]
    files = figures.figure_files(fig, "m", {"kind": "test"}, "matrix", formats=("png",))
    assert files["m.png"][:8] == b"\x89PNG\r\n\x1a\n"
    live = viz.matrix_figure([("a", df)], "ASR (%)")
    assert live.data[0].text[0] == ["10", ""] and list(live.data[0].y) == [method_label("fgsm"), method_label("pgd")]
