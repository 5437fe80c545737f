"""Metric registry, the one aggregator, the one table formatter, one colour per method and the
one output writer (paper §4.2, Fig. 3–6)."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from sdsgsm.attacks import METHODS, AttackConfig, method_label
from sdsgsm.experiments.benchmark import OUTPUT_FILES as BENCH_FILES
from sdsgsm.experiments.benchmark import (
    BenchmarkResult,
    _summary_row,
    benchmark_files,
    results_latex,
    results_markdown,
    write_benchmark,
)
from sdsgsm.experiments.report import OUTPUT_FILES, attack_tensor, image_files, image_record, write_outputs
from sdsgsm.metrics import (
    METRICS,
    Metrics,
    aggregate,
    l2_norms,
    metric_list,
    per_sample_metrics,
    summarise,
    summary_keys,
)
from sdsgsm.occlusion import ScanConfig
from sdsgsm.render import viz
from sdsgsm.render.tables import metric_table, table_frame

# three hand-made samples; the third is attacked but not evaluated (clean prediction wrong)
ROWS = [
    {"evaluated": True, "success": True, "l2": 1.0, "linf": 0.01, "ssim": 0.90,
     "time_s": 0.3, "scan_time_s": 0.1, "attack_time_s": 0.2, "adv_correct": False},
    {"evaluated": True, "success": False, "l2": 3.0, "linf": 0.03, "ssim": 0.96,
     "time_s": 0.5, "scan_time_s": 0.1, "attack_time_s": 0.4, "adv_correct": True},
    {"evaluated": False, "success": True, "l2": 100.0, "linf": 0.5, "ssim": 0.0,
     "time_s": 1.0, "scan_time_s": 0.1, "attack_time_s": 0.9, "adv_correct": False},
]
EVALUATED_STATS = [k for m in METRICS.values() if m.over == "evaluated" for k in m.summary_keys]
TIME_STATS = [k for m in METRICS.values() if m.over == "attacked" for k in m.summary_keys]


def same(a: dict, b: dict, keys) -> bool:
    return all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k]) for k in keys)


# ----------------------------------------------------------------------------- registry
def test_registry_is_complete_and_every_metric_reaches_the_tables():
    assert {"asr", "l2", "linf", "ssim", "time_s", "scan_time_s", "attack_time_s"} <= set(METRICS)
    for key, m in METRICS.items():
        assert m.key == key and m.label and isinstance(m.unit, str) and m.better in ("higher", "lower")
        assert isinstance(m.digits, int) and m.digits >= 0 and callable(m.per_sample) and m.scale > 0
    assert METRICS["asr"].higher and METRICS["ssim"].higher and not METRICS["time_s"].higher
    assert [m.key for m in metric_list("radar")] == ["asr", "l2", "linf", "ssim", "time_s"]
    row = {"method": "fgsm", **summarise(ROWS)}
    frame = table_frame([row])
    assert list(frame.columns) == ["Method", "n", *(m.header for m in METRICS.values())]
    assert set(summary_keys()) == set(summarise(ROWS))
    result = BenchmarkResult(pd.DataFrame([{**row, "steps": 1, "eps": 8 / 255, "eps_weak": math.nan,
                                            "complete": True}]), pd.DataFrame(), _CFG)
    md, tex = results_markdown(result), results_latex(result)
    for m in metric_list("paper"):
        assert f"| {m.header} " in md and m.tex_header in tex


def test_per_sample_metrics_from_an_attack_result():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g)
    x_adv = (x + 0.02 * torch.randn(3, 3, 8, 8, generator=g)).clamp(0, 1)
    result = SimpleNamespace(x_adv=x_adv, y=torch.tensor([1, 2, 3]), clean_pred=torch.tensor([1, 2, 0]),
                             adv_pred=torch.tensor([1, 5, 4]), scan_time_s=0.3, attack_time_s=0.9, time_s=1.2)
    df = per_sample_metrics(x, result)
    assert list(df.columns) == ["evaluated", *(m.source for m in METRICS.values())]
    assert df["evaluated"].tolist() == [True, True, False] and df["success"].tolist() == [False, True, True]
    assert np.allclose(df["l2"], l2_norms(x, x_adv)) and np.allclose(df["linf"], (x_adv - x).abs().amax((1, 2, 3)))
    assert np.allclose(df["time_s"], 0.4) and np.allclose(df["scan_time_s"], 0.1)
    assert np.allclose(df["attack_time_s"], 0.3)  # batch seconds / N
    assert per_sample_metrics(x, result, "all")["evaluated"].all()


# ----------------------------------------------------------------------------- aggregator
def test_summarise_exact_means_and_population_stds():
    s = summarise(ROWS)
    spread = math.sqrt(((0.3 - 0.6) ** 2 + (0.5 - 0.6) ** 2 + (1.0 - 0.6) ** 2) / 3)  # ddof = 0
    expected = {"n": 2, "n_attacked": 3, "asr": 0.5, "l2_mean": 2.0, "l2_std": 1.0, "linf_mean": 0.02,
                "linf_std": 0.01, "linf_max": 0.03, "ssim_mean": 0.93, "ssim_std": 0.03,
                "time_s_mean": 0.6, "time_s_std": spread, "scan_time_s_mean": 0.1, "scan_time_s_std": 0.0,
                "attack_time_s_mean": 0.5, "attack_time_s_std": spread, "acc_adv": 0.5}
    assert list(s) == summary_keys() and {k: s[k] for k in expected} == pytest.approx(expected)
    again = summarise(pd.DataFrame(ROWS))  # DataFrame or result.json dicts
    assert {k: again[k] for k in expected} == pytest.approx(expected)


def test_time_is_averaged_over_every_attacked_sample():
    s = summarise(ROWS)
    assert s["time_s_mean"] == pytest.approx(0.6) != pytest.approx(0.4)  # 0.4 = evaluated samples only
    assert s["time_s_mean"] == pytest.approx(s["scan_time_s_mean"] + s["attack_time_s_mean"])


def test_no_evaluated_sample_gives_nan_never_a_fallback():
    s = summarise([{**r, "evaluated": False} for r in ROWS])
    assert s["n"] == 0 and s["n_attacked"] == 3
    assert all(math.isnan(s[k]) for k in EVALUATED_STATS) and "asr" in EVALUATED_STATS
    assert s["time_s_mean"] == pytest.approx(0.6)  # time was still spent on the three samples
    empty = summarise([])
    assert empty["n"] == empty["n_attacked"] == 0 and all(math.isnan(empty[k]) for k in EVALUATED_STATS + TIME_STATS)
    assert metric_table([{"method": "x", **s}]).cells.loc[0, "ASR (%)"] == "–"


def test_every_aggregation_path_is_the_one_aggregator():
    df = pd.DataFrame(ROWS)
    one = summarise(df)
    assert same(Metrics(df, "clean_correct").summary(), one, summary_keys())
    assert same(aggregate("fgsm", ROWS), one, summary_keys())
    info = {"device": "cpu", "model": "m", "data": "d", "n_total": 3, "criterion": "clean_correct"}
    assert same(_summary_row("fgsm", df, AttackConfig(), True, info), one, summary_keys())
    nobody = pd.DataFrame([{**r, "evaluated": False} for r in ROWS])
    for path in (Metrics(nobody, "all").summary(), aggregate("fgsm", nobody.to_dict("records")),
                 _summary_row("fgsm", nobody, AttackConfig(), True, info)):
        assert same(path, summarise(nobody), summary_keys())


# ----------------------------------------------------------------------------- table formatter
_CFG = {"model": "m", "data": "d", "n_total": 5, "n_clean_correct": 5, "clean_accuracy": 1.0, "device": "cpu",
        "device_name": "cpu", "batch_size": 1, "seed": 0, "criterion_text": "crit"}


def _summary(method, asr, l2, l2_std, linf, ssim, time_s):
    return {"method": method, "n": 5, "asr": asr, "l2_mean": l2, "l2_std": l2_std, "linf_mean": linf,
            "linf_std": 0.0, "ssim_mean": ssim, "ssim_std": 0.0, "time_s_mean": time_s}


def test_table_bolds_the_best_per_column_in_the_registry_direction():
    rows = [_summary("a", 0.8, 1.0, 0.1, 0.03, 0.95, 0.2), _summary("b", 0.6, 0.5, 0.0, 0.03, 0.99, 0.4),
            _summary("c", math.nan, math.nan, math.nan, math.nan, math.nan, 0.3)]
    table = metric_table(rows, "paper")
    assert table.cells.loc[0, "L2 Norm"] == "1.000 ± 0.100" and table.cells.loc[1, "L2 Norm"] == "0.500"
    assert table.cells.loc[2].tolist()[2:6] == ["–"] * 4
    best = {col: [r for r in range(3) if table.best.loc[r, col]] for col in table.cells.columns[2:]}
    assert best == {"ASR (%)": [0], "ASR 8-bit (%)": [], "L2 Norm": [1], "L∞ Norm (×1/255)": [0, 1], "SSIM": [1],
                    "Ω": [], "Ω_n ×1e3": [], "Total time (s)": [0]}  # no roughness or 8-bit ASR: nothing bold
    md = table.markdown().splitlines()
    assert "| **80.0** |" in md[2] and "| **0.500** |" in md[3] and "**0.9900**" in md[3] and "**0.200**" in md[2]
    assert "**60.0**" not in md[3] and "**1.000" not in md[2] and "**–**" not in md[4]
    tex = table.latex("cap")
    assert r"\textbf{80.0}" in tex and r"1.000 $\pm$ 0.100" in tex and r"\toprule" in tex and "--" in tex
    assert "**" not in "".join(table.cells.to_numpy().ravel())  # the app's frame: plain display strings


# ----------------------------------------------------------------------------- colours
def test_one_colour_per_method_in_radar_and_bars():
    colours = viz.method_colours()
    assert list(colours) == list(METHODS) and len(set(colours.values())) == len(METHODS)
    rows = [{**_summary(m, 0.5 + i / 10, 1.0 + i, 0.1, 0.03, 0.9, 0.1 + i), "time_s_std": 0.0}
            for i, m in enumerate(["sd-sgsm", "fgsm", "pgd"])]
    radar, bars = viz.radar_figure(rows), viz.bars_figure(rows)
    for i, row in enumerate(rows):
        assert radar.data[i].name == method_label(row["method"])
        assert radar.data[i].line.color == bars.data[0].marker.color[i] == colours[row["method"]]
    assert all(list(t.marker.color) == [colours[r["method"]] for r in rows] for t in bars.data)
    alone = viz.radar_figure(rows[2:])
    assert alone.data[0].line.color == colours["pgd"]  # the colour does not depend on the other rows


def test_radar_uses_total_time_and_registry_labels():
    rows = [{**_summary("fgsm", 0.5, 1.0, 0.0, 0.03, 0.9, 0.2), "scan_time_s_mean": 0.15, "attack_time_s_mean": 0.05},
            {**_summary("pgd", 0.5, 1.0, 0.0, 0.03, 0.9, 0.4), "scan_time_s_mean": 0.0, "attack_time_s_mean": 0.4}]
    fig = viz.radar_figure(rows)
    assert list(fig.data[0].theta[:5]) == ["ASR ↑", "L2 Norm ↓", "L∞ Norm ↓", "SSIM ↑", "Total time ↓"]
    assert fig.data[1].r[4] == pytest.approx(0.5)  # 0.2 / 0.4 on total time (attack time alone: 0.125)
    bars = viz.bars_figure(rows)
    assert [a.text for a in bars.layout.annotations] == [m.header for m in metric_list("radar")]
    assert list(bars.data[0].y) == pytest.approx([50.0, 50.0])  # ASR at its display scale (%)


# ----------------------------------------------------------------------------- output writer
@pytest.fixture(scope="module")
def report():
    from helpers import tiny_classifier

    model = tiny_classifier()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    return attack_tensor(model, x, AttackConfig(steps=2, alpha=2 / 255, scan=ScanConfig(patch=8)), "sd-sgsm")


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_writer_gives_the_same_bytes_and_the_full_file_set(report, tmp_path):
    files = image_files(image_record(report))
    assert list(files) == list(OUTPUT_FILES) and all(isinstance(v, bytes) and v for v in files.values())
    assert image_files(image_record(report)) == files  # deterministic: no timestamps anywhere
    paths = write_outputs(report, tmp_path)
    assert [p.name for p in paths] == list(OUTPUT_FILES) and all(p.read_bytes() == files[p.name] for p in paths)
    summary = json.loads(files["result.json"])
    m = summary["metrics"]
    assert m["time_s"] == pytest.approx(m["scan_time_s"] + m["attack_time_s"]) and m["scan_time_s"] > 0
    assert files["metrics.csv"].decode().splitlines()[0].split(",")[6:-1] == [
        "evaluated", *(mm.source for mm in METRICS.values())]
    arrays = np.load(io.BytesIO(files["arrays.npz"]))
    assert np.array_equal(arrays["x_adv"], report.result.x_adv.numpy())
    assert np.abs(_pixels(files["adversarial.png"]) / 255 - image_record(report)["adversarial"]).max() <= 0.5 / 255


def test_saliency_png_is_the_heat_map_blended_over_the_photo(report):
    rec = image_record(report)
    files = image_files(rec)
    pure = _pixels(viz.png_bytes(viz.saliency_image(rec["saliency_map"], rec["region_boxes"])))
    blended = _pixels(files["saliency.png"])
    assert np.abs(blended - pure).mean() > 10  # the photo shows through
    heat = 0.6 * viz.colormap(rec["saliency_map"]) + 0.4 * rec["original"]
    expected = viz.draw_boxes(viz.to_pil(heat), rec["region_boxes"], viz.RED)
    assert np.array_equal(blended, np.asarray(expected, dtype=np.int16))
    top, left, h, w = rec["region_boxes"][0]
    assert tuple(blended[top, left + w // 2]) == viz.RED  # red region box
    tiles = _pixels(files["perturbation_x5.png"])
    top, left, h, w = rec["tile_boxes"][0]
    assert tuple(tiles[top, left + w // 2]) == viz.YELLOW  # yellow top-perturbation tile


def test_benchmark_files_are_deterministic_and_written_as_given(tmp_path):
    summary = pd.DataFrame([{**_summary("fgsm", 0.8, 1.0, 0.1, 0.03, 0.95, 0.2), "steps": 1, "eps": 8 / 255,
                             "eps_weak": math.nan, "complete": True}])
    result = BenchmarkResult(summary, pd.DataFrame([{"method": "fgsm", **ROWS[0]}]), {**_CFG, "x": 1})
    files = benchmark_files(result)
    assert list(files) == list(BENCH_FILES) and benchmark_files(result) == files
    paths = write_benchmark(result, tmp_path / "out")
    assert all(p.read_bytes() == files[p.name] for p in paths) and len(paths) == len(BENCH_FILES)
    assert files["results.md"].decode() == results_markdown(result)
