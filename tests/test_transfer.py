"""Transferability: Lite1/Lite2, the resize wrapper, the ensemble, the matrix, CLI, bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import APP_DIR, TinyCNN, tiny_classifier

from sdsgsm.attacks import METHODS, build_config, run_attack
from sdsgsm.cli import main
from sdsgsm.ensemble import Ensemble, ModelSpec, Resized, at_size, parse_spec, parse_specs, resize
from sdsgsm.experiments.benchmark import run_benchmark
from sdsgsm.experiments.transfer import SAMPLE_COLUMNS, SUMMARY_COLUMNS, relation, run_transfer, transfer_files
from sdsgsm.models import Classifier, ModelError, available_models, load_model


class TinyLinear(torch.nn.Module):
    """10 logits linear in the 8×8 average-pooled image: weights W_0 + 0.6·noise(seed), so models of
    different seeds agree on some inputs and not on others (a transfer matrix with texture)."""

    def __init__(self, seed: int):
        super().__init__()
        w = torch.randn(10, 192, generator=torch.Generator().manual_seed(0))
        self.register_buffer("w", w + 0.6 * torch.randn(10, 192, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x):
        return 10 * F.adaptive_avg_pool2d(x - 0.5, 8).flatten(1) @ self.w.T


def _linear(seed: int, size: int = 32) -> Classifier:
    return Classifier(TinyLinear(seed), f"lin{seed}", [f"c{i}" for i in range(10)], size)


def _tiny(size: int = 32, flip: float = 1.0, name: str = "tiny") -> Classifier:
    net = TinyCNN()
    net.fc.weight.data *= flip
    return tiny_classifier(name, size, net)


# ----------------------------------------------------------------------------- models
@pytest.mark.slow
def test_lite1_and_lite2_load_offline_and_classify_the_gallery(imagenet_batch):
    from sdsgsm.models import supports_incremental

    x, y, _ = imagenet_batch  # the 20 gallery images at 224 px
    names = {m.name: m.available for m in available_models()}
    assert names["efficientnet_lite1"] and names["efficientnet_lite2"]
    for name, native in (("efficientnet_lite1", 240), ("efficientnet_lite2", 260)):
        model = load_model(name, device="cpu")
        assert model.input_size == native and supports_incremental(model)  # the Classifier fast path applies
        wrapped = at_size(model, 224)
        with torch.inference_mode():
            fast = wrapped(x)
            model.fast = False
            plain = wrapped(x)
            model.fast = True
        assert torch.allclose(fast, plain, rtol=1e-4, atol=1e-4)
        acc = (fast.argmax(1) == y).float().mean().item()
        assert acc >= 0.75, (name, acc)  # measured: 0.90 (Lite1) and 0.85 (Lite2) on the 224-px images


def test_resize_wrapper_equals_interpolate_and_is_differentiable():
    inner = _tiny(40)
    model = at_size(inner, 32)
    assert isinstance(model, Resized) and model.input_size == 32 and model.native_size == 40
    assert at_size(inner, 40) is inner and model.labels == inner.labels and model.num_classes == 10
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    ref_in = F.interpolate(x, size=(40, 40), mode="bilinear", align_corners=False)
    assert torch.equal(model(x), inner(ref_in))
    g = torch.autograd.grad(model(x)[:, 3].sum(), x)[0]
    g_ref = torch.autograd.grad(inner(F.interpolate(x, size=(40, 40), mode="bilinear",
                                                    align_corners=False))[:, 3].sum(), x)[0]
    assert torch.equal(g, g_ref) and g.abs().sum() > 0
    xd = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: resize(t, 9), (xd,))
    assert torch.autograd.gradcheck(lambda t: resize(t, 4), (xd,))  # shrinking: anti-aliased, still differentiable
    assert torch.equal(resize(x, 32), x)


def test_ensemble_logits_are_the_mean_of_its_members():
    a, b = _tiny(), _tiny(flip=-0.5)
    ens = Ensemble([a, b], "ens:a+b")
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(ens(x), (a(x) + b(x)) / 2, rtol=0, atol=1e-6)
    assert ens.num_classes == 10 and ens.input_size == 32 and ens.device == a.device
    mixed = Ensemble([a, at_size(_tiny(40), 32)], "ens:a+c")  # members of different native sizes
    assert torch.allclose(mixed(x), (a(x) + _tiny(40)(resize(x, 40))) / 2, atol=1e-6)
    with pytest.raises(ModelError, match="different input sizes"):
        Ensemble([a, _tiny(40)], "bad")
    other = Classifier(TinyCNN(), "other", [f"k{i}" for i in range(10)], 32)
    with pytest.raises(ModelError, match="class list"):
        Ensemble([a, other], "bad")
    with pytest.raises(ModelError, match="at least two"):
        Ensemble([a], "bad")


def test_every_registered_attack_runs_on_an_ensemble():
    ens = Ensemble([_tiny(), _tiny(flip=-0.5)], "ens:a+b")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    cfg = build_config({"patch": 8, "steps": 2, "patch_size": 8, "patch_mode": "paste", "sf_max_iter": 2})
    for name, m in METHODS.items():
        res = run_attack(ens, x, None, cfg, name)
        assert res.x_adv.shape == x.shape and res.adv_logits.shape == (2, 10), name
        assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1, name
        if m.bounded:
            assert float((res.x_adv - x).abs().max()) <= float(res.budget.max()) + 1e-6, name


def test_model_specs_aliases_and_relations():
    lite0, ens = parse_spec("lite0"), parse_spec("ens:lite0+efficientnet_lite1")
    assert lite0 == parse_spec("efficientnet_lite0") and lite0.label == "lite0"
    assert ens.members == ("efficientnet_lite0", "efficientnet_lite1") and ens.label == "ens:lite0+lite1"
    assert ens.models == "efficientnet_lite0+efficientnet_lite1"
    assert parse_specs("lite0, lite0,ens:lite0+lite1") == [lite0, ens]
    lite2 = parse_spec("lite2")
    assert relation(lite0, lite0) == "white-box" and relation(ens, lite0) == "member"
    assert relation(ens, lite2) == "held-out" and relation(lite0, ens) == "held-out"
    for bad, match in (("nope", "Unknown model"), ("ens:lite0", "at least two"), ("ens:lite0+lite0", "at least two"),
                       (" , ", "No models")):
        with pytest.raises(ModelError, match=match):
            parse_specs(bad)


# ----------------------------------------------------------------------------- the matrix
def _tiny_run(**kw):
    a, b, c = _linear(0), _linear(1), _linear(3, 40)
    spec = {k: ModelSpec((k,)) for k in "abc"}
    ens = ModelSpec(("a", "b"), True)
    sources = [(spec["a"], a), (ens, Ensemble([a, b], ens.label))]
    targets = [(spec["a"], a), (spec["b"], b), (spec["c"], at_size(c, 32))]
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    y = a(x).argmax(1)  # labels a gets right; b and c (and the ensemble) get some of them
    cfg = build_config({"patch": 8, "steps": 2})
    return run_transfer(sources, targets, x, y, ["fgsm", "pgd", "sd-sgsm"], cfg, batch_size=2, **kw), x, y, cfg


def test_matrix_shape_columns_criterion_and_files():
    res, x, y, cfg = _tiny_run()
    assert list(res.summary.columns) == SUMMARY_COLUMNS and list(res.per_sample.columns) == SAMPLE_COLUMNS
    assert len(res.summary) == 3 * 2 * 3 and not res.stopped
    mat = res.matrix("pgd")
    assert mat.shape == (2, 3) and list(mat.index) == ["a", "ens:a+b"] and list(mat.columns) == ["a", "b", "c"]
    assert [p[0] for p in res.panels()] == ["fgsm", "pgd", "sd-sgsm"]
    ps = res.per_sample
    for (method, source, target), cell in ps.groupby(["method", "source", "target"]):
        ev = cell[cell["evaluated"]]  # both the source and the target are right on clean input
        assert (ev["source_clean_pred"] == ev["label"]).all() and (ev["target_clean_pred"] == ev["label"]).all()
        row = res.summary[(res.summary["method"] == method) & (res.summary["source"] == source)
                          & (res.summary["target"] == target)].iloc[0]
        assert row["n"] == len(ev) and row["asr"] == pytest.approx(ev["success"].mean() if len(ev) else np.nan,
                                                                    nan_ok=True)
        assert row["l2_mean"] == pytest.approx(cell["l2"].mean())  # L2 over every sample attacked on the source
    rel = res.summary.set_index(["source", "target"])["relation"].to_dict()
    assert rel[("a", "a")] == "white-box" and rel[("ens:a+b", "a")] == "member" and rel[("ens:a+b", "c")] == "held-out"
    files = transfer_files(res)
    assert list(pd.read_csv(__import__("io").BytesIO(files["transfer.csv"])).columns) == SUMMARY_COLUMNS
    config = json.loads(files["transfer.json"])
    assert config["sources"][1] == {"label": "ens:a+b", "models": "a+b", "ensemble": True, "native_sizes": [32, 32]}
    assert config["targets"][2]["native_sizes"] == [40] and "224" not in config["resize_rule"]
    assert "both the source and the target" in files["transfer.md"].decode()


def test_source_equal_to_target_reproduces_the_white_box_benchmark_tiny():
    res, x, y, cfg = _tiny_run()
    bench = run_benchmark(_linear(0), x, y, ["fgsm", "pgd", "sd-sgsm"], cfg, batch_size=2)
    for method in ("fgsm", "pgd", "sd-sgsm"):
        cell = res.per_sample[(res.per_sample["method"] == method) & (res.per_sample["source"] == "a")
                              & (res.per_sample["target"] == "a")]
        wb = bench.per_sample[bench.per_sample["method"] == method]
        assert list(cell["index"]) == list(wb["index"])
        assert np.array_equal(cell["success"].to_numpy(bool), wb["success"].to_numpy(bool)), method
        assert np.array_equal(cell["l2"].to_numpy(), wb["l2"].to_numpy()), method
        assert res.matrix(method).loc["a", "a"] == pytest.approx(100 * bench.summary.set_index("method").loc[
            method, "asr"], abs=0)


def test_stop_keeps_finished_batches():
    calls = []
    res, *_ = _tiny_run(should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert res.stopped and 0 < len(res.per_sample) < 3 * 2 * 3 * 6
    assert not res.summary["complete"].all()


@pytest.mark.slow
def test_lite0_source_equal_to_target_reproduces_white_box_asr_exactly(lite0, imagenet_batch):
    x, y, keys = imagenet_batch
    x, y = x[:3], y[:3]
    cfg = build_config({"patch": 112, "steps": 2})
    methods = ["fgsm", "pgd", "sd-sgsm"]
    res = run_transfer([(parse_spec("lite0"), lite0)], [(parse_spec("lite0"), lite0)], x, y, methods, cfg,
                       batch_size=2, keys=keys[:3])
    bench = run_benchmark(lite0, x, y, methods, cfg, batch_size=2)
    for method in methods:
        wb = bench.per_sample[bench.per_sample["method"] == method]
        cell = res.per_sample[(res.per_sample["method"] == method) & (res.per_sample["target"] == "lite0")]
        assert np.array_equal(cell["success"].to_numpy(bool), wb["success"].to_numpy(bool)), method
        assert np.array_equal(cell["l2"].to_numpy(), wb["l2"].to_numpy()), method
        assert res.matrix(method).loc["lite0", "lite0"] == 100 * bench.summary.set_index("method").loc[method, "asr"]
        assert res.source_table().set_index("method").loc[method, "source_asr"] == \
            bench.summary.set_index("method").loc[method, "asr"]


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_transfer_on_two_images_writes_tables_and_figure(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["transfer", "--sources", "lite0,ens:lite0+efficientnet_lite1", "--targets", "lite0,lite1",
            "--methods", "fgsm,pgd", "--steps", "2", "--limit", "2", "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "PGD: ASR (%)" in captured.out and "ens:lite0+lite1" in captured.out
    assert "[" in captured.err and "pgd on ens:lite0+lite1" in captured.err  # progress on stderr
    names = {p.name for p in out.iterdir()}
    assert {"transfer.csv", "transfer_per_sample.csv", "transfer.md", "transfer.json", "transfer_matrix.pdf",
            "transfer_matrix.png", "transfer_matrix.svg", "transfer_matrix.json"} <= names
    summary = pd.read_csv(out / "transfer.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS and len(summary) == 2 * 2 * 2
    ens = summary[summary["source"] == "ens:lite0+lite1"]
    assert set(ens["source_models"]) == {"efficientnet_lite0+efficientnet_lite1"}
    assert set(ens["relation"]) == {"member"} and (summary["size"] == 224).all()
    config = json.loads((out / "transfer.json").read_text())
    assert config["targets"][1]["native_sizes"] == [240] and config["n_total"] == 2


def test_cli_transfer_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    unavailable = [m.name for m in available_models() if not m.available]
    cases = [(["--sources", "nope", "--targets", "lite0"], "Unknown model"),
             (["--sources", " , ", "--targets", "lite0"], "No sources"),
             (["--sources", "lite0", "--targets", ""], "No targets"),
             (["--sources", "ens:lite0", "--targets", "lite0"], "at least two"),
             (["--sources", "lite0", "--targets", "lite1", "--methods", "zz"], "Unknown method"),
             (["--sources", "lite0", "--targets", "lite1", "--limit", "0"], "--limit")]
    if unavailable:
        cases.append((["--sources", "lite0", "--targets", unavailable[0]], "not available offline"))
    for extra, match in cases:
        assert main(["transfer", *extra, "--out", str(tmp_path / "x")]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and match in err, (extra, err)
        assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- the page
def _page(**query):

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP_DIR / "pages" / "9_Transfer.py"),
                           default_timeout=600)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


@pytest.mark.slow
def test_transfer_page_runs_shows_matrix_example_and_downloads():
    at = _page(sources="lite0", ens="lite0,lite1", targets="lite0,lite1", methods="fgsm", limit="2", steps="2",
               patch="112")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.multiselect(key="tr_sources").value == ["lite0"] and at.multiselect(key="tr_ens").value == ["lite0",
                                                                                                          "lite1"]
    assert any("--sources lite0,ens:lite0+lite1 --targets lite0,lite1" in c.value for c in at.caption)
    at.button(key="tr_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert list(table["source"]) == ["lite0", "ens:lite0+lite1"]
    assert list(table["models"]) == ["efficientnet_lite0", "efficientnet_lite0+efficientnet_lite1"]
    example = at.dataframe[1].value
    assert list(example["target"]) == ["lite0", "lite1"] and list(example["relation"]) == ["white-box", "held-out"]
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"transfer.csv", "transfer_per_sample.csv", "transfer.json", "transfer_matrix.pdf"} <= set(labels)
    link = next(c.value for c in at.code if "sources=" in c.value)
    assert "ens=lite0%2Clite1" in link and "targets=lite0%2Clite1" in link and "steps=2" in link
    at.multiselect(key="tr_methods").set_value(["fgsm", "pgd"]).run()
    at.button(key="tr_stop").click().run()  # pgd never ran: the finished fgsm runs are shown
    assert not at.exception and any("Stopped: 2 of 4" in w.value for w in at.warning)


def test_transfer_page_odd_link_values_are_ignored_and_empty_choices_explained():
    at = _page(sources="nope,lite0", targets="", methods="zz", limit="999", eps="nan")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.multiselect(key="tr_sources").value == ["lite0"] and at.multiselect(key="tr_targets").value == []
    assert at.number_input(key="tr_limit").value == 4
    assert any("eps" in w.value for w in at.warning) and any("sources='nope,lite0'" in w.value for w in at.warning)
    assert any("at least one source" in i.value for i in at.info)
