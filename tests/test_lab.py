"""Robust-training lab: determinism, time bound, shipped weights (six models), saturation, ε = 0, adversarial
training under PGD, the CLI and the Robust training page (AppTest)."""

import hashlib
import json
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import APP_DIR
from sklearn.datasets import load_digits
from streamlit.testing.v1 import AppTest

from sdsgsm.cli import main
from sdsgsm.experiments import lab
from sdsgsm.params import LAB_EPS_MAX, LAB_PARAMS, LAB_ROBUST_PARAMS, LAB_VIEW_PARAMS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600


@pytest.fixture(scope="module")
def shipped():
    return lab.load_models(lab.LAB_DIR)


@pytest.fixture(scope="module")
def split(shipped):
    return lab.load_split(shipped.cfg.seed, shipped.cfg.test_size)


def test_split_is_stratified_fixed_and_in_unit_range():
    a, b = lab.load_split(0), lab.load_split(0)
    assert (a.test_idx == b.test_idx).all() and len(a.y_test) == 450 and len(a.y_train) == 1347
    assert a.x_test.shape == (450, 1, 8, 8) and 0 <= float(a.x_test.min()) and float(a.x_test.max()) == 1.0
    assert set(a.test_idx) & set(a.train_idx) == set()
    test, total = pd.Series(a.y_test.numpy()).value_counts(), pd.Series(load_digits().target).value_counts()
    assert ((test - total * 0.25).abs() <= 1).all()  # stratified: each digit's share kept within one image
    assert not (lab.load_split(1).test_idx == a.test_idx).all()


@pytest.mark.parametrize("name", lab.ALL_MODELS)
def test_same_seed_gives_the_same_weights_checksum(name):
    cfg = lab.TrainConfig(epochs=1)  # the same code path as the shipped models, one epoch
    split = lab.load_split(cfg.seed)
    first = lab.weights_sha256(lab.train_model(name, split, cfg).state_dict())
    again = lab.weights_sha256(lab.train_model(name, split, cfg).state_dict())
    other = lab.weights_sha256(lab.train_model(name, split, replace(cfg, seed=1)).state_dict())
    assert first == again and first != other


@pytest.mark.slow
def test_each_model_retrains_to_its_shipped_accuracy(shipped, split):
    """Full shipped settings reach the recorded clean accuracy (within 3 points; the time is bench/lab.py's)."""
    for name in lab.MODELS:
        net = lab.train_model(name, split, shipped.cfg)
        shipped_acc = shipped.record["models"][name]["clean_accuracy"]
        assert abs(lab.clean_accuracy(net, split.x_test, split.y_test) - shipped_acc) < 0.03, name


def test_shipped_weights_match_their_record_and_reach_the_reported_accuracy(shipped, split, tmp_path):
    record = json.loads((lab.LAB_DIR / lab.LAB_JSON).read_text())
    assert list(record["models"]) == list(lab.ALL_MODELS) and record["split"]["test_indices"] == split.test_idx.tolist()
    assert "lab train" in record["command"]
    assert record["robust_training"] == {"alp_weight": LAB_ROBUST_PARAMS["alp_weight"].default,
                                         "ensemble_sources": list(lab.ENSEMBLE_SOURCES)}
    assert list(shipped.nets) == list(lab.MODELS)  # the page's four by default
    assert list(lab.load_models(lab.LAB_DIR, lab.ALL_MODELS).nets) == list(lab.ALL_MODELS)
    every = lab.load_models(lab.LAB_DIR, lab.ALL_MODELS).nets
    for name, entry in record["models"].items():
        assert hashlib.sha256((lab.LAB_DIR / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
        assert lab.weights_sha256(every[name].net.state_dict()) == entry["weights_sha256"]
        assert lab.clean_accuracy(every[name], split.x_test, split.y_test) == pytest.approx(
            entry["clean_accuracy"], abs=1e-6)
        assert entry["clean_accuracy"] > 0.9
    for f in lab.LAB_DIR.iterdir():  # a tampered file is refused before torch.load
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = bytearray((tmp_path / "distilled.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one weight byte changed
    (tmp_path / "distilled.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        lab.load_models(tmp_path)
    with pytest.raises(ValueError, match="lab train"):
        lab.load_models(tmp_path / "missing")


def test_the_distilled_softmax_at_t1_is_more_saturated(shipped, split):
    sat = lab.saturation(shipped.nets, split.x_test, split.y_test).set_index("model")
    std, dist = sat.loc["standard"], sat.loc["distilled"]
    assert dist["mean_max_prob"] > std["mean_max_prob"] + 0.02
    assert dist["share_max_prob_gt_0999"] > std["share_max_prob_gt_0999"] + 0.3
    assert dist["share_zero_grad"] > 0.3 and std["share_zero_grad"] == 0  # the gradient is masked
    assert dist["median_grad_l2"] < std["median_grad_l2"] / 100


def test_accuracy_at_eps_0_is_the_clean_accuracy(shipped, split):
    ecfg = lab.EvalConfig(eps=(0.0,), steps=2)
    models = {k: shipped.nets[k] for k in ("standard", "distilled")}
    curve = lab.accuracy_curve(models, split.x_test, split.y_test, ecfg)
    assert len(curve) == 2 * 3
    for _, row in curve.iterrows():
        assert row["accuracy"] == lab.clean_accuracy(models[row["model"]], split.x_test, split.y_test)
        assert row["n"] == 450


def test_adversarial_training_beats_standard_under_pgd_at_the_training_eps(shipped, split):
    eps = shipped.cfg.train_eps
    ecfg = lab.EvalConfig(eps=(eps,), methods=("pgd",))
    curve = lab.accuracy_curve({k: shipped.nets[k] for k in ("standard", "fgsm_at", "pgd_at")}, split.x_test,
                               split.y_test, ecfg).set_index("model")["accuracy"]
    assert curve["pgd_at"] > curve["standard"] + 0.15, curve.to_dict()
    assert curve["fgsm_at"] > curve["standard"] + 0.1, curve.to_dict()


def test_the_shipped_evaluation_matches_a_fresh_run(shipped, split):
    ev = lab.read_eval(lab.LAB_DIR, shipped.record)
    assert ev is not None and set(ev.curve["model"]) == set(lab.MODELS)
    assert set(ev.curve["method"]) == set(lab.LAB_METHODS)
    row = ev.curve[(ev.curve["model"] == "standard") & (ev.curve["method"] == "fgsm")].iloc[4]
    with _threads(1):
        acc, _ = lab.attack_accuracy(shipped.nets["standard"], split.x_test, split.y_test, "fgsm",
                                     lab.attack_config(row["eps"], lab.EvalConfig()))
    assert acc == pytest.approx(row["accuracy"], abs=1e-9)
    h = ev.headline
    assert h["eps"] == lab.falls_at(ev.curve) and h["accuracy"]["standard"] < 0.5 <= h["accuracy"]["distilled"]
    cw = ev.cw.set_index("model")
    assert cw.loc["distilled", "success_rate"] >= 0.9  # CW on the logits is not stopped by distillation


@contextmanager
def _threads(n: int):
    """The test process's own torch thread count, restored (the lab library never sets it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- the lab's parameter spec
def test_lab_spec_gives_the_configs_defaults_the_shipped_settings_and_the_readme_table():
    record = lab.read_record(lab.LAB_DIR)
    cfg = lab.TrainConfig()
    assert asdict_fields(cfg) == record["training"]  # the shipped weights were trained with the spec's defaults
    assert {p.name for p in LAB_PARAMS.values() if p.group == "train"} == {f.name for f in fields(lab.TrainConfig)}
    e = lab.EvalConfig()
    assert (e.steps, e.cw_steps, e.cw_limit) == tuple(LAB_PARAMS[n].default for n in ("steps", "cw_steps", "cw_limit"))
    assert LAB_VIEW_PARAMS["xmethod"].choices == lab.LAB_METHODS
    p = LAB_PARAMS["train_eps"]
    assert p.unit == "1/255" and p.shown(p.default) == 25.5 and p.native(25.5) == 0.1 and p.hi == 1.0


def asdict_fields(cfg) -> dict:
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}


@pytest.mark.parametrize("kwargs, words", [
    ({"epochs": 0}, "Epochs = 0 is outside 1 … 200"), ({"train_eps": 1.5}, "outside 0 … 255/255"),
    ({"temperature": float("nan")}, "finite"), ({"seed": -1}, "Seed"), ({"pgd_steps": 2.5}, "integer"),
])
def test_train_config_is_checked_against_the_spec(kwargs, words):
    with pytest.raises(ValueError, match=words):
        lab.TrainConfig(**kwargs)
    assert lab.TrainConfig(train_eps=1.0).train_eps == 1.0  # training ε may exceed the attacks' 32/255


def test_falls_at_and_headline_on_a_hand_made_curve():
    curve = pd.DataFrame({"model": ["standard"] * 3 + ["distilled"] * 3, "method": ["fgsm"] * 6,
                          "eps": [0.0, 0.1, 0.2] * 2, "accuracy": [0.9, 0.5, 0.3, 0.9, 0.8, 0.7]})
    assert lab.falls_at(curve) == 0.2  # 0.5 is not below 50 %
    assert lab.headline(curve)["accuracy"] == {"standard": 0.3, "distilled": 0.7}
    assert lab.falls_at(curve, threshold=0.2) is None and lab.headline(curve, threshold=0.2)["eps"] is None


def test_cli_trains_and_evaluates_a_small_lab(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["lab", "train", "--out", str(out), "--epochs", "1", "--models", "standard,distilled"]) == 0
    record = json.loads((out / "lab.json").read_text())
    assert list(record["models"]) == ["standard", "distilled"] and record["training"]["epochs"] == 1
    assert record["command"].startswith("python -m sdsgsm lab train")
    ev = tmp_path / "e"
    assert main(["lab", "eval", "--weights", str(out), "--eps", "0,8/255", "--methods", "fgsm,pgd", "--steps", "2",
                 "--limit", "30", "--cw-limit", "4", "--cw-steps", "3", "--out", str(ev)]) == 0
    printed = capsys.readouterr().out
    assert "CW-L2 on distilled" in printed
    curve = pd.read_csv(ev / "lab_accuracy.csv")
    assert len(curve) == 2 * 2 * 2 and set(curve["n"]) == {30}
    for name in ("lab_table.csv", "lab_cw.csv", "lab_saturation.csv", "lab_eval.json", "lab_figure.pdf",
                 "lab_figure.png", "lab_figure.svg", "lab_figure.json"):
        assert (ev / name).stat().st_size > 0, name
    assert json.loads((ev / "lab_figure.json").read_text())["figure"] == "lab"
    assert pd.read_csv(ev / "lab_cw.csv")["n"].tolist() == [4, 4]


@pytest.mark.parametrize("argv, words", [
    (["lab", "eval", "--eps", "0:1:3"], "outside"),
    (["lab", "eval", "--eps", "abc"], "Bad values"),
    (["lab", "eval", "--methods", "nope"], "nope"),
    (["lab", "eval", "--weights", "no/such/folder"], "lab train"),
    (["lab", "eval", "--steps", "0"], "outside 1 … 1000"),
    (["lab", "eval", "--cw-limit", "0"], "CW-L2 digits"),
    (["lab", "train", "--epochs", "0"], "Epochs"),
    (["lab", "train", "--train-eps", "300/255"], "outside 0 … 255/255"),
    (["lab", "train", "--temperature", "nan"], "temperature"),
    (["lab", "train", "--train-eps", "1/0"], "train-eps"),
    (["lab", "train", "--models", "standard,nope"], "nope"),
    (["lab"], "lab"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    assert main([*argv, "--out", str(tmp_path / "o")] if len(argv) > 1 else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err and "Traceback" not in err


def test_cli_refuses_an_out_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["lab", "train", "--out", str(f)]) == 2 and "existing file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the page (AppTest)
def _page(**query) -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "pages" / "8_Robust_training.py"), default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def test_page_shows_the_shipped_lab_and_keeps_its_state_in_the_link():
    at = _page(xmethod="pgd", xeps="8")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="lab_xmethod").value == "pgd" and at.slider(key="lab_xeps").value == 8.0
    teps = at.number_input(key="lab_train_eps")
    assert teps.value == 25.5 and "1/255" in teps.label  # the training ε in units of 1/255, like every budget
    table = at.dataframe[0].value
    assert set(table["method"]) == set(lab.LAB_METHODS) and set(lab.MODELS) <= set(table.columns)
    assert len(at.get("plotly_chart")) == 1 and any("Shipped models" in i.value for i in at.info)
    assert any("distilled model keeps" in m.value for m in at.markdown)
    assert at.query_params["xmethod"] == "pgd" and at.query_params["temperature"] == "20"
    assert at.query_params["train_eps"] == "25.5" and at.query_params["xeps"] == "8"
    at.selectbox(key="lab_xmethod").select("fgsm").run()
    assert not at.exception and at.query_params["xmethod"] == "fgsm"


def test_page_ignores_bad_link_values_with_one_line_each():
    at = _page(temperature="abc", epochs="1.5", xmethod="nope", xeps="nan", train_eps="300")
    assert not at.exception and not at.error
    assert len(at.warning) == 5 and all(w.value.startswith("Ignored ") for w in at.warning)
    text = " ".join(w.value for w in at.warning)
    assert all(f"{k}=" in text for k in ("temperature", "epochs", "xmethod", "xeps", "train_eps"))
    assert "0 … 255 (in units of 1/255)" in text
    assert at.selectbox(key="lab_xmethod").value == "fgsm" and any("Shipped models" in i.value for i in at.info)


def test_page_takes_a_training_eps_in_units_of_1_255_from_the_link(monkeypatch):
    """train_eps=12.75 means 12.75/255 = 0.05 natively; the retrain is stubbed (no training here)."""
    from sdsgsm.ui import lab as ul

    seen = []

    def stub(*args, **kwargs):
        seen.append(args[:3])
        raise ValueError("stubbed")

    monkeypatch.setattr(ul, "evaluation", stub)
    at = _page(train_eps="12.75", epochs="2")
    assert not at.exception and seen == [(20.0, 0.05, 2)]
    assert at.number_input(key="lab_train_eps").value == 12.75


@pytest.mark.slow
def test_page_retrains_with_other_settings():
    at = _page()
    at.number_input(key="lab_epochs").set_value(1)
    at.number_input(key="lab_temperature").set_value(5.0)
    at.button(key="lab_retrain").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Retrained here: T = 5" in i.value for i in at.info)
    assert at.query_params["epochs"] == "1" and len(at.dataframe[0].value) == 3 * 5


def test_cw_fools_the_distilled_model_where_fgsm_does_not(shipped, split):
    """Survey §2.3: the distilled model resists FGSM (its gradient is masked) but not CW-L2 on the logits."""
    x, y = split.x_test[:20], split.y_test[:20]
    ecfg = lab.EvalConfig(eps=(lab.EPS_TOP,), methods=("fgsm",), cw_limit=20, cw_steps=50)
    cw = lab.cw_table(shipped.nets, x, y, ecfg, names=("distilled",)).iloc[0]
    fgsm = lab.accuracy_curve({"distilled": shipped.nets["distilled"]}, x, y, ecfg)["accuracy"].iloc[0]
    clean = lab.clean_accuracy(shipped.nets["distilled"], x, y)
    assert cw["success_rate"] >= 0.8 and cw["accuracy"] <= 0.2
    assert clean - fgsm < cw["success_rate"] * clean - 0.2  # FGSM at 32/255 fools far fewer (0.40 vs 0.80)
    assert _finite(cw)


def _finite(row) -> bool:
    return all(pd.notna(row[k]) and abs(row[k]) < float("inf") for k in ("l2_mean", "linf_mean"))


# ----------------------------------------------------------------------------- ALP, ensemble AT, ε up to 0.3
@pytest.fixture(scope="module")
def every(shipped):
    return lab.load_models(lab.LAB_DIR, lab.ALL_MODELS).nets


def test_alp_and_ensemble_at_beat_standard_under_pgd_at_the_training_eps(shipped, every, split):
    eps = shipped.cfg.train_eps
    acc = {k: float(lab.pgd_restarts(every[k], split.x_test, split.y_test, eps, 10, 1).float().mean())
           for k in ("standard", "alp", "ens_at")}
    assert acc["alp"] > acc["standard"] + 0.15, acc
    assert acc["ens_at"] > acc["standard"], acc


def test_the_lab_eps_range_reaches_0_3_without_lifting_the_apps_sliders():
    from sdsgsm.params import PARAMS

    assert LAB_EPS_MAX == 0.3 and LAB_ROBUST_PARAMS["table_eps"].hi == LAB_EPS_MAX
    assert PARAMS["eps"].hi == 32 / 255 and lab.EPS_TOP == 32 / 255  # the app's range is untouched
    assert lab.check_lab_eps([0.1, 0.3]) == (0.1, 0.3)
    with pytest.raises(ValueError, match="outside"):
        lab.check_lab_eps([0.31])


def test_fgsm_at_large_eps_is_the_hand_written_step(every, split):
    x, y, net = split.x_test[:40], split.y_test[:40], every["standard"]
    xg = x.clone().requires_grad_(True)
    g = torch.autograd.grad(torch.nn.functional.cross_entropy(net(xg), y, reduction="sum"), xg)[0]
    adv = (x + 0.3 * g.sign()).clamp(0, 1)
    assert lab.fgsm_accuracy(net, x, y, 0.3) == lab.clean_accuracy(net, adv, y)
    assert lab.fgsm_accuracy(net, x, y, 0.0) == lab.clean_accuracy(net, x, y)


def test_robust_table_claim_and_masking_are_built_from_the_numbers(every, split):
    x, y = split.x_test[:60], split.y_test[:60]
    models = {k: every[k] for k in ("standard", "distilled", "alp")}
    table = lab.robust_table(models, x, y, (0.1, 0.3), lab.EvalConfig(cw_limit=5, cw_steps=5), steps=5, restarts=2)
    assert set(table.fgsm["eps"]) == {0.0, 0.1, 0.3} and len(table.fgsm) == 3 * 3
    assert list(table.cw["model"]) == list(models) and set(table.cw["n"]) == {5}
    at = table.fgsm.set_index(["model", "eps"])["accuracy"]
    for name in models:
        assert at[(name, 0.0)] == lab.clean_accuracy(models[name], x, y)
    text = lab.claim_text(table, len(y))
    assert "92.91 %" in text and f"{at[('distilled', 0.3)] * 100:.1f} %" in text
    assert f"{at[('standard', 0.3)] * 100:.1f} %" in text and "not MNIST" in text
    assert ("agrees with the reported figure" in text) == (abs(at[("distilled", 0.3)] - 0.9291) <= 0.05)
    mk = table.masking
    assert set(mk["model"]) == {"alp", "distilled"}  # the targets present (no PGD-AT here)
    m = mk[(mk["model"] == "alp") & (mk["eps"] == 0.1)].iloc[0]
    assert m["fgsm"] == at[("alp", 0.1)]
    assert m["pgd_restarts"] <= m["pgd"] and m["worst"] <= min(m["pgd_restarts"], m["transfer"])
    assert f"PGD {m['pgd'] * 100:.1f} %" in lab.masking_text(mk) and set(mk["eps"]) == {0.1, 0.3}
    wide = lab.robust_wide(table).set_index("model")
    assert list(wide.columns[:3]) == ["clean", "fgsm 0.1", "fgsm 0.3"] and "cw accuracy" in wide


def test_cli_table_and_certify_write_their_files(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["lab", "table", "--eps", "0.1,0.3", "--limit", "30", "--cw-limit", "3", "--cw-steps", "3",
                 "--table-steps", "3", "--restarts", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "92.91 %" in printed and "alp" in printed and "ens_at" in printed
    wide = pd.read_csv(out / "lab_robust_table.csv")
    assert list(wide["model"]) == list(lab.ALL_MODELS) and "fgsm 0.3" in wide.columns
    info = json.loads((out / "lab_robust.json").read_text())
    assert info["command"].startswith("python -m sdsgsm lab table")
    assert set(info["train_seconds"]) == set(lab.ALL_MODELS)
    assert "92.91" in (out / "lab_robust.md").read_text()
    cert = tmp_path / "c"
    assert main(["lab", "certify", "--sigmas", "0.5", "--n0", "10", "--n", "50", "--cert-limit", "8",
                 "--radii", "0,0.5", "--attack-steps", "2", "--attack-noise", "2", "--out", str(cert)]) == 0
    curve = pd.read_csv(cert / "lab_certify_curve.csv")
    assert list(curve["radius"]) == [0.0, 0.5] and set(curve["n"]) == {8}
    for name in ("lab_certify_figure.pdf", "lab_certify_figure.png", "lab_certify_figure.svg", "lab_certify.md"):
        assert (cert / name).stat().st_size > 0, name


@pytest.mark.parametrize("argv, words", [
    (["lab", "table", "--eps", "0.1,0.4"], "outside"),
    (["lab", "table", "--eps", "x"], "Bad values for --eps"),
    (["lab", "table", "--restarts", "0"], "restarts"),
    (["lab", "certify", "--sigmas", "0"], "outside"),
    (["lab", "certify", "--radii", "-1"], "radii"),
    (["lab", "certify", "--alpha", "0.9"], "outside"),
    (["lab", "train", "--alp-weight", "-1"], "ALP weight"),
])
def test_cli_robust_commands_refuse_bad_input_with_one_line(tmp_path, capsys, argv, words):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err and "Traceback" not in err


@pytest.mark.parametrize("alp, words", [
    ({"pgd": 0.5, "pgd_restarts": 0.49, "transfer": 0.40}, "transfer from standard beats white-box PGD by 10.0"),
    ({"pgd": 0.5, "pgd_restarts": 0.40, "transfer": 0.60}, "restarts lower it by 10.0 points, PGD-AT by 3.0"),
    ({"pgd": 0.5, "pgd_restarts": 0.46, "transfer": 0.60}, "about as much as PGD-AT (3.0)"),
    ({"pgd": 0.5, "pgd_restarts": 0.495, "transfer": 0.60}, "no masking symptom"),
])
def test_masking_verdict_compares_with_the_pgd_at_control(alp, words):
    control = {"model": "pgd_at", "source": "standard", "pgd": 0.4, "pgd_restarts": 0.37, "transfer": 0.6}
    assert words in lab.masking_verdict({"model": "alp", "source": "standard", **alp}, control)
