"""``python -m sdsgsm attack --image PATH --method sd-sgsm --out DIR``: one image, seven output files (the
original, adversarial, perturbation ×5, saliency and budget PNGs, result.json, arrays.npz)."""

from __future__ import annotations

import sys

from sdsgsm.attacks import METHODS, config_values, method_label
from sdsgsm.cli.common import (
    CliError,
    add_attack_params,
    add_model_flags,
    config_from_args,
    model_from_args,
    run_context,
)
from sdsgsm.params import values_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("attack", help="attack one image and write PNGs, result.json, arrays.npz")
    p.add_argument("--image", default=None, help="image file or gallery key (e.g. imagenet/imagenet_00_243.jpg)")
    p.add_argument("--from", dest="from_json", default=None,
                   help="a result.json to run again (its image, method, label, parameters; flags override)")
    p.add_argument("--out", required=True, help="output directory")
    add_model_flags(p)
    p.add_argument("--method", default=None, choices=sorted(METHODS), help="registry method (default: sd-sgsm)")
    add_attack_params(p)
    p.add_argument("--label", type=int, default=None, help="true label (default: gallery label or prediction)")
    p.set_defaults(run=run)


def _report(args):
    """The ImageReport of --image (or of --from result.json, its settings under the flags given)."""
    from sdsgsm.experiments.report import attack_image, attack_tensor, resolve_image
    from sdsgsm.share import load_result, override

    if args.from_json:
        saved = load_result(args.from_json)
        cfg = override(saved.cfg, values_from_args(args, config_values(saved.cfg)))
        model = model_from_args(args)
        x, _, name = resolve_image(args.image or saved.image, model.input_size)
        label = args.label if args.label is not None else saved.label
        return attack_tensor(model, x, cfg, args.method or saved.method, label, name)
    if not args.image:
        raise CliError("attack needs --image PATH|GALLERY_KEY or --from result.json")
    cfg = config_from_args(args)
    return attack_image(model_from_args(args), args.image, cfg, args.method or "sd-sgsm", label=args.label)


def run(args) -> str:
    """Attack one image, write its files; returns the summary line (warnings go to stderr)."""
    from sdsgsm.experiments.report import write_outputs

    with run_context(args):
        report = _report(args)
    write_outputs(report, args.out)
    s = report.summary
    before, after, m = s["clean"], s["adversarial"], s["metrics"]
    for warning in s.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    after8 = s.get("adversarial_8bit", after)
    return (f"{method_label(s['method'])}: '{before['name']}' -> '{after['name']}' (success={m['success']}, 8-bit PNG "
            f"'{after8['name']}' success_8bit={m.get('success_8bit')}, L2={m['l2']:.3f}, "
            f"Linf={m['linf'] * 255:.2f}/255, SSIM={m['ssim']:.4f}, attack {m['attack_time_s']:.2f} s + scan "
            f"{m['scan_time_s']:.2f} s) -> {args.out}")
