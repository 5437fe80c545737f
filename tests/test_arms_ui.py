"""The new attacks and defences on screen: the Defences page's Detection and Randomisation-and-EOT views, the
Benchmark page's Queries view and the Robust training page's six-model, masking and certificate sections.

Each view renders, a small run (2 gallery images, few steps) completes and shows its table, the sentences are
built from the numbers (two results in, two different sentences out) and bad input gives one line."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import ROOT, page_path
from streamlit.testing.v1 import AppTest

from sdsgsm.attacks import METHODS, method_label
from sdsgsm.attacks.blackbox import BLACK_BOX
from sdsgsm.detection import ADAPTIVE_NAME
from sdsgsm.experiments.lab import ALL_MODELS
from sdsgsm.experiments.randomisation import MODES
from sdsgsm.metrics import METRICS, format_metric
from sdsgsm.render.tables import metric_table
from sdsgsm.ui import defences as ud
from sdsgsm.ui import lab as ul
from sdsgsm.ui import queries as uq
from sdsgsm.ui.limits import APP_MAX_ARM_IMAGES, APP_MAX_ARM_STEPS, APP_MAX_QUERIES


def _page(label: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / page_path(label)), default_timeout=600)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    return "\n".join(m.value for m in at.markdown)


# ----------------------------------------------------------------------------- Defences: Detection
def test_detection_view_runs_on_two_images_and_states_its_numbers():
    at = _page("Defences")
    at.radio(key="def_view").set_value("Detection").run()
    assert not at.exception and at.button(key="def_det_run")  # the view renders, waiting for Run
    at.multiselect(key="def_det_methods").set_value(["fgsm"]).run()
    at.number_input(key="def_det_limit").set_value(2).run()
    at.number_input(key="def_det_steps").set_value(2).run()
    at.button(key="def_det_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["attack"])[0] == method_label("fgsm") and ADAPTIVE_NAME in list(table["attack"])
    assert {"detection rate (%)", "evasion rate (%)", "ROC AUC"} <= set(table.columns)
    adaptive = table[table["attack"] == ADAPTIVE_NAME].iloc[0]
    shown = "–" if pd.isna(adaptive["detection rate (%)"]) else f"{adaptive['detection rate (%)']:.1f} %"
    assert f"the adaptive attack is detected on **{shown}**" in _texts(at)
    assert len(at.get("plotly_chart")) == 1  # the ROC curves


def _det_summary(adaptive_rate: float, rates: list[float]) -> pd.DataFrame:
    rows = [{"method": m, "mode": "non-adaptive", "detection_rate": r, "evasion_rate": 0.0}
            for m, r in zip(["fgsm", "pgd"], rates)]
    return pd.DataFrame(rows + [{"method": ADAPTIVE_NAME, "mode": "adaptive", "detection_rate": adaptive_rate,
                                 "evasion_rate": 1 - adaptive_rate}])


def test_detection_sentence_follows_the_numbers():
    evaded = ud.detection_text(_det_summary(0.0, [1.0, 0.5]), 0.05)
    caught = ud.detection_text(_det_summary(0.75, [0.75, 0.75]), 0.1)
    assert "detected on **0.0 %**" in evaded and "**75.0 %** on average" in evaded and "evaded" in evaded
    assert "100.0 % for FGSM" in evaded and "at most 5 %" in evaded
    assert "detected on **75.0 %**" in caught and "does not evade" in caught and "at most 10 %" in caught


def test_detection_and_eot_bad_input_is_one_line():
    with pytest.raises(ValueError, match=f"1 … {APP_MAX_ARM_IMAGES} images") as err:
        ud.run_detect(APP_MAX_ARM_IMAGES + 1, "efficientnet_lite0", ("fgsm",), 8 / 255, 2, 0.05)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="limit of") as err:
        ud.arm_config(8 / 255, APP_MAX_ARM_STEPS + 1)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="EOT samples"):
        ud.run_eot(2, "efficientnet_lite0", ("pgd",), 8 / 255, 2, 0, 2, 0.9)
    assert set(ud.eot_method_options()) < set(METHODS) and not set(ud.detect_method_options()) & set(BLACK_BOX)


# ----------------------------------------------------------------------------- Defences: Randomisation and EOT
def test_randomisation_view_runs_on_two_images_and_states_its_numbers():
    at = _page("Defences")
    at.radio(key="def_view").set_value("Randomisation and EOT").run()
    assert not at.exception and at.button(key="def_eot_run")
    for name, value in (("limit", 2), ("steps", 2), ("eot", 2), ("draws", 2)):
        at.number_input(key=f"def_eot_{name}").set_value(value).run()
    at.button(key="def_eot_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table.columns) == ["attack", "no defence", *MODES] and list(table["attack"]) == [method_label("pgd")]
    row = table.iloc[0]
    assert f"{row['no defence']:.1f} % on the bare model" in _texts(at)
    assert f"{row['non-adaptive']:.1f} % once the random resize-and-pad" in _texts(at)


def test_eot_sentence_follows_the_numbers():
    config = {"eot_samples": 4, "clean_acc": 1.0, "clean_acc_defended": 0.75}
    row = lambda na, eot: pd.DataFrame([{"attack": "PGD", "no defence": 100.0, "non-adaptive": na,  # noqa: E731
                                         "adaptive, one draw": 60.0, "EOT": eot}])
    won = ud.eot_text(row(25.0, 100.0), config)
    none = ud.eot_text(row(50.0, 50.0), config)
    assert "25.0 % once" in won and "**100.0 % with EOT** (n = 4" in won and "wins back 75.0 points" in won
    assert "50.0 % once" in none and "no gain here" in none and "75.0 %" in none


# ----------------------------------------------------------------------------- Benchmark: Queries
def test_queries_view_runs_on_two_images_and_shows_the_match_table():
    at = _page("Benchmark")
    at.radio(key="bench_view").set_value("Queries").run()
    assert not at.exception and at.button(key="bench_q_run")
    at.number_input(key="bench_q_limit").set_value(2).run()
    at.multiselect(key="bench_q_white").set_value(["fgsm"]).run()
    at.multiselect(key="bench_q_budgets").set_value([10, 50]).run()
    at.button(key="bench_q_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    match = at.dataframe[0].value
    assert list(match.columns) == ["black-box", "to match", "white-box ASR", "queries per image"]
    q = match.iloc[0]["queries per image"]
    text = _texts(at)
    assert (f"needs **{q}** queries per image" in text) if q.isdigit() else ("not within 50 queries" in text)
    asr = at.dataframe[1].value
    assert asr.set_index("method").loc[method_label("fgsm"), "mean queries to success"] == "–"  # white-box
    assert len(at.get("plotly_chart")) == 1


def test_queries_bad_input_gives_one_line():
    at = _page("Benchmark")
    at.radio(key="bench_view").set_value("Queries").run()
    at.multiselect(key="bench_q_budgets").set_value([]).run()
    assert not at.exception and len(at.error) == 1 and "budget" in at.error[0].value
    at.multiselect(key="bench_q_budgets").set_value([50]).run()
    at.multiselect(key="bench_q_black").set_value([]).run()
    assert len(at.error) == 1 and "black-box" in at.error[0].value
    with pytest.raises(ValueError, match="limit") as err:
        uq.check_request(["square"], ["fgsm"], 2, 5, [APP_MAX_QUERIES + 1])
    assert "\n" not in str(err.value)


def _match_config(q_square, q_simba) -> dict:
    return {"budgets": [50, 400], "eps": 8 / 255, "n_attacked": 8, "white_box": ["fgsm"],
            "params": {"fgsm": {"gradient_steps": 1}},
            "match": [{"black_box": "square", "white_box": "fgsm", "white_asr": 1.0, "queries_to_match": q_square},
                      {"black_box": "simba", "white_box": "fgsm", "white_asr": 1.0, "queries_to_match": q_simba}]}


def test_match_sentence_and_table_follow_the_numbers():
    one = uq.match_text(_match_config(39, None))
    two = uq.match_text(_match_config(120, 300))
    assert "Square needs **39** queries per image" in one and "SimBA does not within 400 queries" in one
    assert "Square needs **120**" in two and "SimBA needs **300**" in two and "does not" not in two
    assert "1 gradient step, ASR 100.0 % at ε = 8/255 on 8" in one
    assert list(uq.match_frame(_match_config(39, None))["queries per image"]) == ["39", "not within 400"]


def test_queries_metric_shows_a_dash_for_white_box_methods():
    rows = [{"method": "fgsm", "n": 2, "queries_mean": float("nan"), "queries_std": float("nan")},
            {"method": "square", "n": 2, "queries_mean": 31.0, "queries_std": 4.0}]
    cells = metric_table(rows, [METRICS["queries"]]).cells
    assert cells.iloc[0, -1] == "–" and cells.iloc[1, -1].startswith(format_metric("queries", 31.0, unit=False))


# ----------------------------------------------------------------------------- Robust training
def test_robust_training_sections_render_from_the_shipped_results():
    at = _page("Robust training")
    assert not at.error, [e.value for e in at.error]
    robust = ul.shipped_robust()
    table = next(d.value for d in at.dataframe if "CW-L2 accuracy" in d.value.columns)
    assert len(table) == len(ALL_MODELS) and {"FGSM ε = 0.3", "CW-L2 accuracy"} <= set(table.columns)
    d = robust["table"].fgsm.query("model == 'distilled' and eps == 0.3")["accuracy"].iloc[0]
    text = _texts(at)
    assert "92.91 %" in text and f"our distilled model keeps {d * 100:.1f} % at ε = 0.3" in text
    assert len(next(d.value for d in at.dataframe if "worst" in d.value.columns)) == len(robust["table"].masking)
    assert "A certificate is a **lower bound**" in text
    first = robust["table"].masking.iloc[0]
    assert f"- {ul.MODEL_NAMES[first['model']]} at ε = {first['eps']:g}: FGSM {first['fgsm'] * 100:.1f} %" in text
    cert = ul.shipped_certify()
    assert ul.certify_png(cert["curve"], cert["digits"]).startswith(b"\x89PNG")  # the figure beside the sentence
    assert f"n = {cert['info']['n']} samples, α = {cert['info']['alpha']:g}" in "\n".join(c.value for c in at.caption)


def test_lower_bound_sentence_follows_the_numbers():
    curve = lambda c, e: pd.DataFrame({"sigma": [0.25, 0.25], "radius": [0.0, 0.5],  # noqa: E731
                                       "certified": [0.9, c], "empirical": [0.95, e]})
    below = ul.lower_bound_text(curve(0.35, 0.6), 0.001)
    above = ul.lower_bound_text(curve(0.7, 0.6), None)
    assert "r = 0.5, 35.0 % of the digits are certified and PGD-L2 leaves 60.0 %" in below
    assert "at or below the empirical one at all 2 points" in below and "1 − α = 0.999" in below
    assert "70.0 %" in above and "1 of 2 points lie above" in above
    assert "no digit is certified" in ul.lower_bound_text(curve(0.0, 0.6).assign(certified=0.0))


def test_smoothing_one_gallery_photo_reports_votes_and_the_note():
    at = _page("Robust training")
    photo = at.selectbox(key="lab_smooth_photo").value
    at.button(key="lab_smooth").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    out = ul.smoothing(photo)  # the run store's copy of what the page showed
    r = out["photos"][0]
    text = _texts(at)
    assert f"the top class got {r['n_a']} of {r['n']} votes, spread over {r['classes_voted']} classes" in text
    assert ("**abstains**" in text) == r["abstained"] and "never seen Gaussian noise" in text
