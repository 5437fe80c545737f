"""Query budget against white-box gradients: how many model queries does a black-box attacker need to match
one white-box gradient step?

For each black-box method (Square, Andriushchenko et al., ECCV 2020; HopSkipJump, Chen, Jordan & Wainwright,
IEEE S&P 2020; SimBA, Guo et al., ICML 2019; :mod:`sdsgsm.attacks.blackbox`) the ASR at every query budget b of
a grid, beside the white-box ASR of FGSM (one gradient step, Goodfellow et al. 2015) and PGD (T steps, Madry et
al. 2018) at the same ε, on the same clean-correct images.

One run per black-box method, at the largest budget B: none of the three depends on its budget until the
budget runs out (:func:`sdsgsm.attacks.blackbox.blackbox_params`), so the run with budget b is the run with
budget B cut at b queries, and ASR(b) = share of the evaluated images whose first success came within b
queries (``queries ≤ b``). The match question is answered exactly from the per-image query counts: the
smallest q at which the black-box ASR reaches the white-box one (None: not within B).

:func:`run_queries` is pure (no files); :func:`queries_files` and :func:`figure_files` give the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import METHODS, AttackConfig, method_label, run_attack
from sdsgsm.attacks.blackbox import BLACK_BOX, blackbox_params
from sdsgsm.experiments.runner import (
    ExperimentResult,
    UnitStore,
    fingerprint_model,
    fingerprint_tensor,
    package_versions,
    parse_methods,
    result_files,
    select,
    warm_up,
)
from sdsgsm.metrics import ASR_CRITERION, linf_norms
from sdsgsm.params import check

DEFAULT_BUDGETS = (50, 100, 200, 500, 1000)
DEFAULT_WHITE = ("fgsm", "pgd")
CRITERION = ASR_CRITERION["clean_correct"]
SAMPLE_COLUMNS = ["method", "kind", "index", "key", "label", "clean_pred", "adv_pred", "success", "queries", "linf",
                  "time_s"]
OUTPUT_FILES = ("queries.csv", "queries_per_sample.csv", "queries.md", "queries.json")


def parse_budgets(text: str | Sequence[int]) -> tuple[int, ...]:
    """'50,100,200' or a list -> sorted distinct budgets, each a valid ``queries`` value; ValueError otherwise."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    out = []
    for p in parts:
        if p == "":
            continue
        try:
            b = int(p)
        except (TypeError, ValueError):
            raise ValueError(f"--budgets takes comma-separated integers (got {p!r}).") from None
        check("queries", b)  # the spec's range, one-line ValueError
        out.append(b)
    if not out:
        raise ValueError("No query budgets given; pass --budgets 50,100,200.")
    return tuple(sorted(set(out)))


def split_methods(methods: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """Registry names -> (black-box ones, white-box ones), each in the given order."""
    names = parse_methods(methods)
    return [m for m in names if m in BLACK_BOX], [m for m in names if m not in BLACK_BOX]


def gradient_steps(method: str, cfg: AttackConfig) -> int:
    """Gradient steps of a white-box method: 1 for a one-step method, T (cfg.steps) for a multi-step one."""
    return cfg.steps if METHODS[method].multi_step else 1


def _rows(method: str, r, idx: torch.Tensor, x: torch.Tensor, keys: list[str]) -> pd.DataFrame:
    n = len(idx)
    queries = r.queries.cpu().numpy().astype(float) if r.queries is not None else np.full(n, np.nan)
    return pd.DataFrame({
        "method": method, "kind": "black-box" if r.queries is not None else "white-box",
        "index": idx.cpu().numpy(), "key": [keys[i] for i in idx.tolist()], "label": r.y.cpu().numpy(),
        "clean_pred": r.clean_pred.cpu().numpy(), "adv_pred": r.adv_pred.cpu().numpy(),
        "success": (r.adv_pred != r.clean_pred).cpu().numpy(), "queries": queries,
        "linf": linf_norms(x, r.x_adv), "time_s": np.full(n, r.time_s / n)})


def asr_within(per: pd.DataFrame, budget: float) -> float:
    """Share of the rows whose attack succeeded within ``budget`` queries (white-box rows: succeeded at all)."""
    if not len(per):
        return float("nan")
    ok = per["success"].to_numpy(bool)
    q = per["queries"].to_numpy(float)
    return float(np.mean(ok & ~(q > budget)))


def queries_to_match(per: pd.DataFrame, target: float) -> int | None:
    """The smallest query count q at which the black-box ASR (share succeeded within q queries) reaches
    ``target``; None when it does not within the run's budget (or target is NaN)."""
    if not len(per) or not np.isfinite(target):
        return None
    wins = np.sort(per.loc[per["success"].astype(bool), "queries"].to_numpy(float))
    need = int(np.ceil(target * len(per) - 1e-9))
    if need <= 0:
        return 0
    return int(wins[need - 1]) if need <= len(wins) else None


def run_queries(model, x: torch.Tensor, y: torch.Tensor | None, methods: str | Sequence[str], cfg: AttackConfig,
                budgets: Sequence[int] = DEFAULT_BUDGETS, *, batch_size: int = 8,
                progress: Callable[[str, int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None, keys: list[str] | None = None, data: str = "",
                meta: dict | None = None, units: UnitStore | None = None) -> ExperimentResult:
    """ASR against query budget for the black-box methods, and the white-box ASR of the others, at cfg.eps.

    Args: model maps (B, 3, H, W) in [0, 1] to logits; x (N, 3, H, W); y (N,) labels (−1 unknown) or None;
    methods registry names (black-box ones get the budget grid, the rest one white-box row each); cfg the
    AttackConfig (its ε, T, seed; its ``queries`` is replaced by max(budgets)); budgets the grid; batch_size
    images per attack call; progress(text, done, total) counts attacked images; should_stop polled before
    every batch; units resumable per-method results. Only clean-correct images are attacked.
    Returns ExperimentResult: summary one row per (black-box method, budget) and per white-box method
    (method, label, kind, budget, gradient_steps, n, asr, queries_mean); per_sample one row per (method, image);
    config every parameter, the matches ('match': queries each black-box method needs to reach each white-box
    ASR) and the wall time.
    """
    t0 = time.perf_counter()
    budgets = parse_budgets(budgets)
    black, white = split_methods(methods)
    if not black:
        raise ValueError(f"No black-box method given; choose from {', '.join(BLACK_BOX)}.")
    x = x.detach().float()
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    y_used, label_source, _, idx = select(model, x, y, batch_size, "clean_correct")
    cfg_of = {m: replace(cfg, queries=max(budgets)) if m in BLACK_BOX else cfg for m in [*black, *white]}
    total, done, parts, stopped, warm = len(cfg_of) * len(idx), 0, [], False, False
    if units is not None:
        units.begin({"experiment": "queries", "methods": list(cfg_of), "attack_configs": cfg_of,
                     "budgets": list(budgets), "batch_size": batch_size, "model": fingerprint_model(model),
                     "data": data, "keys": keys, "images": fingerprint_tensor(x), "labels": fingerprint_tensor(y_used)},
                    len(cfg_of))
    for method, mcfg in cfg_of.items():
        key = UnitStore.key(method)
        if units is not None and key in units:
            parts += units.get(key)[0]
            done += len(idx)
            continue
        warm_up(model, x, method, warm)
        warm, got = True, []
        for a in range(0, len(idx), batch_size):
            if should_stop is not None and should_stop():
                stopped = True
                break
            ib = idx[a:a + batch_size]
            r = run_attack(model, x[ib], y_used[ib], mcfg, method)
            got.append(_rows(method, r, ib, x[ib], keys))
            done += len(ib)
            if progress:
                progress(method_label(method), done, total)
        if stopped:
            break
        frame = pd.concat(got, ignore_index=True) if got else pd.DataFrame(columns=SAMPLE_COLUMNS)
        parts.append(frame)
        if units is not None:
            units.add(key, [frame])
    per_sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SAMPLE_COLUMNS)
    summary = _summary(per_sample, black, white, budgets, cfg)
    config = {"experiment": "queries", "data": data, "n_total": len(x), "n_attacked": len(idx),
              "label_source": label_source, "criterion": CRITERION, "model": getattr(model, "name", ""),
              "eps": cfg.eps, "steps": cfg.steps, "seed": cfg.seed, "budgets": list(budgets),
              "black_box": black, "white_box": white,
              "params": {m: (blackbox_params(m, c) if m in BLACK_BOX else
                             ({"gradient_steps": gradient_steps(m, c)} | (METHODS[m].params(c) if METHODS[m].params
                                                                          else {})))
                         for m, c in cfg_of.items()},
              "rule": "one run per black-box method at the largest budget; ASR(b) = share of the clean-correct images "
                      "whose first query inside the ε-ball that the model misclassified came within b queries",
              "match": match_table(per_sample, black, white),
              "wall_time_s": time.perf_counter() - t0, "versions": package_versions(), **dict(meta or {})}
    return ExperimentResult(summary, per_sample[SAMPLE_COLUMNS] if len(per_sample) else per_sample, config, stopped)


def _summary(per: pd.DataFrame, black: list[str], white: list[str], budgets: Sequence[int],
             cfg: AttackConfig) -> pd.DataFrame:
    rows = []
    for m in black:
        part = per[per["method"] == m]
        for b in budgets:
            won = part[part["success"].astype(bool) & (part["queries"] <= b)]
            rows.append({"method": m, "label": method_label(m), "kind": "black-box", "budget": b,
                         "gradient_steps": 0, "n": len(part), "asr": asr_within(part, b),
                         "queries_mean": float(won["queries"].mean()) if len(won) else float("nan")})
    for m in white:
        part = per[per["method"] == m]
        rows.append({"method": m, "label": method_label(m), "kind": "white-box", "budget": float("nan"),
                     "gradient_steps": gradient_steps(m, cfg), "n": len(part),
                     "asr": float(part["success"].mean()) if len(part) else float("nan"), "queries_mean": float("nan")})
    return pd.DataFrame(rows, columns=["method", "label", "kind", "budget", "gradient_steps", "n", "asr",
                                       "queries_mean"])


def match_table(per: pd.DataFrame, black: list[str], white: list[str]) -> list[dict]:
    """One record per (black-box, white-box) pair: the white-box ASR and the queries the black-box method needs to
    reach it (:func:`queries_to_match`: an int, or None when not within its budget)."""
    rows = []
    for w in white:
        wp = per[per["method"] == w]
        target = float(wp["success"].mean()) if len(wp) else float("nan")
        for b in black:
            rows.append({"black_box": b, "white_box": w, "white_asr": target,
                         "queries_to_match": queries_to_match(per[per["method"] == b], target)})
    return rows


def queries_markdown(result: ExperimentResult) -> str:
    """The ASR-by-budget table (one column per budget, white-box rows beside) and the match sentences."""
    s, c = result.summary, result.config
    budgets = c["budgets"]
    head = ["Method", "Access", *[f"ASR @ {b} q (%)" for b in budgets], "Mean queries to success @ max"]
    lines = [f"ASR against the query budget at ε = {c['eps'] * 255:g}/255, {c['n_attacked']} clean-correct of "
             f"{c['n_total']} images ({c['data']}, {c['model']}); white-box rows at T = {c['steps']} for multi-step "
             "methods.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in c["black_box"]:
        part = s[s["method"] == m].set_index("budget")
        q = part["queries_mean"].iloc[-1]
        lines.append("| " + " | ".join([method_label(m), "black-box (queries)",
                                        *[f"{100 * part.loc[b, 'asr']:.1f}" for b in budgets],
                                        "–" if not np.isfinite(q) else f"{q:.0f}"]) + " |")
    for _, r in s[s["kind"] == "white-box"].iterrows():
        steps = int(r["gradient_steps"])
        cells = [f"{100 * r['asr']:.1f}"] * len(budgets)
        lines.append("| " + " | ".join([r["label"], f"white-box ({steps} gradient step{'s' if steps != 1 else ''})",
                                        *cells, "–"]) + " |")
    lines.append("")
    for r in c["match"]:
        asr = 100 * r["white_asr"]
        q = r["queries_to_match"]
        goal = f"{method_label(r['white_box'])}'s ASR ({asr:.1f}%)"
        lines.append(f"- {method_label(r['black_box'])} needs {q} queries per image to match {goal}." if q is not None
                     else f"- {method_label(r['black_box'])} does not match {goal} within {budgets[-1]} queries.")
    return "\n".join(lines) + "\n"


def queries_files(result: ExperimentResult) -> dict[str, bytes]:
    """queries.csv, queries_per_sample.csv, queries.md and queries.json as {name: bytes}."""
    return result_files(result, "queries", queries_markdown(result))


def figure_files(result: ExperimentResult, stem: str = "queries_asr") -> dict[str, bytes]:
    """ASR against the query budget (log x), white-box ASR as horizontal lines: ``<stem>.pdf/.png/.svg/.json``
    (:func:`sdsgsm.render.queries.queries_figure`)."""
    from sdsgsm.render import figures
    from sdsgsm.render.queries import queries_figure

    fig = figures.build(queries_figure, result.summary, result.per_sample)
    info = {k: result.config[k] for k in ("data", "model", "n_total", "n_attacked", "eps", "steps", "seed", "budgets",
                                          "criterion", "rule", "match")}
    return figures.figure_files(fig, stem, info, "queries")


__all__ = ["CRITERION", "DEFAULT_BUDGETS", "DEFAULT_WHITE", "OUTPUT_FILES", "asr_within", "figure_files",
           "gradient_steps", "match_table", "parse_budgets", "queries_files", "queries_markdown", "queries_to_match",
           "run_queries", "split_methods"]
