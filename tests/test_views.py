"""Per-method views: every registry method through the Explorer shows only the widgets it reads and only the
panels and sentences that apply to it; derived ('auto') values say their value; an image the model already
gets wrong is not reported as a failed attack."""

from pathlib import Path

import pytest
import torch
from helpers import page_path, tiny_classifier
from streamlit.testing.v1 import AppTest

from sdsgsm.attacks import METHODS, AttackConfig
from sdsgsm.experiments.report import attack_tensor
from sdsgsm.params import PARAMS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 900
# small and quick on 2 CPU cores: 16 windows, two steps, one SmoothFool iteration, a 32 px patch
FAST = {"patch": "56", "steps": "2", "sf_max_iter": "1", "patch_size": "32"}


def page(name: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / page_path(name)), default_timeout=TIMEOUT)
    for k, v in {**FAST, **query}.items():
        at.query_params[k] = v
    return at.run()


def param_widgets(at, prefix: str) -> set[str]:
    """The spec parameters whose widgets the sidebar shows (keys '<prefix>_<name>')."""
    keys = {getattr(w, "key", None) for w in at.sidebar}
    return {name for name in PARAMS if f"{prefix}_{name}" in keys}


def texts(at) -> str:
    """Every sentence of the main area: markdown, captions, warnings, image captions."""
    images = [i.caption for e in at.main.get("image") for i in e.proto.imgs]
    return "\n".join([m.value for m in at.main.markdown] + [c.value for c in at.main.caption] +
                      [w.value for w in at.main.warning] + images)


@pytest.mark.slow
def test_every_method_shows_only_its_widgets_panels_and_sentences():
    at = page("Explorer")
    assert not at.exception and not at.error
    for name, m in METHODS.items():
        at.selectbox(key="ex_method").select(name).run()
        assert not at.exception and not at.error, name
        shown, views = param_widgets(at, "ex"), set(m.views)
        assert shown <= set(m.widgets), (name, shown - set(m.widgets))  # no widget the method does not read
        assert ("eps" in shown) == (m.bounded and not m.spatial), name
        assert ("eps_strong" in shown) == m.spatial, name
        if not m.bounded:  # no ε, no cap, no budget map for an unbounded method
            assert not shown & {"eps", "eps_strong", "eps_weak", "eps_max"}, name
        assert ("steps" in shown) == m.multi_step, name
        body, tiles = texts(at), {t.label: t.value for t in at.metric}
        assert ("no pixel moved more than" in body) <= ("bound" in views), name
        assert ("Yellow" in body) <= ("tiles" in views) and ("Red: sensitive region R" in body) <= ("region" in views)
        side = " ".join(c.value for c in at.sidebar.caption)
        assert ("Δ ranges" in side) == ("region" in views), name
        assert ("L∞" in tiles) == ("linf" in views) and ("Patch" in tiles) == ("patch_box" in views), name
        assert ("Scan time" in tiles) == ("saliency" in views and "patch" in shown), name
        assert "255.00" not in " ".join(tiles.values()) and "step(s)" not in body, name
        assert f"Adversarial ({m.label}):" in body, name
        in_expanders = sum(len(e.get("image")) for e in at.expander)  # e.g. the patch's shipped placement figures
        heat = len(at.main.get("image")) - 3 - in_expanders  # the heat maps are pictures after the three photos
        assert heat == ("saliency" in views and "patch" in shown) + ("budget_map" in views), name
        reading = [t.value for t in at.markdown if t.value.startswith("The label")]
        if reading and "bound" not in views:
            assert "ε" not in reading[0], name  # no budget sentence for an unbounded method


def test_registry_views_follow_the_flags():
    for name, m in METHODS.items():
        assert set(m.widgets) <= set(PARAMS), name
        assert ("region" in m.views) == m.spatial and ("tiles" in m.views) == m.spatial, name
        assert "budget_map" not in m.views or not m.minimum_norm, name  # minimum-norm: realised norms instead
        assert ("norms" in m.views) == m.minimum_norm, name
        assert not m.minimum_norm or not {"alpha"} & set(m.widgets), name


def test_auto_values_say_their_value():
    at = page("Explorer")
    captions = [c.value for c in at.sidebar.caption]
    alpha = at.slider(key="ex_alpha")
    assert alpha.value == 0 and alpha.proto.format == "auto (10/255)"  # 2.5·ε_strong/T = 2.5·8/2
    assert any(c.startswith("Stride s = auto (56 px)") for c in captions), captions
    at.slider(key="ex_alpha").set_value(2.0).run()
    assert at.slider(key="ex_alpha").proto.format != "auto (10/255)"


def test_figures_and_sweeps_show_only_the_chosen_methods_widgets():
    at = page("Figures", methods="fgsm,sd-sgsm")
    assert not at.exception
    used = set(METHODS["fgsm"].widgets) | set(METHODS["sd-sgsm"].widgets)
    assert param_widgets(at, "fig") <= used and "omega" in param_widgets(at, "fig")
    at = page("Sweeps", methods="fgsm,sd-sgsm", param="eps", values="0:8/255:3")
    assert not at.exception
    shown = param_widgets(at, "sw")
    assert shown <= used and "eps" not in shown and "eps_strong" in shown  # ε is swept: no ε slider


def test_already_misclassified_is_said_and_the_prediction_can_be_attacked():
    model = tiny_classifier()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    pred = int(model(x).argmax())
    wrong = (pred + 1) % 10
    s = attack_tensor(model, x, AttackConfig(), "fgsm", label=wrong).summary
    assert s["already_misclassified"] and any("Already misclassified" in w and "not counted in ASR" in w
                                              for w in s["warnings"])
    assert not attack_tensor(model, x, AttackConfig(), "fgsm", label=pred).summary["already_misclassified"]

    at = page("Explorer", method="fgsm", image="imagenet/imagenet_07_609.jpg")  # a jeep the model calls convertible
    assert not at.exception and not at.error
    body = texts(at)
    assert "Already misclassified" in body and "not counted in ASR" in body and "The label stayed" not in body
    assert {t.label: t.value for t in at.metric}["Attack success"] != "no"
    at.button(key="ex_attack_prediction").click().run()
    assert not at.exception and at.selectbox(key="ex_label_mode").value == "clean prediction"
    assert "Already misclassified" not in texts(at)


def _curve(clean: dict[str, float]):
    import pandas as pd

    rows = [{"method": "fgsm", "model": m, "eps": e, "accuracy": a * (1 - 4 * e)} for m, a in clean.items()
            for e in (0.0, 0.1, 0.2)]
    return pd.DataFrame(rows)


def test_lab_sentences_follow_the_numbers():
    import pandas as pd

    from sdsgsm.experiments.lab import headline
    from sdsgsm.ui import lab as ul

    trained = _curve({"standard": 0.97, "distilled": 0.96, "fgsm_at": 0.95, "pgd_at": 0.94})
    chance = _curve({"standard": 0.97, "distilled": 0.11, "fgsm_at": 0.95, "pgd_at": 0.94})
    cw = pd.DataFrame({"model": ["standard", "distilled"], "n_clean_correct": [20, 19], "success_rate": [1.0, 1.0],
                       "l2_mean": [0.5, 0.6]})
    none = cw.assign(success_rate=[1.0, 0.0])
    sat = pd.DataFrame({"model": ["standard", "distilled"], "share_max_prob_gt_0999": [0.1, 0.9],
                        "share_zero_grad": [0.0, 0.6]})
    flat = sat.assign(share_max_prob_gt_0999=[0.1, 0.0], share_zero_grad=[0.0, 0.0])
    assert ul.untrained_text(trained, 20) == "" and "distilled** (11.0%)" in ul.untrained_text(chance, 3)
    assert "does not remove the vulnerability" in ul.cw_text(cw, trained)
    assert "does not remove" not in ul.cw_text(cw, chance) and "at chance" in ul.cw_text(cw, chance)
    assert "does not remove" not in ul.cw_text(none, trained) and "**0%**" in ul.cw_text(none, trained)
    assert "moves nothing" in ul.saturation_text(sat, trained) and "90%" in ul.saturation_text(sat, trained)
    assert "moves nothing" not in ul.saturation_text(flat, trained)
    assert "at chance" in ul.saturation_text(sat, chance)
    assert "at chance: untrained" in ul.headline_text(headline(chance), chance)
    weak = _curve({"standard": 0.44, "distilled": 0.11, "fgsm_at": 0.6, "pgd_at": 0.45})
    assert "already on clean digits (44.0%)" in ul.headline_text(headline(weak), weak)


@pytest.mark.slow
def test_robust_training_text_after_a_one_epoch_retrain():
    at = AppTest.from_file(str(ROOT / page_path("Robust training")), default_timeout=TIMEOUT).run()
    assert not at.exception and not at.warning
    assert any("does not remove the vulnerability" in m.value for m in at.markdown)  # the shipped models: it holds
    at.number_input(key="lab_epochs").set_value(1).run()
    at.button(key="lab_retrain").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    clean = table[table["ε (×1/255)"] == 0].iloc[0]
    body = " ".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [w.value for w in at.warning])
    low = [m for m in ("standard", "distilled", "fgsm_at", "pgd_at") if clean[m] <= 15.0]
    assert ("*falls*" in body) <= (clean["standard"] >= 50.0) and "ε = 0/255" not in body
    for m in low:  # every model at chance is named as untrained, with its accuracy
        assert f"({clean[m]:.1f}%)" in " ".join(w.value for w in at.warning), m
    if "distilled" in low:
        assert "does not remove the vulnerability" not in body and "moves nothing" not in body
    else:
        assert not any("Untrained" in w.value for w in at.warning if "distilled" in w.value)
