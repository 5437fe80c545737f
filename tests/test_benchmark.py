"""Benchmark core + CLI (paper Tables 1–2) and the Table 2 baselines (ART, our Jitter and FAB)."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sdsgsm.attacks import FAMILY_SPECS, METHODS, AttackConfig, run_attack
from sdsgsm.attacks.blackbox import BLACK_BOX
from sdsgsm.attacks.fab import linf_hyperplane_step
from sdsgsm.attacks.jitter import jitter_loss
from sdsgsm.cli import build_parser, main
from sdsgsm.cli.benchmark import methods_and_config as benchmark_config_from_args
from sdsgsm.experiments.benchmark import (
    OUTPUT_FILES,
    PRESETS,
    SAMPLE_COLUMNS,
    SUMMARY_COLUMNS,
    BenchmarkResult,
    load_benchmark_data,
    merge_results,
    preset_config,
    results_markdown,
    run_benchmark,
)
from sdsgsm.metrics import ASR_CRITERION, METRICS, metric_list, summary_keys
from sdsgsm.models import Classifier

EPS = 8 / 255
# the Table 2 baselines: every registered method outside the FGSM family, but SmoothFool and the adversarial
# patch, which have test files of their own (test_smoothfool.py, test_patch.py)
BASELINES = [name for name in METHODS if name not in FAMILY_SPECS and name not in ("smoothfool", "patch")]


def linear_model(num_classes: int = 10, size: int = 32, seed: int = 0) -> Classifier:
    """A fixed-seed linear classifier of x − 0.5: small margins, so every attack succeeds within 8/255."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, num_classes))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(net[1].weight.shape, generator=g) * 0.01)
        net[1].bias.zero_()
    return Classifier(net, "linear", [f"c{i}" for i in range(num_classes)], size, mean=(0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def lin():
    return linear_model()


@pytest.fixture(scope="module")
def lin_images():
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- table1 via the CLI
def _table1(out) -> int:
    return main(["benchmark", "--data", "gallery", "--preset", "table1", "--limit", "3", "--patch", "56",
                 "--threads", "1", "--device", "cpu", "--out", str(out)])


@pytest.fixture(scope="module")
def table1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("t1")
    assert _table1(out) == 0
    return out


def test_table1_files_columns_and_bounds(table1_run):
    out = table1_run
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    res = pd.read_csv(out / "results.csv")
    assert list(res.columns) == SUMMARY_COLUMNS and res.columns[0] == "method"
    assert {"device", "model", "data"} <= set(res.columns) and set(summary_keys()) <= set(res.columns)
    metric_columns = [k for m in METRICS.values() for k in m.summary_keys]  # every registry metric, in order
    assert [c for c in res.columns if c in metric_columns] == metric_columns
    for m in metric_list():  # a rate is its mean only; every other metric has mean and std, L∞ its max too
        assert m.mean_key in res and (m.std_key in res) != m.rate and (f"{m.key}_max" in res) == m.track_max
    assert res["method"].tolist() == list(PRESETS["table1"].methods)
    assert res["asr"].between(0, 1).all() and (res["n"] == 3).all() and res["complete"].all()
    assert (res["linf_max"] <= EPS + 1e-6).all()
    assert (res["steps"] == 1).all() and set(res["data"]) == {"gallery:imagenet"}
    assert set(res["model"]) == {"efficientnet_lite0"} and set(res["device"]) == {"cpu"}
    sd = res[res["method"].str.startswith("sd-")]
    assert np.allclose(sd["eps_weak"], 4 / 255) and np.allclose(sd["eps"], EPS)
    assert res.loc[res["method"] == "sd-sgsm", "l2_mean"].item() < res.loc[res["method"] == "fgsm", "l2_mean"].item()


def test_table1_per_sample_rows_add_up(table1_run):
    res = pd.read_csv(table1_run / "results.csv").set_index("method")
    per = pd.read_csv(table1_run / "per_sample.csv")
    assert list(per.columns) == SAMPLE_COLUMNS and {m.source for m in metric_list()} <= set(per.columns)
    assert len(per) == 4 * 3 and (per["clean_pred"] == per["label"]).all()  # clean-correct only
    for method, rows in per.groupby("method"):
        ev = rows[rows["evaluated"]]
        assert len(ev) == res.loc[method, "n"]
        assert ev["l2"].mean() == pytest.approx(res.loc[method, "l2_mean"], rel=1e-12)
        assert ev["success"].mean() == pytest.approx(res.loc[method, "asr"])
        assert ev["linf"].max() == pytest.approx(res.loc[method, "linf_max"])
        assert rows["time_s"].mean() == pytest.approx(res.loc[method, "time_s_mean"])  # over all attacked
        assert np.allclose(rows["time_s"], rows["scan_time_s"] + rows["attack_time_s"])
        assert (rows["scan_time_s"] > 0).all() == method.startswith("sd-")  # the shared scan counts for SD only
        assert ev["ssim"].between(-1, 1).all() and (ev["linf"] <= EPS + 1e-6).all()
        for m in metric_list():  # every registry metric: results.csv holds the stats of its per-sample column
            pool = {"attacked": rows, "evaluated": ev, "successful": ev[ev["success"]]}[m.over]
            values = pool[m.source].astype(float)
            stats = {m.mean_key: values.mean(), m.std_key: values.std(ddof=0), f"{m.key}_max": values.max()}
            for key in m.summary_keys:
                assert res.loc[method, key] == pytest.approx(stats[key], rel=1e-9, abs=1e-15, nan_ok=True), key


def test_table1_config_and_tables(table1_run):
    cfg = json.loads((table1_run / "config.json").read_text())
    assert {"torch", "torchvision", "art", "skimage", "numpy", "python"} <= set(cfg["versions"])
    assert all(cfg["versions"][k] for k in ("torch", "art", "skimage", "numpy", "python"))
    assert cfg["seed"] == 0 and cfg["device"] == "cpu" and cfg["preset"] == "table1"
    assert cfg["n_total"] == 3 and cfg["n_attacked"] == cfg["n_clean_correct"] == 3
    detail = cfg["method_details"]["sd-sgsm"]
    assert detail["attack_config"]["steps"] == 1 and detail["attack_config"]["scan"]["patch"] == 56
    assert detail["attack_config"]["budget"]["eps_weak"] == pytest.approx(4 / 255)
    assert set(detail["scan_resolved"]) == {"engine", "precision"}
    assert "scan_resolved" not in cfg["method_details"]["fgsm"]
    md = (table1_run / "results.md").read_text()
    assert ASR_CRITERION["clean_correct"] in md and "| Method | n | Steps | ε |" in md and "**" in md
    assert "| Total time (s) |" in md and "Total time = zero-out scan + attack" in md  # which time is shown
    tex = (table1_run / "results.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{" in tex and "SD-SGSM" in tex


def test_table1_rerun_gives_identical_numbers(table1_run, tmp_path):
    assert _table1(tmp_path) == 0
    for name in ("results.csv", "per_sample.csv"):
        a, b = pd.read_csv(table1_run / name), pd.read_csv(tmp_path / name)
        timing = [c for c in a.columns if "time_s" in c]
        assert timing and (name == "per_sample.csv") == ("time_s" in timing)
        pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))


# ----------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_on_tiny_model(lin, lin_images, name):
    x = lin_images[:4]
    cfg = AttackConfig(steps=10, alpha=4 / 255)
    r = run_attack(lin, x, None, cfg, name)
    delta = (r.x_adv - x).abs()
    assert r.x_adv.shape == x.shape and r.x_adv.dtype == torch.float32
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    assert r.budget.shape == (4, 1, 32, 32) and (delta <= r.budget + 1e-7).all()
    assert r.clean_logits.shape == r.adv_logits.shape == (4, 10) and r.label_source == "clean prediction"
    if METHODS[name].bounded:
        assert delta.amax() <= EPS + 1e-6
    else:
        assert torch.allclose(r.budget.amax((1, 2, 3)), delta.flatten(1).amax(1))
    params = METHODS[name].params(cfg)
    json.dumps(params)
    if "queries" in params:  # a black-box attack: its budget is queries, not T (tests/test_blackbox.py)
        assert r.queries is not None and (r.queries <= cfg.queries).all()
        return
    assert (r.adv_pred != r.clean_pred).sum() >= 3  # the linear model is easy to fool
    assert params["max_iter"] == 10 and METHODS[name].multi_step


def test_art_parameters_follow_the_paper():
    cfg = AttackConfig(steps=10, alpha=4 / 255)
    apgd = METHODS["apgd"].params(cfg)
    assert apgd["art_class"] == "AutoProjectedGradientDescent" and apgd["loss_type"] == "cross_entropy"
    assert apgd["eps"] == EPS and apgd["eps_step"] == 4 / 255 and apgd["max_iter"] == 10
    assert METHODS["apgd-dlr"].params(cfg)["loss_type"] == "difference_logits_ratio"
    aa = METHODS["autoattack"].params(cfg)
    assert [a["art_class"] for a in aa["attacks"]] == ["AutoProjectedGradientDescent"] * 2 + ["DeepFool",
                                                                                              "SquareAttack"]
    assert all(a.get("max_iter") in (10, 100) for a in aa["attacks"])
    assert METHODS["cw"].params(cfg)["art_class"] == "CarliniL2Method"
    assert METHODS["ead"].params(cfg)["art_class"] == "ElasticNet"
    assert {m for m in METHODS if METHODS[m].backend == "art"} == {"cw", "deepfool", "apgd", "apgd-dlr",
                                                                   "autoattack", "ead", *BLACK_BOX}
    assert "ART 1.20.1 has no FAB" in METHODS["fab"].description and "ART has none" in METHODS["jitter"].description


def test_random_baselines_are_seeded(lin, lin_images):
    x = lin_images[:4]
    for name in ("apgd", "jitter"):
        a = run_attack(lin, x, None, AttackConfig(steps=3, alpha=2 / 255, seed=1), name).x_adv
        b = run_attack(lin, x, None, AttackConfig(steps=3, alpha=2 / 255, seed=1), name).x_adv
        c = run_attack(lin, x, None, AttackConfig(steps=3, alpha=2 / 255, seed=2), name).x_adv
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_linf_hyperplane_step_is_exact_and_minimal():
    g = torch.Generator().manual_seed(3)
    p = torch.rand(64, 40, generator=g, dtype=torch.float64)
    w = torch.randn(64, 40, generator=g, dtype=torch.float64)
    b = (w * p).sum(1) + torch.randn(64, generator=g, dtype=torch.float64) * 16  # some planes out of reach
    d = linf_hyperplane_step(p, w, b)
    z = p + d
    assert (z >= -1e-12).all() and (z <= 1 + 1e-12).all()
    s = (w * p).sum(1) - b
    room = torch.where(-s.sign()[:, None] * w.sign() > 0, 1 - p, p)
    reach = (w.abs() * room).sum(1)  # the largest |change of w·z| inside the box
    feasible = reach >= s.abs()
    assert feasible.any() and (~feasible).any()
    assert torch.allclose((w * z).sum(1)[feasible], b[feasible], atol=1e-9)
    t = d.abs().amax(1)
    shrunk = (w.abs() * torch.minimum(room, 0.999 * t[:, None])).sum(1)  # best change at a smaller radius
    assert (shrunk[feasible] < s.abs()[feasible]).all()
    assert torch.allclose((w * d).sum(1)[~feasible].abs(), reach[~feasible])


def test_fab_finds_the_minimal_linf_of_a_linear_classifier():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, 16, 16, generator=g)
    x = 0.5 + 0.1 * (torch.rand(3, 3, 16, 16, generator=g) - 0.5)
    c = -(x * w).flatten(1).sum(1).min().item() + 0.004 * w.abs().sum().item()

    class TwoClass(nn.Module):
        def forward(self, z):
            f0 = (z * w).flatten(1).sum(1) + c
            return torch.stack([f0, torch.zeros_like(f0)], 1)

    model = Classifier(TwoClass(), "two", ["a", "b"], 16)
    t_star = ((x * w).flatten(1).sum(1) + c) / w.abs().sum()  # exact L∞ distance to the boundary
    assert (t_star > 0).all() and (t_star < EPS).all()
    r = run_attack(model, x, torch.zeros(3, dtype=torch.long), AttackConfig(steps=10), "fab")
    found = (r.x_adv - x).flatten(1).abs().amax(1)
    assert (r.adv_pred == 1).all()
    assert (found >= t_star * (1 - 1e-4)).all() and (found <= t_star * 1.05 + 1e-6).all()


def test_jitter_loss_prefers_small_perturbations_once_fooled():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])  # sample 0 still correct, sample 1 already misclassified
    zero = torch.zeros(2, 3)
    base = jitter_loss(logits, y, torch.tensor([0.0, 0.0]), zero, 10.0)
    scaled = jitter_loss(logits, y, torch.tensor([0.5, 0.5]), zero, 10.0)
    assert scaled[0] == base[0] and scaled[1] == pytest.approx(base[1] / 0.5)


# ----------------------------------------------------------------------------- run_benchmark API
def test_run_benchmark_progress_criterion_and_stop(lin, lin_images):
    clean = lin(lin_images).argmax(1)
    y = clean.clone()
    y[:2] = (clean[:2] + 1) % 10  # two samples the model gets wrong
    calls = []
    res = run_benchmark(lin, lin_images, y, ["fgsm", "pgd"], AttackConfig(steps=2, alpha=4 / 255), batch_size=3,
                        progress=lambda *a: calls.append(a), data="toy")
    assert res.config["n_attacked"] == res.config["n_clean_correct"] == 4 and not res.stopped
    assert res.summary["n"].tolist() == [4, 4] and len(res.per_sample) == 8
    assert calls[0] == ("fgsm", 0, 8) and calls[-1] == ("pgd", 8, 8)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)
    everything = run_benchmark(lin, lin_images, y, ["fgsm"], AttackConfig(), criterion="all")
    assert everything.config["n_attacked"] == 6 and everything.summary["n"].item() == 6

    seen = []
    stopped = run_benchmark(lin, lin_images, None, ["fgsm", "pgd"], AttackConfig(), batch_size=2,
                            progress=lambda *a: seen.append(a), should_stop=lambda: len(seen) >= 3)
    assert stopped.stopped and stopped.config["stopped_early"]
    assert stopped.summary["method"].tolist() == ["fgsm"] and not stopped.summary["complete"].item()
    assert stopped.summary["n"].item() == 4 and stopped.config["methods_completed"] == []
    assert "Stopped early" in results_markdown(stopped) and "FGSM*" in results_markdown(stopped)

    merged = merge_results([everything, stopped])
    assert merged.summary["method"].tolist() == ["fgsm", "fgsm"] and merged.stopped
    assert merged.config["methods"] == ["fgsm", "fgsm", "pgd"] and len(merged.per_sample) == 6 + 4


def test_run_benchmark_rejects_bad_input(lin, lin_images):
    with pytest.raises(ValueError, match="Unknown method"):
        run_benchmark(lin, lin_images, None, ["fgsm", "nope"], AttackConfig())
    with pytest.raises(ValueError, match="criterion"):
        run_benchmark(lin, lin_images, None, ["fgsm"], AttackConfig(), criterion="most")
    wrong = (lin(lin_images).argmax(1) + 1) % 10
    with pytest.raises(ValueError, match="None of the 6 images"):
        run_benchmark(lin, lin_images, wrong, ["fgsm"], AttackConfig())


def test_best_values_are_bold_in_the_right_direction():
    row = dict.fromkeys(SUMMARY_COLUMNS, 0.0)
    rows = [{**row, "method": "a", "n": 5, "asr": 0.8, "l2_mean": 1.0, "linf_mean": 0.03, "ssim_mean": 0.95,
             "time_s_mean": 0.2, "steps": 1, "eps": EPS, "eps_weak": math.nan, "complete": True},
            {**row, "method": "b", "n": 5, "asr": 0.6, "l2_mean": 0.5, "linf_mean": 0.03, "ssim_mean": 0.99,
             "time_s_mean": 0.4, "steps": 10, "eps": math.nan, "eps_weak": math.nan, "complete": True}]
    cfg = {"model": "m", "data": "d", "n_total": 5, "n_clean_correct": 5, "clean_accuracy": 1.0, "device": "cpu",
           "device_name": "cpu", "batch_size": 1, "seed": 0, "criterion_text": "crit"}
    md = results_markdown(BenchmarkResult(pd.DataFrame(rows), pd.DataFrame(), cfg)).splitlines()
    a, b = md[2], md[3]
    assert "**80.0**" in a and "**0.200**" in a and "**7.65**" in a and "| 8/255 |" in a
    assert "**0.500**" in b and "**0.9900**" in b and "**7.65**" in b and "| – |" in b
    assert "**60.0**" not in b and "**1.000**" not in a


# ----------------------------------------------------------------------------- presets, data, CLI
def test_presets_map_the_paper_settings():
    methods, cfg = preset_config("table2")
    assert methods == ["pgd", "jitter", "cw", "deepfool", "fab", "apgd", "apgd-dlr", "autoattack", "sd-sgsm"]
    assert (cfg.steps, cfg.alpha, cfg.eps) == (10, 4 / 255, EPS)
    assert (cfg.budget.eps_strong, cfg.budget.eps_weak, cfg.budget.eps_max) == (EPS, 4 / 255, EPS)
    methods, cfg = preset_config("table1")
    assert methods == ["fgsm", "sgsm", "sd-fgsm", "sd-sgsm"] and cfg.steps == 1 and cfg.alpha is None
    args = build_parser().parse_args(["benchmark", "--data", "gallery", "--preset", "table2", "--eps-weak", "2/255",
                                      "--methods", "pgd,SD-SGSM,pgd", "--out", "o"])
    methods, cfg = benchmark_config_from_args(args)
    assert methods == ["pgd", "sd-sgsm"] and cfg.budget.eps_weak == 2 / 255 and cfg.steps == 10


def test_load_benchmark_data_picks_labels_that_fit(tmp_path):
    small = linear_model(10, 32)
    x, y, keys, info = load_benchmark_data("gallery", small)
    assert x.shape == (20, 3, 32, 32) and info["name"] == "gallery:cifar10" and (y >= 0).all()
    x, y, keys, info = load_benchmark_data("gallery:imagenet", small, limit=2)
    assert x.shape == (2, 3, 32, 32) and (y == -1).all() and "clean prediction" in info["label_source"]
    from PIL import Image
    for i, name in enumerate(["c3", "c7"]):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / name / "a.png")
    x, y, keys, info = load_benchmark_data(str(tmp_path), small)
    assert y.tolist() == [3, 7] and "names" in info["label_source"]


@pytest.mark.parametrize("args, message", [
    (["--data", "does/not/exist", "--preset", "table1"], "does not exist"),
    (["--data", "EMPTY", "--preset", "table1"], "No images"),
    (["--data", "gallery", "--methods", "fgsm,deepfoo"], "Unknown method 'deepfoo'"),
    (["--data", "gallery"], "needs --methods"),
    (["--data", "gallery", "--preset", "table1", "--limit", "0"], "--limit must be at least 1"),
])
def test_bad_benchmark_input_gives_one_line_errors(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    assert main(["benchmark", *args, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_module_entry_point_unknown_method_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sdsgsm", "benchmark", "--data", "gallery", "--methods", "nope",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Unknown method 'nope'" in proc.stderr
