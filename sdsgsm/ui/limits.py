"""Per-request work limits of the shared app server (the command line has none: the spec's ranges apply there)."""

from __future__ import annotations

from sdsgsm.occlusion import grid_shape

APP_MAX_STEPS = 200  # a shared server runs at most this many steps per request (the CLI: the spec's range)
APP_MAX_WINDOWS = 56 * 56  # and scans at most this many windows per image (m = 4 at 224 px)
APP_MAX_SF_ITER = 50  # and SmoothFool takes at most this many outer iterations (each a DeepFool run)
APP_MAX_EPOCHS = 50  # and a lab retrain at most this many epochs per model


def app_limit_error(cfg, side: int, multi_step: bool = True, spatial: bool = True,
                    smoothfool: bool = False) -> str | None:
    """One line when one app request with AttackConfig ``cfg`` on ``side``-px images would be more
    work than a shared server allows (``?steps=999`` or ``?patch=1`` would run for minutes);
    None when it is within the limits. ``multi_step`` / ``spatial`` / ``smoothfool``: whether the
    method(s) take T steps / run the zero-out scan / include SmoothFool. The CLI has no such limit."""
    if multi_step and cfg.steps > APP_MAX_STEPS:
        return (f"Steps T = {cfg.steps} is above this app's limit of {APP_MAX_STEPS} per run; "
                f"use the command line (python -m sdsgsm attack --steps {cfg.steps}) for longer runs.")
    nh, nw = grid_shape(side, side, cfg.scan)
    if spatial and nh * nw > APP_MAX_WINDOWS:
        return (f"A {cfg.scan.for_size(side).patch}-px window with stride {cfg.scan.for_size(side).step} gives "
                f"{nh * nw:,} windows to scan, above this app's limit of {APP_MAX_WINDOWS:,}; choose a larger "
                "patch or stride, or use the command line.")
    if smoothfool and cfg.sf_max_iter > APP_MAX_SF_ITER:
        return (f"SmoothFool iterations = {cfg.sf_max_iter} is above this app's limit of {APP_MAX_SF_ITER} per run; "
                f"use the command line (python -m sdsgsm attack --method smoothfool --sf-max-iter {cfg.sf_max_iter}).")
    return None

# The Defences page's Detection and Randomisation tabs and the Benchmark page's Queries tab: bounded work per click
# (the command line has none of these: `sdsgsm detect`, `sdsgsm defend --eot-table`, `sdsgsm queries`).
APP_MAX_ARM_IMAGES = 8  # gallery images per Detection / Randomisation / Queries run
APP_MAX_ARM_STEPS = 20  # T of the attacks there (the adaptive detector attack and EOT multiply its cost)
APP_MAX_EOT = 20  # EOT samples n (gradients per step) and evaluation draws
APP_MAX_QUERIES = 1000  # the largest query budget of a Queries run
