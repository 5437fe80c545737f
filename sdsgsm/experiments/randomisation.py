"""A randomised defence against three attackers: non-adaptive, adaptive with one draw, and EOT.

The defence is random resize-and-pad (Xie et al., ICLR 2018; :func:`sdsgsm.defences.resize_pad`): every
call resizes each image to a random size and pads it back at a random offset. Three attacks, each a
registered FGSM-family method with the same AttackConfig:

* **non-adaptive** — crafted on the bare model f, then sent through the defence;
* **adaptive, one draw** — crafted on f∘T (:class:`~sdsgsm.defences.Defended`), each step's gradient from
  the one random draw T it sees (resize and pad are differentiable for a fixed draw, so this is the exact
  gradient of that draw; BPDA's identity backward is not needed);
* **EOT** — the same with ``eot_samples`` = n: each step averages the gradient over n draws, a Monte-Carlo
  estimate of ∇ E_T[L(f(T(x)))] (Athalye, Carlini & Wagner, ICML 2018, §4.3; Athalye et al., ICML 2018,
  "Synthesizing robust adversarial examples").

Evaluation: each x_adv (and each clean x) is classified by f∘T under ``eval_draws`` independent draws of T
(a generator seeded with ``resize_seed`` + 1, the same draws for every attack); the ASR is the mean over
draws of the share misclassified (prediction ≠ label) among the images the bare model classifies
correctly when clean. The clean accuracy of f∘T (mean over the draws, all images) is reported beside.

Reuses the defence grid's public pieces (:func:`~sdsgsm.experiments.defence_grid.attack_batches`,
:func:`~sdsgsm.experiments.defence_grid.grid_labels`). ``run_randomisation`` is pure and takes plain
arguments, so a page can call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from sdsgsm.attacks import FAMILY_SPECS, AttackConfig, config_values
from sdsgsm.defences import DefenceConfig, Defended, get_defence, params_text
from sdsgsm.experiments.defence_grid import attack_batches, grid_labels
from sdsgsm.experiments.runner import ExperimentResult, package_versions, parse_methods, result_files, warm_up

MODES = ("non-adaptive", "adaptive, one draw", "EOT")
CRITERION = ("ASR over the images the bare model classifies correctly when clean, averaged over the evaluation "
             "draws of the random defence; success = the defended prediction differs from the label")


@dataclass
class RandomisationResult(ExperimentResult):
    """summary: one row per (method, mode): asr (mean over draws), asr_min / asr_max over draws, n, seconds;
    per_sample: one row per (method, mode, image): the share of draws that misclassify it."""

    def table(self) -> pd.DataFrame:
        """methods × modes of ASR (%), plus the bare-model white-box ASR ('no defence')."""
        t = self.summary.pivot(index="method", columns="mode", values="asr") * 100
        t = t.reindex(index=self.config["methods"], columns=list(MODES))
        t.insert(0, "no defence", pd.Series(self.config["asr_no_defence"]) * 100)
        t.index.name, t.columns.name = "attack", "ASR (%)"
        return t

    def markdown(self) -> str:
        c, t = self.config, self.table()
        head = "| attack | " + " | ".join(t.columns) + " |\n|---|" + "---|" * len(t.columns) + "\n"
        lines = ["| " + m + " | " + " | ".join("–" if pd.isna(v) else f"{v:.1f}" for v in row) + " |"
                 for m, row in t.iterrows()]
        return (head + "\n".join(lines) + f"\n\nDefence {c['defence']} ({c['defence_text']}); EOT n = "
                f"{c['eot_samples']}; {c['eval_draws']} evaluation draws; clean accuracy with the defence "
                f"{c['clean_acc_defended'] * 100:.1f} % (without {c['clean_acc'] * 100:.1f} %). {CRITERION}.\n")


def _draw_predictions(model, x: torch.Tensor, defence: str, dcfg: DefenceConfig, draws: int,
                      batch_size: int) -> torch.Tensor:
    """Predictions of f∘T under ``draws`` draws of T: (draws, N), from a generator seeded resize_seed + 1
    (independent of the attacks' draws, the same sequence for every call)."""
    evaluator = Defended(model, defence, replace(dcfg, resize_seed=(dcfg.resize_seed + 1) % 2**31))
    out = []
    with torch.inference_mode():
        for _ in range(draws):
            out.append(torch.cat([evaluator(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]))
    return torch.stack(out)


def run_randomisation(model, x: torch.Tensor, y: torch.Tensor | None, methods: Sequence[str] | str,
                      cfg: AttackConfig, dcfg: DefenceConfig | None = None, *, defence: str = "resize",
                      eot_samples: int = 10, eval_draws: int = 10, batch_size: int = 8,
                      progress: Callable[[str, int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None,
                      data: str = "") -> RandomisationResult:
    """Non-adaptive vs adaptive (one draw) vs EOT ASR against a random defence (module docstring).

    Args: model a Classifier; x (N, 3, H, W) in [0, 1]; y (N,) labels or None (−1: the clean prediction);
    methods FGSM-family registry names (EOT lives in their loop); cfg their AttackConfig (its eot_samples is
    replaced: 1 for the first two modes, ``eot_samples`` for EOT); dcfg the defence parameters; defence a
    random registry defence; eval_draws draws of T per evaluation; batch_size images per call;
    progress(text, done, total) after each attack; should_stop polled before each; keys N sample names; data
    the data-set name. Raises ValueError (one line) for a non-random defence, a non-FGSM-family method or a
    bad count.
    """
    methods = parse_methods(methods)
    dcfg = dcfg or DefenceConfig()
    if not get_defence(defence).random:
        raise ValueError(f"{defence!r} is not a random defence; EOT needs one (e.g. resize).")
    bad = [m for m in methods if m not in FAMILY_SPECS]
    if bad:
        raise ValueError(f"EOT is an option of the FGSM family's loop; {bad[0]!r} is not one of its methods.")
    for name, v in (("eot_samples", eot_samples), ("eval_draws", eval_draws), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer (got {v!r}).")
    t0 = time.perf_counter()
    x = x.detach().float().to(model.device)
    y_used, source = grid_labels(model, x, y, batch_size)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(x))]
    warm_up(model, x[:1], methods[0], False)
    with torch.inference_mode():
        clean_pred = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    correct = (clean_pred == y_used).cpu()
    clean_draws = _draw_predictions(model, x, defence, dcfg, eval_draws, batch_size)
    one, eot = replace(cfg, eot_samples=1), replace(cfg, eot_samples=eot_samples)
    plan = [(m, mode) for m in methods for mode in MODES]
    rows, parts, stopped, asr_none = [], [], False, {}
    for k, (method, mode) in enumerate(plan):
        if should_stop is not None and should_stop():
            stopped = True
            break
        t = time.perf_counter()
        attacked = model if mode == "non-adaptive" else Defended(model, defence, dcfg)
        res = attack_batches(attacked, x, y_used, method, eot if mode == "EOT" else one, batch_size)
        seconds = time.perf_counter() - t
        if mode == "non-adaptive":
            asr_none[method] = float((res.adv_pred.cpu() != y_used.cpu())[correct].float().mean())
        fooled = (_draw_predictions(model, res.x_adv, defence, dcfg, eval_draws, batch_size).cpu()
                  != y_used.cpu()).float()  # (draws, N)
        per_draw = fooled[:, correct].mean(1) if bool(correct.any()) else torch.full((eval_draws,), float("nan"))
        rows.append({"method": method, "mode": mode, "n": int(correct.sum()), "n_total": len(x),
                     "asr": float(per_draw.mean()), "asr_min": float(per_draw.min()),
                     "asr_max": float(per_draw.max()), "eot_samples": eot_samples if mode == "EOT" else 1,
                     "seconds": seconds})
        parts.append(pd.DataFrame({"method": method, "mode": mode, "index": np.arange(len(x)), "key": keys,
                                   "label": y_used.cpu().numpy(), "clean_correct": correct.numpy(),
                                   "fooled_share": fooled.mean(0).numpy()}))
        if progress is not None:
            progress(f"{method} · {mode}", k + 1, len(plan))
    config = {"experiment": "randomised defence: non-adaptive vs adaptive vs EOT", "methods": methods,
              "modes": list(MODES), "defence": defence, "defence_params": dcfg.params_of(defence),
              "defence_text": params_text(defence, dcfg), "eot_samples": eot_samples, "eval_draws": eval_draws,
              "asr_no_defence": asr_none, "clean_acc": float(correct.float().mean()),
              "clean_acc_defended": float((clean_draws.cpu() == y_used.cpu()).float().mean()),
              "parameters": config_values(cfg), "criterion_text": CRITERION, "label_source": source,
              "model": getattr(model, "name", type(model).__name__), "data": data, "n_total": len(x), "keys": keys,
              "batch_size": batch_size, "stopped_early": stopped, "wall_time_s": time.perf_counter() - t0,
              "device": str(x.device), "versions": package_versions()}
    return RandomisationResult(pd.DataFrame(rows), pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(),
                               config, stopped)


def randomisation_files(result: RandomisationResult, stem: str = "randomisation") -> dict[str, bytes]:
    """{stem}.csv, {stem}_per_sample.csv and {stem}.json as {name: bytes}."""
    return result_files(result, stem)


__all__ = ["CRITERION", "MODES", "RandomisationResult", "randomisation_files", "run_randomisation"]
