"""Sweeps: value syntax, a point equals a single run exactly, one scan per image, Stop, coupling."""

import json

import numpy as np
import pytest

import sdsgsm.experiments.sweep
from sdsgsm.attacks import build_config
from sdsgsm.cli import main
from sdsgsm.experiments.benchmark import run_benchmark
from sdsgsm.experiments.report import attack_tensor
from sdsgsm.experiments.sweep import Axis, parse_values, point_values, run_sweep
from sdsgsm.metrics import metric_list

COMPARED = [m.source for m in metric_list() if m.unit != "s"]  # every registry metric but the timings


def test_value_syntax_ranges_lists_and_one_line_errors():
    eps = parse_values("eps", "0:26/255:14")
    assert len(eps) == 14 and eps[0] == 0 and eps[1] == pytest.approx(2 / 255) and eps[-1] == pytest.approx(26 / 255)
    assert parse_values("steps", "1, 2,10") == (1, 2, 10)
    assert parse_values("patch", "0,8") == (None, 8)  # 0 = auto, as everywhere
    assert parse_values("eps", "0.01:0.1:10")[-1] == pytest.approx(0.1)
    for name, bad, match in [("eps", "0:26/255", "start:stop:count"), ("eps", "a,b", "Bad values"),
                             ("eps", "0:1/255:0", "count"), ("steps", "1.5", "integers"),
                             ("eps", "0:1:3", "outside"), ("omega", "-1", "outside"), ("region", "1", "Cannot sweep")]:
        with pytest.raises(ValueError, match=match) as info:
            parse_values(name, bad)
        assert "\n" not in str(info.value)


def test_eps_sweep_couples_spatial_budgets_and_lifts_eps_max():
    base = {"eps_strong": 8 / 255, "eps_weak": 2 / 255, "eps_max": 8 / 255, "eps": 8 / 255}
    v = point_values(base, {"eps": 16 / 255}, spatial=True)
    assert v["eps_strong"] == 16 / 255 and v["eps_weak"] == pytest.approx(4 / 255) and v["eps_max"] == 16 / 255
    assert point_values(base, {"eps": 4 / 255}, spatial=False) == {**base, "eps": 4 / 255}


@pytest.fixture
def scan_counter(monkeypatch):
    calls = []
    real = sdsgsm.experiments.sweep.occlusion_scan

    def counting(model, x, cfg, **kwargs):
        calls.append(len(x))
        return real(model, x, cfg, **kwargs)

    monkeypatch.setattr(sdsgsm.experiments.sweep, "occlusion_scan", counting)
    return calls


def test_ten_point_eps_sweep_scans_each_image_once(tiny_cnn, rand_images, scan_counter):
    res = run_sweep(tiny_cnn, rand_images, None, ["sd-sgsm", "fgsm", "sd-fgsm"],
                    [Axis("eps", parse_values("eps", "0:18/255:10"))], {"patch": 8, "steps": 2}, batch_size=1,
                    criterion="all")
    assert len(res.points) == 10 * 3 and res.points["valid"].all()
    assert scan_counter == [1] * len(rand_images)  # one scan per image for 10 points × 2 spatial methods
    assert res.config["n_scans"] == len(rand_images)
    assert res.points["lifted"].sum() == 3 * 5  # 10/255 … 18/255 lift ε_max above 8/255
    patch = run_sweep(tiny_cnn, rand_images, None, ["sd-fgsm"], [Axis("patch", (4, 8, 16))], batch_size=4,
                      criterion="all")
    assert len(scan_counter) == len(rand_images) + 3 and patch.config["n_scans"] == 3  # a new m is a new scan


@pytest.mark.slow
def test_a_sweep_point_equals_a_single_run_exactly(lite0, imagenet_batch):
    x, y, keys = imagenet_batch
    x, y = x[:2], y[:2]
    base = {"patch": 112, "steps": 2}
    axes = [Axis("eps", (2 / 255, 6 / 255))]
    res = run_sweep(lite0, x, y, ["fgsm", "sd-sgsm", "pgd"], axes, base, batch_size=2, criterion="all")
    for p_i, eps in enumerate(axes[0].values):
        for method in ("fgsm", "sd-sgsm", "pgd")[p_i:]:  # the second point: sd-sgsm and pgd
            cfg = build_config(point_values(_defaults(base), {"eps": eps}, spatial=method == "sd-sgsm"))
            bench = run_benchmark(lite0, x, y, [method], cfg, batch_size=2, criterion="all")
            got = res.per_sample[(res.per_sample["point"] == p_i) & (res.per_sample["method"] == method)]
            assert np.array_equal(got[COMPARED].to_numpy(float), bench.per_sample[COMPARED].to_numpy(float),
                                  equal_nan=True), method
            row = res.points[(res.points["eps"] == eps) & (res.points["method"] == method)].iloc[0]
            assert row["l2_mean"] == bench.summary["l2_mean"].item() and row["asr"] == bench.summary["asr"].item()
            if method == "sd-sgsm":  # deterministic: the single-image run of the Explorer/CLI gives the same numbers
                for i in range(p_i, 2):
                    one = attack_tensor(lite0, x[i:i + 1], cfg, method, int(y[i]))
                    sample = got.iloc[i]
                    assert one.summary["metrics"]["l2"] == pytest.approx(sample["l2"], rel=1e-5, abs=1e-7)
                    assert one.summary["metrics"]["success"] == bool(sample["success"])


def _defaults(base):
    from sdsgsm.params import PARAMS

    return {n: p.default for n, p in PARAMS.items()} | base


def test_stop_keeps_finished_points_and_invalid_points_are_rows(tiny_cnn, rand_images):
    polls = []

    def stop():
        polls.append(1)
        return len(polls) > 3

    res = run_sweep(tiny_cnn, rand_images, None, ["fgsm"], [Axis("eps", (0.0, 2 / 255, 4 / 255, 6 / 255))],
                    batch_size=2, criterion="all", should_stop=stop)
    assert res.stopped and list(res.points["eps"]) == [0.0, 2 / 255]  # 2 batches per point, stopped in the third
    two = run_sweep(tiny_cnn, rand_images, None, ["sd-fgsm"],
                    [Axis("eps_weak", (2 / 255, 6 / 255)), Axis("eps_strong", (4 / 255,))], {"patch": 8},
                    criterion="all")
    assert list(two.points["valid"]) == [True, False] and np.isnan(two.points["asr"].iloc[1])
    with pytest.raises(ValueError, match="one parameter or two"):
        run_sweep(tiny_cnn, rand_images, None, ["fgsm"], [Axis("eps", (0.0,))] * 2)


@pytest.mark.slow
def test_cli_sweep_writes_csv_json_and_figure_then_replots(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["sweep", "--param", "eps", "--values", "0:8/255:3", "--methods", "fgsm", "--data", "gallery",
               "--limit", "2", "--batch-size", "2", "--criterion", "all", "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"sweep.csv", "sweep_per_sample.csv", "sweep.json", "sweep.pdf", "sweep.png", "sweep.svg"} <= names
    config = json.loads((out / "sweep.json").read_text())
    assert config["n_points"] == 3 and config["n_total"] == 2 and config["seed"] == 0
    rc = main(["figure", "sweep", "--from", str(out / "sweep.csv"), "--out", str(tmp_path / "again")])
    assert rc == 0 and (tmp_path / "again" / "sweep.pdf").stat().st_size > 0
    rc = main(["sweep", "--param", "eps", "--values", "0:8/255:3", "--param", "omega", "--out", str(out)])
    assert rc == 2 and "--param NAME --values SPEC" in capsys.readouterr().err
