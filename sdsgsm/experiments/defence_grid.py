"""The attack × defence grid, non-adaptive and adaptive (Guo et al., ICLR 2018; Athalye et al., ICML 2018).

For every method the *non-adaptive* attack is crafted ONCE on the bare model f and its x_adv is then
classified by every defended model f∘T (:mod:`sdsgsm.defences`). The *adaptive* attack is crafted on
f∘T itself (:class:`~sdsgsm.defences.Defended`): every registered method, the zero-out scan of the
spatial ones included, sees the defended model, with BPDA's identity backward where T is not
differentiable. ``none`` (no defence) is always the first column: there both modes are the one
white-box attack on f.

ASR criterion (:data:`CRITERION`): a cell's ASR is taken over the samples the *defended* model
classifies correctly when clean, so a defence that already misclassifies a clean image is not
credited with "stopping" an attack on it; its clean accuracy is reported beside. The labels are the
true labels where known, else the bare model's clean prediction, the same for every cell. L2, L∞
and SSIM are of x_adv − x (what the attacker sends, before the defence), over the same samples.

``run_defence_grid`` is pure (no streamlit, no files); ``defence_files`` turns its result into
{file name: bytes} for :func:`sdsgsm.experiments.report.write_files` and the app's downloads.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import METHODS, AttackConfig, AttackResult, config_values, method_label, resolve_labels, run_attack
from sdsgsm.attacks.base import join_results
from sdsgsm.defences import DEFENCES, DefenceConfig, Defended, params_text, parse_defences, transform
from sdsgsm.experiments.runner import (
    ExperimentResult,
    UnitStore,
    fingerprint_model,
    fingerprint_tensor,
    package_versions,
    parse_methods,
    warm_up,
)
from sdsgsm.metrics import evaluate, summarise, summary_keys

MODES = ("non-adaptive", "adaptive")
CRITERION = ("ASR over the samples the defended model classifies correctly when clean (prediction = label); "
             "success = its prediction of the adversarial image differs from the label. L2, L∞, SSIM of "
             "x_adv − x (before the defence) over the same samples")
SKIP_SLOW_SCAN = ("not run: the adaptive zero-out scan would apply {label} once per window (nh·nw per image, "
                  "seconds each)")


@dataclass
class DefenceGrid(ExperimentResult):
    """cells: one row per (method, defence, mode): clean accuracy of the defence, n evaluated, then
    :func:`sdsgsm.metrics.summarise`'s keys (asr, l2_mean, ssim_mean, …) and acc_all (accuracy under
    attack over all images); per_sample: one row per (cell, sample); config: JSON-ready description."""

    @property
    def cells(self) -> pd.DataFrame:
        """The summary under this experiment's own name."""
        return self.summary

    def matrix(self, mode: str, key: str = "asr") -> pd.DataFrame:
        """methods × defences of one mode; rates (asr, clean_acc, acc_all) in %, NaN where not run."""
        df = self.cells[self.cells["mode"] == mode]
        table = df.pivot(index="method", columns="defence", values=key)
        table = table.reindex(index=[m for m in self.config["methods"] if m in set(self.cells["method"])],
                              columns=self.config["defences"]).astype(float)
        if key in ("asr", "clean_acc", "acc_all"):
            table = table * 100.0
        table.index.name, table.columns.name = "attack", "defence"
        return table

    def lesson(self) -> pd.DataFrame:
        """The lesson of Athalye et al. 2018 per (method, defence): ASR without defence, non-adaptive and adaptive, how
        many points the defence took off non-adaptively and how many of them the adaptive attack won back."""
        na, ad = self.matrix("non-adaptive"), self.matrix("adaptive")
        rows = []
        for method in na.index:
            for d in na.columns[1:]:
                base, a, b = na.loc[method, "none"], na.loc[method, d], ad.loc[method, d]
                rows.append({"attack": method, "defence": d, "ASR no defence (%)": base,
                             "ASR non-adaptive (%)": a, "ASR adaptive (%)": b, "lowered by (pp)": base - a,
                             "won back (pp)": b - a})
        return pd.DataFrame(rows)

    def markdown(self) -> str:
        """A Markdown table: per (method, defence) clean accuracy, n, ASR non-adaptive / adaptive, L2, SSIM."""
        head = ("| attack | defence | clean acc. (%) | n | ASR non-adaptive (%) | ASR adaptive (%) | "
                "L2 na / ad | SSIM na / ad |\n|---|---|---|---|---|---|---|---|\n")
        lines = []
        for (method, d), part in self.cells.groupby(["method", "defence"], sort=False):
            r = {row["mode"]: row for _, row in part.iterrows()}
            na, ad = r.get("non-adaptive"), r.get("adaptive")
            cell = lambda row, k, s=1.0, f=".1f": "–" if row is None or pd.isna(row[k]) else f"{row[k] * s:{f}}"  # noqa: E731
            text = self.config["defence_text"].get(d, "")
            lines.append(f"| {method_label(method)} | {d}{f' ({text})' if text else ''} | "
                         f"{cell(na, 'clean_acc', 100)} | "
                         f"{cell(na, 'n', f='.0f')} | {cell(na, 'asr', 100)} | {cell(ad, 'asr', 100)} | "
                         f"{cell(na, 'l2_mean', f='.3f')} / {cell(ad, 'l2_mean', f='.3f')} | "
                         f"{cell(na, 'ssim_mean', f='.4f')} / {cell(ad, 'ssim_mean', f='.4f')} |")
        return head + "\n".join(lines) + f"\n\n{self.config['criterion_text']}.\n"


# ----------------------------------------------------------------------------- building blocks
def attack_batches(model, x: torch.Tensor, y: torch.Tensor, method: str, cfg: AttackConfig,
                   batch_size: int) -> AttackResult:
    """Registered ``method`` on x (N, 3, H, W) with labels y (N,), ``batch_size`` images per call, joined
    into one AttackResult (times summed). ``model`` may be a Classifier or a Defended one."""
    parts = [run_attack(model, x[i:i + batch_size], y[i:i + batch_size], cfg, method)
             for i in range(0, len(x), batch_size)]
    return parts[0] if len(parts) == 1 else join_results(parts)


def defended_logits(model, x: torch.Tensor, defence: str, dcfg: DefenceConfig, batch_size: int) -> torch.Tensor:
    """f(T(x)) logits (N, K) float32, without gradients, ``batch_size`` images at a time."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            out.append(model(xb if defence == "none" else transform(xb, defence, dcfg)).float())
    return torch.cat(out)


def grid_labels(model, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> tuple[torch.Tensor, str]:
    """The labels every cell uses: the true label where known (y ≥ 0), else the bare model's clean prediction."""
    clean = defended_logits(model, x, "none", DefenceConfig(), batch_size)
    return resolve_labels(None if y is None else y.to(x.device), clean)


def dkey(defence: str, dcfg: DefenceConfig) -> tuple:
    """A defence and the parameter values it uses: part of every store key that depends on the defence."""
    return defence, tuple(sorted(dcfg.params_of(defence).items()))


def crafted(store: MutableMapping, method: str, defence: str, mode: str, dcfg: DefenceConfig) -> AttackResult | None:
    """The x_adv source of a cell from a run's ``store``: the bare-model attack (non-adaptive, or no
    defence) or the adaptive one; None when that cell has not run."""
    if mode == "adaptive" and defence != "none":
        return store.get(("adaptive", method, dkey(defence, dcfg)))
    return store.get(("craft", method))


def _memo(store: MutableMapping, key: tuple, compute: Callable[[], object]):
    if key not in store:
        store[key] = compute()
    return store[key]


def _skip_note(method: str, defence: str, mode: str) -> str:
    d = DEFENCES[defence]
    if mode == "adaptive" and d.slow and METHODS[method].spatial:
        return SKIP_SLOW_SCAN.format(label=d.label)
    return ""


@dataclass
class _Grid:
    """State shared by the cells of one grid run."""

    model: object
    x: torch.Tensor
    y: torch.Tensor
    cfg: AttackConfig
    dcfg: DefenceConfig
    batch_size: int
    store: MutableMapping
    keys: list[str]

    def clean(self, defence: str) -> torch.Tensor:
        return _memo(self.store, ("clean", dkey(defence, self.dcfg)),
                     lambda: defended_logits(self.model, self.x, defence, self.dcfg, self.batch_size))

    def craft(self, method: str) -> AttackResult:
        return _memo(self.store, ("craft", method),
                     lambda: attack_batches(self.model, self.x, self.y, method, self.cfg, self.batch_size))

    def adaptive(self, method: str, defence: str) -> AttackResult:
        return _memo(self.store, ("adaptive", method, dkey(defence, self.dcfg)),
                     lambda: attack_batches(Defended(self.model, defence, self.dcfg), self.x, self.y, method,
                                            self.cfg, self.batch_size))

    def result(self, method: str, defence: str, mode: str) -> AttackResult:
        """The cell's AttackResult, its logits those of f∘T (clean and adversarial)."""
        if mode == "adaptive" and defence != "none":
            return self.adaptive(method, defence)
        craft = self.craft(method)
        if defence == "none":
            return craft
        adv = _memo(self.store, ("eval", method, dkey(defence, self.dcfg)),
                    lambda: defended_logits(self.model, craft.x_adv, defence, self.dcfg, self.batch_size))
        adv8 = _memo(self.store, ("eval-8bit", method, dkey(defence, self.dcfg)),
                     lambda: defended_logits(self.model, craft.x_adv_8bit, defence, self.dcfg, self.batch_size))
        return replace(craft, clean_logits=self.clean(defence), adv_logits=adv, adv_logits_8bit=adv8)

    def cell(self, method: str, defence: str, mode: str) -> tuple[dict, pd.DataFrame | None]:
        """(summary row, per-sample rows or None) of one cell."""
        row = {"method": method, "defence": defence, "mode": mode, "params": params_text(defence, self.dcfg),
               "n_total": len(self.x)}
        clean_pred = self.clean(defence).argmax(1)
        row["clean_acc"] = float((clean_pred == self.y).float().mean())
        note = _skip_note(method, defence, mode)
        if note:
            return {**row, **dict.fromkeys(summary_keys(), math.nan), "n": 0, "acc_all": math.nan, "note": note}, None
        res = self.result(method, defence, mode)
        per = evaluate(self.x, res, "clean_correct").per_sample
        per = per.assign(method=method, defence=defence, mode=mode, index=np.arange(len(self.x)), key=self.keys,
                         label=res.y.cpu().numpy(), clean_pred=res.clean_pred.cpu().numpy(),
                         adv_pred=res.adv_pred.cpu().numpy())
        acc_all = float((res.adv_pred == res.y).float().mean())
        return {**row, **summarise(per), "acc_all": acc_all, "note": ""}, per


def _plan(methods: list[str], defences: list[str]) -> list[tuple[str, str, str]]:
    return [(m, d, mode) for m in methods for d in defences for mode in MODES]


def _unit(method: str, defence: str, mode: str) -> tuple | None:
    """The resumable unit a cell belongs to: a method's craft on the bare model (its non-adaptive cells and the
    no-defence adaptive one), one adaptive (method, defence) run, or None (a cell that is not run)."""
    if mode == "non-adaptive" or defence == "none":
        return ("craft", method)
    return None if _skip_note(method, defence, mode) else ("adaptive", method, defence)


def _members(unit: tuple, defences: list[str]) -> list[tuple[str, str, str]]:
    """The cells of one unit, in the grid's order."""
    if unit[0] == "adaptive":
        return [(unit[1], unit[2], "adaptive")]
    return [(unit[1], d, mode) for d in defences for mode in MODES if mode == "non-adaptive" or d == "none"]


def _work(methods: list[str], defences: list[str]) -> int:
    """Units of progress: one craft per method plus one adaptive run per (method, defence ≠ none) that runs."""
    return sum(1 + sum(1 for d in defences[1:] if not _skip_note(m, d, "adaptive")) for m in methods)


# ----------------------------------------------------------------------------- the runner
def run_defence_grid(model, x: torch.Tensor, y: torch.Tensor | None, methods: Sequence[str] | str,
                     defences: Sequence[str] | str, cfg: AttackConfig, dcfg: DefenceConfig | None = None, *,
                     batch_size: int = 8, progress: Callable[[str, int, int], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None,
                     data: str = "", store: MutableMapping | None = None,
                     units: UnitStore | None = None) -> DefenceGrid:
    """Attack × defence × {non-adaptive, adaptive} on x (Guo et al. 2018; Athalye et al. 2018 BPDA).

    Args: model a Classifier; x (N, 3, H, W) in [0, 1]; y (N,) labels or None (−1 = unknown: the bare
    model's clean prediction); methods registry names; defences registry names ('none' is always added
    first); cfg the AttackConfig of every method; dcfg the defence parameters; batch_size images per
    attack call; progress(text, done, total) after every craft and adaptive run; should_stop polled
    before each (True ends the run, keeping the finished cells); keys N sample names; data the data-set
    name; store a dict reused across calls on the same model, x, y, cfg and batch_size (the app keeps one
    per request, so Stop and a re-run keep the finished work); units a
    :class:`~sdsgsm.experiments.runner.UnitStore` that records each finished unit (a method's craft on the bare
    model with its non-adaptive cells, or one adaptive (method, defence) cell) on disk, and reads back those an
    earlier run with the same configuration finished. Returns a :class:`DefenceGrid`.
    Raises ValueError (one line) for unknown methods or defences or a bad batch size.
    """
    methods = parse_methods(methods)
    defences = ["none", *(d for d in parse_defences(defences) if d != "none")]
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"Batch size must be a positive integer (got {batch_size!r}).")
    t0, dcfg = time.perf_counter(), dcfg or DefenceConfig()
    x = x.detach().float().to(model.device)
    y_used, source = grid_labels(model, x, y, batch_size)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    g = _Grid(model, x, y_used, cfg, dcfg, batch_size, {} if store is None else store, keys)
    warm_up(model, x[:1], methods[0], False)
    rows, parts, done, total, stopped = [], [], 0, _work(methods, defences), False
    if units is not None:
        units.begin({"experiment": "defence grid", "methods": methods, "defences": defences,
                     "defence_params": {d: dcfg.params_of(d) for d in defences}, "attack_config": cfg,
                     "batch_size": batch_size, "model": getattr(model, "name", type(model).__name__),
                     "weights": fingerprint_model(model), "data": data, "keys": keys, "images": fingerprint_tensor(x),
                     "labels": fingerprint_tensor(y_used), "device": str(x.device)}, total)
    cells: dict[tuple, tuple] = {}  # (method, defence, mode) -> (row, per-sample rows) of a finished unit
    for method, d, mode in _plan(methods, defences):
        unit = _unit(method, d, mode)
        key = None if unit is None else UnitStore.key(*unit)
        resumed = units is not None and key is not None and key in units
        heavy = not resumed and ((d == "none" and mode == "non-adaptive" and ("craft", method) not in g.store) or (
            mode == "adaptive" and d != "none" and not _skip_note(method, d, mode)))
        if heavy and should_stop is not None and should_stop():
            stopped = True
            break
        if (method, d, mode) not in cells:
            if resumed:  # finished by an earlier run
                frames, got = units.get(key)
                frames = iter(frames)
                for r in map(dict, got):
                    cells[(r["method"], r["defence"], r["mode"])] = (r, None if r.pop("_no_rows") else next(frames))
            else:
                members = _members(unit, defences) if unit is not None else [(method, d, mode)]
                for c in members:
                    cells[c] = g.cell(*c)
                if units is not None and unit is not None:
                    got = [cells[c] for c in members]
                    units.add(key, [per for _, per in got if per is not None],
                              [{**row, "_no_rows": per is None} for row, per in got])
        row, per = cells[(method, d, mode)]
        rows.append(row)
        if per is not None:
            parts.append(per)
        if heavy or (resumed and unit != ("craft", method)) or (d == "none" and mode == "non-adaptive"):
            done += 1
            if progress is not None:
                progress(f"{method} · {d if mode == 'adaptive' else 'crafted on the bare model'}", done, total)
    config = _config(g, methods, defences, data, source, stopped, time.perf_counter() - t0)
    return DefenceGrid(pd.DataFrame(rows), pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(),
                       config, stopped)


def _config(g: _Grid, methods, defences, data, source, stopped, wall) -> dict:
    return {"methods": methods, "defences": defences, "modes": list(MODES),
            "defence_params": {d: g.dcfg.params_of(d) for d in defences},
            "defence_text": {d: params_text(d, g.dcfg) for d in defences},
            "defence_code": {d: f"ART {DEFENCES[d].art_class}" if DEFENCES[d].art_class else
                             ("identity" if d == "none" else "sdsgsm.smoothing") for d in defences},
            "adaptive_gradient": {d: "BPDA: identity backward (Athalye et al. 2018)" if DEFENCES[d].bpda else
                                  "exact (differentiable)" for d in defences},
            "parameters": config_values(g.cfg), "criterion_text": CRITERION, "label_source": source,
            "clean_accuracy": {d: float((g.clean(d).argmax(1) == g.y).float().mean()) for d in defences},
            "model": getattr(g.model, "name", type(g.model).__name__), "data": data, "n_total": len(g.x),
            "keys": g.keys, "batch_size": g.batch_size, "seed": g.cfg.seed, "stopped_early": stopped,
            "wall_time_s": wall, "device": str(g.x.device), "versions": package_versions()}


# ----------------------------------------------------------------------------- outputs
def asr_figure(grid: DefenceGrid):
    """The print figure: ASR (%) heat maps, non-adaptive | adaptive (``figures.matrix_figure``)."""
    from sdsgsm.render import figures

    panels = [(mode, grid.matrix(mode)) for mode in MODES]
    return figures.build(figures.matrix_figure, panels, "ASR (%)", digits=0,
                         counts=[grid.matrix(mode, "n") for mode in MODES],
                         title=f"{grid.config['model']}: attack × defence, ASR over defended-clean-correct samples")


def defence_files(grid: DefenceGrid, stem: str = "defences") -> dict[str, bytes]:
    """{stem}.csv (one row per cell), {stem}_per_sample.csv, {stem}.json (config) and the figure
    {stem}_asr.pdf/.png/.svg/.json, as {name: bytes} for ``report.write_files`` and the app's downloads."""
    from sdsgsm.render import figures

    text = json.dumps(grid.config, indent=2, ensure_ascii=False, default=str)
    files = {f"{stem}.csv": grid.cells.to_csv(index=False).encode("utf-8"),
             f"{stem}_per_sample.csv": grid.per_sample.to_csv(index=False).encode("utf-8"),
             f"{stem}.json": text.encode("utf-8")}
    info = {k: v for k, v in grid.config.items() if k not in ("versions", "keys")}
    return files | figures.figure_files(asr_figure(grid), f"{stem}_asr", info, "defences")


__all__ = ["CRITERION", "DefenceGrid", "MODES", "asr_figure", "attack_batches", "crafted", "defence_files",
           "defended_logits", "dkey", "grid_labels", "run_defence_grid"]
