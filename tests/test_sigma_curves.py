"""SmoothFool's σ_g curves (sdsgsm.experiments.sigma_curves, the sigma-curves command) and SmoothFool in the
transfer matrix and the defence grid, on 2 images and 2 σ_g values.

No test asserts the shape of a curve: on two images L2 need not grow with σ_g."""

from __future__ import annotations

import pytest
import torch

from sdsgsm.attacks import build_config, run_attack
from sdsgsm.experiments.sigma_curves import (
    COLUMNS,
    kernel_axis,
    kernel_side,
    markdown,
    parse_kernels,
    parse_sigmas,
    run_sigma_curves,
)
from sdsgsm.metrics import evaluate
from sdsgsm.params import PARAMS, SF_KERNELS, TRANSFER_PARAMS

SIGMAS = (1.0, 2.0)


# ----------------------------------------------------------------------------- parsing (no model)
def test_kernel_side_is_the_gaussian_width_and_pairs_sigma_5_with_k_25():
    assert [kernel_side(s) for s in (1, 2, 5, 10)] == [5, 11, 25, 51]
    assert kernel_axis("gaussian", SIGMAS).name == "sigma_g" and kernel_axis("gaussian", SIGMAS).values == SIGMAS
    assert kernel_axis("linear", SIGMAS).name == "sf_size" and kernel_axis("uniform", SIGMAS).values == (5, 11)


@pytest.mark.parametrize("bad", ["box", "gaussian,box", "", ","])
def test_a_bad_kernel_is_a_one_line_error_naming_the_valid_ones(bad):
    with pytest.raises(ValueError) as exc:
        parse_kernels(bad)
    assert "\n" not in str(exc.value) and all(k in str(exc.value) for k in SF_KERNELS)


@pytest.mark.parametrize("bad", ["abc", "", "0", "-1", f"{PARAMS['sigma_g'].hi * 2}", "1,x"])
def test_a_bad_sigma_is_a_one_line_error(bad):
    with pytest.raises(ValueError) as exc:
        parse_sigmas(bad)
    assert "\n" not in str(exc.value)


def test_parsing_keeps_order_and_drops_repeats():
    assert parse_kernels("linear, gaussian,linear") == ("linear", "gaussian")
    assert parse_kernels(None) == SF_KERNELS
    assert parse_sigmas("5, 1/2,5") == (5.0, 0.5)


# ----------------------------------------------------------------------------- on a tiny model
@pytest.mark.slow
def test_table_has_one_row_per_kernel_and_value(tiny_cnn, rand_images):
    res = run_sigma_curves(tiny_cnn, rand_images[:2], None, SIGMAS, SF_KERNELS, {"sf_max_iter": 1})
    t = res.table
    assert list(t.columns) == list(COLUMNS) and len(t) == len(SF_KERNELS) * len(SIGMAS)
    assert sorted(zip(t["kernel"], t["sigma_g"])) == sorted((k, s) for k in SF_KERNELS for s in SIGMAS)
    assert t["fooling_rate"].between(0, 100).all() and (t["n"] <= 2).all()
    assert (t["l2"] >= 0).all() and (t["seconds"] > 0).all()
    assert list(t[t.kernel == "linear"]["k"]) == [5, 11] and list(t[t.kernel == "gaussian"]["k"]) == [5, 11]
    assert not res.stopped and set(res.sweeps) == set(SF_KERNELS)
    assert markdown(t).count("\n") == len(t) + 2


def test_a_stop_keeps_the_finished_points(tiny_cnn, rand_images):
    calls = []

    def stop():  # polled before every batch: the first point of the first kernel runs, then stop
        calls.append(1)
        return len(calls) > 1

    res = run_sigma_curves(tiny_cnn, rand_images[:2], None, SIGMAS, ("gaussian", "linear"), {"sf_max_iter": 2},
                           should_stop=stop)
    assert res.stopped and list(res.table["kernel"]) == ["gaussian"] and list(res.table["sigma_g"]) == [1.0]


@pytest.mark.slow
def test_smoothfool_runs_through_transfer_with_and_without_linf_scaling(tiny_cnn, rand_images):
    from sdsgsm.ensemble import ModelSpec
    from sdsgsm.experiments.transfer import run_transfer, transfer_markdown

    pair = [(ModelSpec(("tiny",)), tiny_cnn)]
    cfg = build_config({"sf_max_iter": 1})
    x = rand_images[:2]
    raw = run_transfer(pair, pair, x, None, ["smoothfool", "deepfool"], cfg, batch_size=2)
    scale = 16 / 255
    scaled = run_transfer(pair, pair, x, None, ["smoothfool", "deepfool"], cfg, batch_size=2, scale_linf=scale)
    assert set(raw.summary["method"]) == {"smoothfool", "deepfool"} == set(scaled.summary["method"])
    assert TRANSFER_PARAMS["scale_linf"].default == 0 and raw.config["scale_linf"] == 0
    for res in (raw, scaled):
        assert res.summary["asr"].between(0, 1).all()
    linf = scaled.per_sample["linf"]
    assert (linf <= scale + 1e-6).all() and linf.max() == pytest.approx(scale, abs=1e-6)
    assert "16/255" in transfer_markdown(scaled) and "Scaling" not in transfer_markdown(raw)
    with pytest.raises(ValueError):
        run_transfer(pair, pair, x, None, ["deepfool"], cfg, scale_linf=-1.0)


def test_scale_to_linf_scales_each_sample_and_keeps_a_zero_perturbation():
    from sdsgsm.experiments.transfer import scale_to_linf

    x = torch.full((2, 3, 4, 4), 0.5)
    adv = x.clone()
    adv[0, 0, 0, 0] += 0.01
    adv[0, 1, 1, 1] -= 0.005
    out = scale_to_linf(x, adv, 0.1)
    assert (out[0] - x[0]).abs().max().item() == pytest.approx(0.1)
    assert (out[0, 1, 1, 1] - 0.5).item() == pytest.approx(-0.05)  # the direction and ratios are kept
    assert torch.equal(out[1], x[1])


@pytest.mark.slow
def test_smoothfool_runs_through_the_defence_grid(tiny_cnn, rand_images):
    from sdsgsm.experiments.defence_grid import run_defence_grid

    grid = run_defence_grid(tiny_cnn, rand_images[:1], None, "smoothfool,deepfool", "jpeg", build_config(
        {"sf_max_iter": 1}), batch_size=1)
    cells = grid.cells
    assert set(cells["method"]) == {"smoothfool", "deepfool"} and set(cells["defence"]) == {"none", "jpeg"}
    assert cells["asr"].dropna().between(0, 1).all()


# ----------------------------------------------------------------------------- on EfficientNet-Lite0
@pytest.mark.slow
def test_the_default_point_equals_a_plain_smoothfool_run(lite0, imagenet_batch):
    x, y, keys = imagenet_batch
    x, y = x[:2], y[:2]
    res = run_sigma_curves(lite0, x, y, SIGMAS, ("gaussian",))
    per = res.sweeps["gaussian"].per_sample
    at_default = per[per["sigma_g"] == PARAMS["sigma_g"].default].sort_values("index")
    assert PARAMS["sf_kernel"].default == "gaussian" and len(at_default) > 0
    idx = torch.as_tensor(at_default["index"].to_numpy().copy())
    plain = run_attack(lite0, x[idx], y[idx], build_config({}), "smoothfool")
    ref = evaluate(x[idx], plain).per_sample
    assert at_default["adv_pred"].tolist() == plain.adv_pred.tolist()
    assert at_default["success"].tolist() == ref["success"].tolist()
    assert at_default["l2"].to_numpy() == pytest.approx(ref["l2"].to_numpy(), rel=1e-6, abs=1e-9)
    assert at_default["roughness_n"].to_numpy() == pytest.approx(ref["roughness_n"].to_numpy(), rel=1e-6, abs=1e-12)
    row = res.table[(res.table.kernel == "gaussian") & (res.table.sigma_g == 2.0)].iloc[0]
    assert row["fooling_rate"] == pytest.approx(100 * ref["success"][ref["evaluated"]].mean())


@pytest.mark.slow
def test_the_command_writes_its_files(tmp_path, capsys):
    from sdsgsm.cli import main

    out = tmp_path / "sigma"
    rc = main(["sigma-curves", "--kernels", "gaussian,linear", "--values", "1,2", "--limit", "2", "--threads", "1",
               "--out", str(out)])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"sigma_curves.csv", "sigma_curves.md", "sigma_curves.json", "sigma_curves_per_sample.csv",
            "sigma_curves_figure.png", "sigma_curves_figure.pdf", "sigma_curves_figure.json"} <= names
    assert ".partial" not in names  # a finished run leaves no resume store
    import pandas as pd

    t = pd.read_csv(out / "sigma_curves.csv")
    assert len(t) == 4 and list(t.columns) == list(COLUMNS)
    assert "| gaussian | 2 | 11 |" in capsys.readouterr().out


def test_the_command_rejects_a_bad_kernel_in_one_line(tmp_path, capsys):
    from sdsgsm.cli import main

    assert main(["sigma-curves", "--kernels", "box", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gaussian, uniform, linear" in err


def _table(kernel: str, sigmas, rate: float):
    import pandas as pd

    return pd.DataFrame([{"kernel": kernel, "sigma_g": s, "k": kernel_side(s), "fooling_rate": rate, "l2": 0.1 * s,
                          "roughness_n": 10.0, "n": 2, "seconds": 1.0} for s in sigmas], columns=list(COLUMNS))


def test_join_tables_orders_kernels_and_lets_a_later_row_win():
    import pandas as pd

    from sdsgsm.experiments.sigma_curves import join_tables

    t = join_tables([_table("linear", (2.0, 1.0), 50.0), _table("gaussian", (1.0, 2.0), 100.0),
                     _table("linear", (2.0,), 0.0)])
    assert list(zip(t["kernel"], t["sigma_g"])) == [("gaussian", 1.0), ("gaussian", 2.0), ("linear", 1.0),
                                                     ("linear", 2.0)]
    assert t.iloc[-1]["fooling_rate"] == 0.0
    with pytest.raises(ValueError, match="not a sigma_curves.csv"):
        join_tables([pd.DataFrame({"kernel": ["gaussian"]})])


def test_the_command_redraws_joined_tables_without_a_model(tmp_path, capsys):
    from sdsgsm.cli import main

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _table("gaussian", SIGMAS, 100.0).to_csv(a, index=False)
    _table("uniform", SIGMAS, 50.0).to_csv(b, index=False)
    assert main(["sigma-curves", "--from", f"{a},{b}", "--out", str(tmp_path / "joined")]) == 0
    names = {p.name for p in (tmp_path / "joined").iterdir()}
    assert {"sigma_curves.csv", "sigma_curves.md", "sigma_curves_figure.png", "sigma_curves_figure.json"} <= names
    assert "| uniform | 2 | 11 | 50.0 |" in capsys.readouterr().out
    assert main(["sigma-curves", "--from", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x")]) == 2
