"""One vocabulary for users and readers: no private references, display names for methods,
one scale per metric, class names for images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# user-facing sources: the package (with the app's pages and Home), the README and the docs (tests keep their own
# words)
_SOURCES = sorted([*ROOT.joinpath("sdsgsm").rglob("*.py"), *ROOT.joinpath("docs").rglob("*.md"),
                   ROOT / "README.md", ROOT / "mkdocs.yml"])
# private references a user cannot follow: the project's own notes, source files and issue numbers
_PRIVATE = [re.compile(p) for p in (
    r"(?i)\bseed's\b", r"(?i)\bthe seed\b(?!\s*(=|\d|value))", r"(?i)fgsm-patch seed", r"(?i)\bsurvey\b",
    r"\bDESIGN\b", r"(?i)\bissue [12]\b", r"Majlesi", r"\.\./shared", r"\bseeds/",
)]


def test_no_private_references_in_user_facing_text():
    found = []
    for path in _SOURCES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern in _PRIVATE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "private references:\n" + "\n".join(found)


# ----------------------------------------------------------------------------- method names
def _summary_rows(methods):
    from sdsgsm.metrics import summary_keys

    return [{**dict.fromkeys(summary_keys(), 0.5), "method": m, "n": 3} for m in methods]


def test_tables_show_display_names_not_keys():
    from sdsgsm.attacks import METHODS, method_label
    from sdsgsm.render.tables import metric_table

    cells = metric_table(_summary_rows(list(METHODS))).cells
    assert list(cells["Method"]) == [method_label(m) for m in METHODS]
    assert "MI-FGSM" in set(cells["Method"]) and "MIFGSM" not in set(cells["Method"])


def test_benchmark_tables_show_display_names_and_budgets_in_255ths():
    import math

    import pandas as pd

    from sdsgsm.attacks import method_label
    from sdsgsm.experiments.benchmark import BenchmarkResult, results_latex, results_markdown
    from sdsgsm.params import format_budget

    rows = [{**r, "steps": 1, "eps": 8 / 255, "eps_weak": math.nan, "complete": True}
            for r in _summary_rows(["mifgsm", "sd-sgsm"])]
    cfg = {"model": "m", "data": "d", "n_total": 3, "n_clean_correct": 3, "clean_accuracy": 1.0, "device": "cpu",
           "device_name": "cpu", "batch_size": 1, "seed": 0, "criterion_text": "crit"}
    md = results_markdown(BenchmarkResult(pd.DataFrame(rows), pd.DataFrame(), cfg))
    for m in ("mifgsm", "sd-sgsm"):
        assert f"| {method_label(m)} |" in md
    assert "MIFGSM" not in md and "SD-SGSM" in md and f"| {format_budget(8 / 255)} |" in md
    assert "L∞ Norm (×1/255)" in md and "127.50" in md  # L∞ 0.5 shown as 127.50/255, the scale in the header
    assert "MI-FGSM" in results_latex(BenchmarkResult(pd.DataFrame(rows), pd.DataFrame(), cfg))


def test_figures_show_display_names():
    import pandas as pd

    from sdsgsm.attacks import method_label
    from sdsgsm.render import figures

    rows = _summary_rows(["fgsm", "mifgsm"])
    for builder in (figures.radar_figure,):
        fig = figures.build(builder, rows)
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["FGSM", "MI-FGSM"]
    fig = figures.build(figures.bars_figure, rows)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [method_label("fgsm"), method_label("mifgsm")]
    frame = pd.DataFrame([[1.0]], index=pd.Index(["sd-sgsm"], name="attack"), columns=pd.Index(["jpeg"]))
    fig = figures.build(figures.matrix_figure, [("mifgsm", frame)], "ASR (%)")
    assert fig.axes[0].get_title() == "MI-FGSM"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["SD-SGSM"]


# ----------------------------------------------------------------------------- units
def test_one_scale_per_metric_stated_in_its_header():
    from sdsgsm.metrics import METRICS, format_metric
    from sdsgsm.params import format_budget

    assert format_metric("linf", 8 / 255) == "8.00/255" and format_budget(8 / 255) == "8/255"
    assert METRICS["linf"].header == "L∞ Norm (×1/255)"
    assert format_metric("asr", 0.9) == "90.0 %" and format_metric("l2", float("nan")) == "–"
    for m in METRICS.values():  # a display scale other than 1 is always said in the header
        if m.scale != 1:
            assert m.unit in ("%", "×1/255") or "×1e3" in m.label, m.key
        assert format_metric(m.key, 0.25, unit=False) == f"{0.25 * m.scale:.{m.digits}f}"


# ----------------------------------------------------------------------------- class names
def test_gallery_images_are_named_by_class():
    from sdsgsm.data import CIFAR10_CLASSES, gallery, image_title

    items = gallery("imagenet") + gallery("cifar10")
    assert items
    for item in items:
        title = image_title(item.key)
        assert title and title != item.path.stem, item.key
        if item.dataset == "cifar10":
            assert title == CIFAR10_CLASSES[item.label]
    assert image_title("some/folder/my_photo.png") == "my_photo"


# ----------------------------------------------------------------------------- figures for a paper
def test_matrix_figures_are_a_grid_with_n_in_every_cell_and_a_warning_for_small_n():
    import numpy as np
    import pandas as pd

    from sdsgsm.render import figures

    idx = pd.Index(["lite0", "lite1", "lite2"], name="source")
    panels = [(m, pd.DataFrame(np.full((3, 3), 50.0), index=idx, columns=idx))
              for m in ("fgsm", "ifgsm", "pgd", "mifgsm", "nifgsm", "tifgsm", "sd-sgsm")]
    counts = [pd.DataFrame(np.full((3, 3), 12), index=idx, columns=idx) for _ in panels]
    counts[0].iloc[0, 0] = 4
    assert figures.matrix_layout(7) == (3, 3)
    fig = figures.build(figures.matrix_figure, panels, "ASR (%)", counts=counts)
    w, h = fig.get_size_inches()
    assert 0.5 < w / h < 2.5  # not a strip
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("n=" in t for t in texts) == 7 * 9 and "50\nn=4*" in texts
    assert "fewer than 10" in fig._supxlabel.get_text()
    fine = [pd.DataFrame(np.full((3, 3), 20), index=idx, columns=idx) for _ in panels]
    assert figures.build(figures.matrix_figure, panels, "ASR (%)", counts=fine)._supxlabel is None


def _sweep_points():
    import pandas as pd

    from sdsgsm.metrics import summary_keys

    rows = []
    for method in ("fgsm", "ifgsm"):
        for e in (0, 4, 8):  # identical lines; accuracy 0 and ASR 100 % everywhere, L2 varies
            rows.append({**dict.fromkeys(summary_keys(), 0.0), "method": method, "eps": e / 255, "valid": True,
                         "asr": 1.0, "acc_adv": 0.0, "l2_mean": float(e), "ssim_mean": 1.0})
    return pd.DataFrame(rows)


def test_sweep_percentages_stay_in_0_to_100_and_lines_stay_distinguishable():
    from sdsgsm.metrics import METRICS
    from sdsgsm.render import figures

    pts = _sweep_points()
    assert figures.default_sweep_metric(pts) == "l2"  # the first one that varies, not the flat accuracy
    fig = figures.build(figures.sweep_figure, pts, ["eps"])
    for ax, key in zip(fig.axes, figures.SWEEP_METRICS):
        if METRICS[key].unit == "%":
            lo, hi = ax.get_ylim()
            assert -5 <= lo <= 0 and 100 <= hi <= 105, (key, lo, hi)
        a, b = ax.get_lines()[:2]
        assert (a.get_linestyle(), a.get_linewidth()) != (b.get_linestyle(), b.get_linewidth())
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["FGSM", "I-FGSM"]


def test_no_tile_box_on_a_uniform_or_zero_perturbation():
    import numpy as np

    from sdsgsm.render.figures import salient_tiles

    boxes = np.array([[0, 0, 8, 8], [8, 8, 8, 8]])
    uniform = np.full((32, 32, 3), 0.5 + 5 * 8 / 255)
    assert len(salient_tiles(uniform, boxes)) == 0
    assert len(salient_tiles(np.full((32, 32, 3), 0.5), boxes)) == 0
    local = np.full((32, 32, 3), 0.5 + 0.01)
    local[0:8, 0:8] = 0.9
    assert salient_tiles(local, boxes).tolist() == [[0, 0, 8, 8]]


# ----------------------------------------------------------------------------- CLI help
def _helps():
    from sdsgsm.cli import build_parser
    from sdsgsm.cli.common import _leaf_parsers

    return {path: p.format_help() for path, p in _leaf_parsers(build_parser())}


def test_every_sub_command_has_a_usage_example():
    from sdsgsm.cli.common import PROG

    helps = _helps()
    assert {"attack", "benchmark", "figure grid", "sweep", "transfer", "defend"} <= set(helps)
    for path, text in helps.items():
        assert "examples:" in text and f"{PROG} {path} " in text, path


def test_help_lists_registry_choices_and_tells_the_two_patches_apart(capsys):
    from sdsgsm.attacks import METHODS
    from sdsgsm.cli import main
    from sdsgsm.models import available_models

    helps = _helps()
    flat = {path: " ".join(text.split()) for path, text in helps.items()}
    for path in ("attack", "benchmark", "figure grid"):
        for m in available_models():
            assert m.name in flat[path], (path, m.name)
    for path in ("benchmark", "sweep", "defend", "transfer", "figure grid"):
        for name in METHODS:
            assert name in flat[path], (path, name)
    text = flat["attack"]
    assert "occlusion scan" in text and "not the adversarial patch (--patch-size)" in text
    assert "not the scan window m (--patch)" in text
    with pytest.raises(SystemExit) as done:
        main(["benchmark", "--help"])
    assert done.value.code == 0 and "examples:" in capsys.readouterr().out
