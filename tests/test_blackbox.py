"""Black-box attacks (Square, HopSkipJump, SimBA via ART): the query oracle counts exactly, every attack stops at
its budget, a success is a query inside the ε-ball, and the 'queries' metric is blank for white-box methods."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sdsgsm.attacks import METHODS, AttackConfig, run_attack
from sdsgsm.attacks.blackbox import BLACK_BOX, QueryOracle, QueryStop, attack_one, blackbox_params
from sdsgsm.experiments.queries import (
    asr_within,
    figure_files,
    parse_budgets,
    queries_files,
    queries_markdown,
    queries_to_match,
    run_queries,
)
from sdsgsm.metrics import METRICS, evaluate, summarise
from sdsgsm.models import Classifier
from sdsgsm.params import BLACK_BOX_METHODS, PARAMS
from sdsgsm.render.tables import DASH, metric_table

EPS = 8 / 255


class Counted(nn.Module):
    """The real model behind a counter of the images it is asked about (rows of every forward pass)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += len(x)
        return self.model(x)


def linear(num_classes: int = 10, size: int = 32, seed: int = 0):
    """A fixed-seed linear classifier of x − 0.5 with small margins: easy to fool within 8/255."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, num_classes))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(net[1].weight.shape, generator=g) * 0.01)
        net[1].bias.zero_()
    return Classifier(net, "linear", [f"c{i}" for i in range(num_classes)], size, mean=(0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def lin():
    return linear()


@pytest.fixture(scope="module")
def images():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_registry_entries_and_the_budget_parameter():
    assert tuple(BLACK_BOX) == BLACK_BOX_METHODS and set(BLACK_BOX) <= set(METHODS)
    for name in BLACK_BOX:
        m = METHODS[name]
        assert m.backend == "art" and m.bounded and not m.deterministic and not m.minimum_norm and m.label
        params = m.params(AttackConfig(queries=123))
        assert params["queries"] == 123 and "art_class" in params
    assert "Andriushchenko" in METHODS["square"].description and "Guo et al." in METHODS["simba"].description
    assert "Chen, Jordan & Wainwright" in METHODS["hopskipjump"].description
    q = PARAMS["queries"]
    assert q.kind is int and q.lo >= 1 and q.default <= q.hi and set(q.show_if[1]) == set(BLACK_BOX)
    with pytest.raises(ValueError):
        AttackConfig(queries=0)
    with pytest.raises(ValueError, match="not a black-box"):
        blackbox_params("pgd", AttackConfig())


def _oracle(lin, images, eps=EPS, budget=10, **kw):
    x0 = images[0].numpy()
    y = int(lin(images[:1]).argmax())
    return QueryOracle(lin, x0, y, eps, budget, **kw), x0, y


def test_oracle_counts_distinct_images_and_caches_repeats(lin, images):
    oracle, x0, y = _oracle(lin, images)
    a = oracle(x0[None])
    b = oracle(np.stack([x0, x0]))  # the same image again, twice: answered from the cache
    assert oracle.queries == 1 and np.array_equal(a[0], b[0]) and np.array_equal(b[0], b[1])
    near = np.clip(x0 + 1e-3, 0, 1)
    oracle(np.stack([near, x0, near]))
    assert oracle.queries == 2
    probs = QueryOracle(lin, x0, y, EPS, 5, probabilities=True)(x0[None])
    assert probs.min() >= 0 and math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)


def test_oracle_stops_inside_the_batch_at_the_budget(lin, images):
    oracle, x0, _ = _oracle(lin, images, budget=3)
    rng = np.random.default_rng(0)
    rows = np.clip(x0 + rng.uniform(-1e-3, 1e-3, size=(5, *x0.shape)), 0, 1).astype(np.float32)
    with pytest.raises(QueryStop):
        oracle(rows)  # 5 new images, 3 fit
    assert oracle.queries == 3 and oracle.success_at is None
    with pytest.raises(QueryStop):
        oracle(rows[3:4])  # nothing fits any more
    assert oracle.queries == 3
    oracle(rows[:2])  # images already asked cost nothing, even past the budget
    assert oracle.queries == 3


def test_oracle_success_is_the_first_fooling_query_inside_the_ball(lin, images):
    x = images[:1]
    white = run_attack(lin, x, None, AttackConfig(eps=EPS), "fgsm")  # a point inside the ε-ball that fools
    assert bool(white.adv_pred != white.clean_pred)
    fooling = white.x_adv[0].numpy()
    far = np.clip(images[0].numpy() + 0.5 * np.sign(fooling - images[0].numpy()), 0, 1).astype(np.float32)
    oracle, x0, y = _oracle(lin, images, budget=50)
    oracle(x0[None])
    oracle(far[None])  # fools, but outside the ε-ball: no success
    assert oracle.success_at is None and int(lin(torch.from_numpy(far)[None]).argmax()) != y
    with pytest.raises(QueryStop):
        oracle(np.stack([x0, fooling, np.clip(x0 + 2e-3, 0, 1)]))  # the third row is never asked
    assert oracle.success_at == oracle.queries == 3 and np.array_equal(oracle.best, fooling)


@pytest.mark.parametrize("name", BLACK_BOX)
@pytest.mark.parametrize("budget", [1, 7, 40])
def test_every_black_box_attack_stops_at_its_budget_and_counts_exactly(lin, images, name, budget):
    """A budget too small to fool (ε = 0.5/255): the attack asks exactly what the counter saw, never more than the
    budget; HopSkipJump and SimBA spend all of it (Square may end its iterations early when a square repeats an
    image it already asked)."""
    cfg = AttackConfig(eps=0.5 / 255, queries=budget)
    counted = Counted(lin)
    x0 = images[0].numpy()
    y = int(lin(images[:1]).argmax())
    x_adv, queries = attack_one(name, counted, x0, y, 10, cfg)
    assert queries == counted.rows <= budget
    if name != "square":
        assert queries == budget
    assert np.abs(x_adv - x0).max() <= cfg.eps + 1e-6
    r = run_attack(lin, images[:2], None, cfg, name)
    assert r.queries.dtype == torch.int64 and r.queries.shape == (2,) and (r.queries <= budget).all()


@pytest.mark.parametrize("name", ["square", "hopskipjump"])
def test_successes_lie_in_the_ball_and_cost_at_most_the_budget(lin, images, name):
    cfg = AttackConfig(eps=EPS, queries=400, seed=0)
    r = run_attack(lin, images, None, cfg, name)
    fooled = (r.adv_pred != r.clean_pred)
    assert fooled.any()  # the linear model is easy to fool
    assert ((r.x_adv - images).abs() <= EPS + 1e-6).all() and (r.queries <= cfg.queries).all()
    assert (r.queries[fooled] >= 1).all()
    per = evaluate(images, r).per_sample
    assert np.array_equal(per["queries"].to_numpy(), r.queries.numpy().astype(float))
    s = summarise(per)
    assert s["queries_mean"] == pytest.approx(float(r.queries[fooled].double().mean()))
    again = run_attack(lin, images, None, cfg, name)  # seeded: the same queries and the same result
    assert torch.equal(again.queries, r.queries) and torch.equal(again.x_adv, r.x_adv)


def test_queries_metric_is_blank_for_white_box_methods_and_tables_show_it(lin, images):
    m = METRICS["queries"]
    assert m.over == "successful" and not m.in_radar and not m.in_paper and not m.higher
    white = run_attack(lin, images, None, AttackConfig(), "pgd")
    assert white.queries is None
    s_white = summarise(evaluate(images, white).per_sample)
    assert math.isnan(s_white["queries_mean"]) and s_white["asr"] > 0
    black = run_attack(lin, images, None, AttackConfig(queries=300), "square")
    s_black = summarise(evaluate(images, black).per_sample)
    assert s_black["asr"] > 0 and math.isfinite(s_black["queries_mean"])
    cells = metric_table([{"method": "pgd", **s_white}, {"method": "square", **s_black}]).cells
    assert cells[m.header].iloc[0] == DASH and cells[m.header].iloc[1].split(" ")[0] == f"{s_black['queries_mean']:.0f}"


# ----------------------------------------------------------------------------- the query-budget experiment
@pytest.mark.parametrize("name", BLACK_BOX)
def test_a_smaller_budget_is_the_larger_run_cut_short(lin, images, name):
    """The experiment's rule: no attack depends on its budget until it runs out, so the run with budget b is
    the run with budget B cut at b queries (same seed): fooled within b ⇔ fooled within b in the long run."""
    small, big = 30, 120
    a = run_attack(lin, images, None, AttackConfig(queries=small), name)
    b = run_attack(lin, images, None, AttackConfig(queries=big), name)
    won_a = (a.adv_pred != a.clean_pred)
    won_b = (b.adv_pred != b.clean_pred) & (b.queries <= small)
    assert torch.equal(won_a, won_b)
    assert torch.equal(a.queries, torch.minimum(b.queries, torch.tensor(small)))
    assert torch.equal(a.x_adv[won_a], b.x_adv[won_a])


def test_an_image_gives_the_same_result_alone_or_in_a_batch(lin, images):
    cfg = AttackConfig(queries=60)
    for name in BLACK_BOX:
        batch = run_attack(lin, images[:3], None, cfg, name)
        alone = [run_attack(lin, images[i:i + 1], None, cfg, name) for i in range(3)]
        assert torch.equal(batch.x_adv, torch.cat([r.x_adv for r in alone]))
        assert torch.equal(batch.queries, torch.cat([r.queries for r in alone]))


def test_asr_within_and_queries_to_match_read_the_per_image_counts():
    per = pd.DataFrame({"success": [True, True, False, True], "queries": [5.0, 40.0, 100.0, 12.0]})
    assert [asr_within(per, b) for b in (4, 5, 12, 39, 40, 100)] == [0.0, 0.25, 0.5, 0.5, 0.75, 0.75]
    assert queries_to_match(per, 0.5) == 12 and queries_to_match(per, 0.75) == 40
    assert queries_to_match(per, 1.0) is None and queries_to_match(per, 0.0) == 0
    assert queries_to_match(per, float("nan")) is None
    assert parse_budgets("200, 50,50") == (50, 200)
    for bad in ("0", "x", "", "20000"):
        with pytest.raises(ValueError):
            parse_budgets(bad)


def test_run_queries_tables_and_figure(lin, images):
    res = run_queries(lin, images, None, ["square", "pgd", "fgsm"], AttackConfig(steps=3), (10, 40, 80),
                      batch_size=3, keys=[f"k{i}" for i in range(len(images))], data="random")
    s = res.summary
    black = s[s["kind"] == "black-box"]
    assert list(black["budget"]) == [10, 40, 80] and list(s[s["kind"] == "white-box"]["method"]) == ["pgd", "fgsm"]
    steps = dict(zip(s["method"], s["gradient_steps"]))
    assert steps["fgsm"] == 1 and steps["pgd"] == 3
    assert np.all(np.diff(black["asr"].to_numpy()) >= 0)  # a larger budget never fools fewer images
    per = res.per_sample
    sq = per[per["method"] == "square"]
    assert len(sq) == res.config["n_attacked"] and (sq["queries"] <= 80).all() and per[per["kind"] == "white-box"][
        "queries"].isna().all()
    assert black["asr"].iloc[-1] == pytest.approx(sq["success"].mean())
    match = {(r["black_box"], r["white_box"]): r for r in res.config["match"]}
    assert set(match) == {("square", "pgd"), ("square", "fgsm")}
    assert all(r["queries_to_match"] is None or type(r["queries_to_match"]) is int for r in match.values())
    text = queries_markdown(res)
    assert "ASR @ 80 q (%)" in text and "FGSM" in text and "white-box (1 gradient step)" in text
    assert "nan" not in text.lower() and "None" not in text
    files = {**queries_files(res), **figure_files(res)}
    assert {"queries.csv", "queries.md", "queries.json", "queries_asr.png", "queries_asr.json"} <= set(files)
    assert files["queries_asr.png"].startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="No black-box method"):
        run_queries(lin, images, None, ["pgd"], AttackConfig(), (10,))


def test_cli_refuses_bad_budgets_before_any_work(tmp_path, capsys):
    from sdsgsm.cli import main

    assert main(["queries", "--budgets", "0", "--out", str(tmp_path / "q")]) == 2
    assert "outside" in capsys.readouterr().err and not (tmp_path / "q" / "queries.csv").exists()
