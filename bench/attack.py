"""SD-SGSM (T = 10, cached scan) against PGD (T = 10) on the same images, side by side in one run.

Also times the full SD-SGSM pipeline with an uncached zero-out scan. Prints per-image timings
and, as its last line: ``sdsgsm_over_pgd=<x> full_pipeline_s=<t>``.

``--step``: the plain module (``model.fast = False``) against the prepared network (batch norm
folded, channels last; sdsgsm/models.py) for one attack step (forward + input-gradient
backward, batch 1) and for a 5-step SD-SGSM with a cached scan, interleaved; then, per image,
the input-gradient error of each path (also against a float64 reference) and whether the
5-step x_adv keeps its sign pattern and label. Last line: ``step_speedup=<x>
sdsgsm_T5_s=<before>-><after> max_rel_grad_err=<e> …``.

``--record [--baseline REV]``: the FGSM-family loop of git revision REV (default main, loaded from
git beside the current code), the current loop with the trajectory recorder off (what every
benchmark runs) and with it on (the Learn page's replay), SD-SGSM T = 5 with a cached scan on one
image, interleaved in rotating order; checks that all three give the same x_adv. Last line:
``record_off_over_baseline=<x> record_on_over_off=<y>``.

    python bench/attack.py [--limit N] [--device cpu|cuda] [--repeats R] [--step | --record [--baseline REV]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdsgsm.attacks import AttackConfig, run_attack  # noqa: E402
from sdsgsm.attacks.base import sync  # noqa: E402
from sdsgsm.attacks.fgsm_family import input_gradient  # noqa: E402
from sdsgsm.data import load_gallery  # noqa: E402
from sdsgsm.models import lite_forward, load_model  # noqa: E402
from sdsgsm.occlusion import occlusion_scan  # noqa: E402


def timed(fn, *args, **kwargs) -> float:
    """Wall seconds of one call, device-synchronised."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    sync(out.x_adv.device)
    return time.perf_counter() - t0


def interleaved(model, fn, repeats: int) -> dict[bool, list[float]]:
    """Wall seconds of fn() with model.fast False (plain) and True (prepared), interleaved
    and in alternating order, so drift in machine load hits both alike."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for fast in ((False, True) if r % 2 == 0 else (True, False)):
            model.fast = fast
            t0 = time.perf_counter()
            out = fn()
            sync(out.device if isinstance(out, torch.Tensor) else out.x_adv.device)
            times[fast].append(time.perf_counter() - t0)
    model.fast = True
    return times


def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a − ref| / max |ref| (float64)."""
    return float((a.double() - ref.double()).abs().max() / ref.double().abs().max())


def float64_gradient(net64, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reference ∇_x Σ CE in float64 through the prepared network (equal to the float64 plain
    module to ≈1e-14, tests/test_models.py; the plain module is ~15× slower in float64)."""
    x = x.double().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(lite_forward(net64, x), y, reduction="sum"), x)
    return g


def step_timings(model, x0, y0, cfg: AttackConfig, repeats: int) -> dict[str, dict[bool, float]]:
    """Median seconds of one step (forward + input-gradient backward) and of a cached-scan
    SD-SGSM, plain (False) vs prepared (True), interleaved."""
    scan = occlusion_scan(model, x0, cfg.scan, y=y0)
    for fast in (False, True):  # warm-up (and the prepared network's one-time build)
        model.fast = fast
        input_gradient(model, x0, y0)
        run_attack(model, x0, y0, cfg, "sd-sgsm", scan=scan)
    step = interleaved(model, lambda: input_gradient(model, x0, y0), repeats)
    full = interleaved(model, lambda: run_attack(model, x0, y0, cfg, "sd-sgsm", scan=scan), repeats)
    for name, t in (("step (fwd+bwd)", step), (f"sd-sgsm T={cfg.steps} cached scan", full)):
        print(f"{name}: plain median {statistics.median(t[False]) * 1e3:.1f} ms (min {min(t[False]) * 1e3:.1f}), "
              f"prepared median {statistics.median(t[True]) * 1e3:.1f} ms (min {min(t[True]) * 1e3:.1f})")
    return {k: {f: statistics.median(v[f]) for f in v} for k, v in (("step", step), ("sdsgsm", full))}


def step_exactness(model, x, y, keys, cfg: AttackConfig) -> dict[str, list]:
    """Per image: input-gradient error prepared vs plain and each against float64, and the
    sign pattern and label of the T-step SD-SGSM x_adv of both paths."""
    import copy

    from sdsgsm import incremental

    plain64 = copy.deepcopy(model).double()
    net64 = incremental.compile_lite(plain64.net, plain64.mean, plain64.std, torch.float64)
    out: dict[str, list] = {"err": [], "plain64": [], "fast64": [], "flips": [], "same": []}
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        scan = occlusion_scan(model, xi, cfg.scan, y=yi)
        grads, res = {}, {}
        for fast in (False, True):
            model.fast = fast
            grads[fast] = input_gradient(model, xi, yi)
            res[fast] = run_attack(model, xi, yi, cfg, "sd-sgsm", scan=scan)
        model.fast = True
        g64 = float64_gradient(net64, xi, yi)
        out["err"].append(rel(grads[True], grads[False]))
        out["plain64"].append(rel(grads[False], g64))
        out["fast64"].append(rel(grads[True], g64))
        out["flips"].append(int(((res[True].x_adv - xi).sign() != (res[False].x_adv - xi).sign()).sum()))
        out["same"].append(bool(torch.equal(res[True].adv_logits.argmax(1), res[False].adv_logits.argmax(1))))
        print(f"{keys[i]}: grad err prepared-vs-plain {out['err'][-1]:.1e}, vs float64: plain "
              f"{out['plain64'][-1]:.1e} prepared {out['fast64'][-1]:.1e}; T={cfg.steps} x_adv sign flips "
              f"{out['flips'][-1]}/{xi.numel()}, adv label {'same' if out['same'][-1] else 'DIFFERS'}")
    return out


def step_bench(model, x, y, keys, repeats: int) -> None:
    """--step: plain vs prepared network, timings side by side, then exactness per image."""
    cfg = AttackConfig(steps=5)
    print(f"device={model.device} torch_threads={torch.get_num_threads()} repeats={repeats} "
          f"(interleaved) timing image={keys[0]}")
    med = step_timings(model, x[:1], y[:1], cfg, repeats)
    ex = step_exactness(model, x, y, keys, cfg)
    n, big = len(x), (lambda e: sum(v > 1e-4 for v in e))
    print(f"images with grad err > 1e-4 against float64: plain {big(ex['plain64'])}/{n}, prepared "
          f"{big(ex['fast64'])}/{n} (ReLU6 kinks crossed by float32 rounding, in either path)")
    print(f"step_speedup={med['step'][False] / med['step'][True]:.2f} "
          f"sdsgsm_T5_s={med['sdsgsm'][False]:.3f}->{med['sdsgsm'][True]:.3f} "
          f"max_rel_grad_err={max(ex['err']):.1e} vs_float64_plain={max(ex['plain64']):.1e} "
          f"vs_float64_prepared={max(ex['fast64']):.1e} T5_sign_flips_max={max(ex['flips'])} "
          f"adv_label_same={sum(ex['same'])}/{n}")


def baseline_family(rev: str):
    """sdsgsm/attacks/fgsm_family.py as it was at git revision ``rev``, as a module of this package."""
    import subprocess
    import types

    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{rev}:sdsgsm/attacks/fgsm_family.py"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    mod = types.ModuleType("sdsgsm.attacks._baseline_family")
    mod.__package__ = "sdsgsm.attacks"  # its relative imports resolve to the current package
    sys.modules[mod.__name__] = mod  # dataclasses look their module up there
    exec(compile(src, f"{rev}:sdsgsm/attacks/fgsm_family.py", "exec"), mod.__dict__)
    return mod


def record_bench(model, x, y, repeats: int, rev: str) -> None:
    """--record: baseline loop vs recorder off vs recorder on, interleaved (module docstring)."""
    from functools import partial

    from sdsgsm.attacks import FAMILY_SPECS, run_method
    from sdsgsm.attacks.fgsm_family import Trajectory, family_core

    base = baseline_family(rev)
    spec = FAMILY_SPECS["sd-sgsm"]
    cfg = AttackConfig(steps=5)
    scan = occlusion_scan(model, x, cfg.scan, y=y)
    cores = {"baseline": lambda: partial(base.family_core, spec=base.FamilySpec(**vars(spec))),
             "off": lambda: partial(family_core, spec=spec),
             "on": lambda: partial(family_core, spec=spec, record=Trajectory())}
    times: dict[str, list[float]] = {k: [] for k in cores}
    outs = {}
    names = list(cores)
    for r in range(repeats + 1):  # round 0 warms up and is not counted
        for k in names[r % 3:] + names[:r % 3]:
            t0 = time.perf_counter()
            outs[k] = run_method("sd-sgsm", cores[k](), model, x, y, cfg, scan=scan).x_adv
            sync(x.device)
            if r:
                times[k].append(time.perf_counter() - t0)
    same = all(torch.equal(outs["baseline"], outs[k]) for k in ("off", "on"))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sd-sgsm T=5 cached scan, {repeats} rounds: baseline {rev} {med['baseline']:.3f} s, recorder off "
          f"{med['off']:.3f} s, recorder on {med['on']:.3f} s (min {min(times['baseline']):.3f} / "
          f"{min(times['off']):.3f} / {min(times['on']):.3f}); same x_adv: {same}")
    low = {k: min(v) for k, v in times.items()}  # the least disturbed run of each: steadier under load
    print(f"record_off_over_baseline={med['off'] / med['baseline']:.3f} "
          f"record_on_over_off={med['on'] / med['off']:.3f} (by minimum: {low['off'] / low['baseline']:.3f}, "
          f"{low['on'] / low['off']:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=None, help="default 2 (15 with --step)")
    ap.add_argument("--step", action="store_true", help="plain vs prepared network, one attack step")
    ap.add_argument("--record", action="store_true", help="trajectory recorder off/on vs a baseline revision")
    ap.add_argument("--baseline", default="main", help="git revision for --record (default main)")
    args = ap.parse_args()
    model = load_model("efficientnet_lite0", device=args.device)
    x, y, keys = load_gallery("imagenet", model.input_size, args.limit)
    x, y = x.to(model.device), y.to(model.device)
    if args.step:
        step_bench(model, x, y, keys, max(10, args.repeats or 15))
        return
    if args.record:
        record_bench(model, x[:1], y[:1], args.repeats or 12, args.baseline)
        return
    args.repeats = args.repeats or 2
    cfg = AttackConfig(steps=10, alpha=4 / 255)
    print(f"device={model.device} torch_threads={torch.get_num_threads()} images={len(x)} T=10 alpha=4/255")
    run_attack(model, x[:1], y[:1], cfg, "pgd")  # warm-up
    sd_times, pgd_times, full_times = [], [], []
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        scan = occlusion_scan(model, xi, cfg.scan, y=yi)
        sync(model.device)
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            pgd_times.append(timed(run_attack, model, xi, yi, cfg, "pgd"))
            sd_times.append(timed(run_attack, model, xi, yi, cfg, "sd-sgsm", scan=scan))
        full_times.append(timed(run_attack, model, xi, yi, cfg, "sd-sgsm"))
        print(f"{keys[i]}: pgd {statistics.median(pgd_times[-args.repeats:]):.3f} s  "
              f"sd-sgsm(cached scan) {statistics.median(sd_times[-args.repeats:]):.3f} s  "
              f"sd-sgsm(full) {full_times[-1]:.3f} s")
    ratio = statistics.median(sd_times) / statistics.median(pgd_times)
    print(f"median pgd {statistics.median(pgd_times):.3f} s, sd-sgsm {statistics.median(sd_times):.3f} s, "
          f"full pipeline mean {statistics.mean(full_times):.3f} s (max {max(full_times):.3f} s)")
    print(f"sdsgsm_over_pgd={ratio:.3f} full_pipeline_s={statistics.mean(full_times):.3f}")


if __name__ == "__main__":
    main()
