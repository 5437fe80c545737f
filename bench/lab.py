"""Robust-training lab timing: training seconds per model and evaluation seconds per step, in one process.

    python bench/lab.py                      # shipped settings, full evaluation (9 ε, 450 test digits, CW on 50)
    python bench/lab.py --eval-eps 0:32/255:5 --cw-limit 20     # the app's shorter evaluation

Prints one line per model (training seconds, clean accuracy), then the evaluation's seconds per
(method) over all models and ε values, CW-L2 seconds per model and the saturation step, then

    train_total_s=<s> eval_curve_s=<s> eval_cw_s=<s> threads=<n> load1=<os load average>
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdsgsm.experiments import lab  # noqa: E402
from sdsgsm.experiments.sweep import parse_values  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the shipped epochs")
    parser.add_argument("--eval-eps", default="0:32/255:9", help="ε values of the evaluation (sweep syntax)")
    parser.add_argument("--cw-limit", type=int, default=50, help="CW-L2 test images")
    parser.add_argument("--no-eval", action="store_true", help="time the training only")
    args = parser.parse_args()
    record = lab.read_record(lab.LAB_DIR)
    cfg = lab.TrainConfig(**record["training"])
    if args.epochs:
        cfg = lab.TrainConfig(**{**record["training"], "epochs": args.epochs})
    torch.set_num_threads(cfg.threads)  # this script is its own process; the lab library never sets threads
    split = lab.load_split(cfg.seed, cfg.test_size)
    print(f"lab: {len(split.y_train)} train / {len(split.y_test)} test digits, {cfg}, load1 {os.getloadavg()[0]:.2f}")
    nets, seconds = lab.train_all(cfg, split)
    for name, net in nets.items():
        print(f"train {name:10s} {seconds[name]:7.2f} s  clean accuracy "
              f"{lab.clean_accuracy(net, split.x_test, split.y_test) * 100:.1f} %")
    curve_s = cw_s = 0.0
    if not args.no_eval:
        ecfg = lab.EvalConfig(eps=tuple(float(v) for v in parse_values("eps", args.eval_eps)), cw_limit=args.cw_limit)
        ev = lab.evaluate_lab(lab.load_models(lab.LAB_DIR).nets, split, ecfg)
        for method, s in ev.curve.groupby("method", sort=False)["seconds"].sum().items():
            calls = len(ev.curve[ev.curve["method"] == method])
            print(f"eval {method:8s} {s:7.2f} s for {calls} (model, ε) points × {len(split.y_test)} digits "
                  f"({s / calls:.3f} s per point)")
        for _, row in ev.cw.iterrows():
            print(f"eval cw on {row['model']:10s} {row['seconds']:7.2f} s for {row['n']} digits × {row['steps']} "
                  f"iterations")
        print(f"eval saturation {ev.seconds['saturation']:.2f} s")
        curve_s, cw_s = ev.seconds["curve"], ev.seconds["cw"]
    print(f"train_total_s={sum(seconds.values()):.2f} eval_curve_s={curve_s:.2f} eval_cw_s={cw_s:.2f} "
          f"threads={torch.get_num_threads()} load1={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
