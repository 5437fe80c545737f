"""The one parameter spec: every entry point (configs, CLI, query parameters, presets, README) derives from it."""


import pytest
import torch

from sdsgsm.attacks import AttackConfig, build_config, config_values
from sdsgsm.budget import BudgetConfig, region_warnings
from sdsgsm.cli import build_parser
from sdsgsm.cli.common import config_from_args
from sdsgsm.occlusion import ScanConfig, grid_shape
from sdsgsm.params import (
    PARAMS,
    PRESETS,
    check,
    default_patch,
    parse_query,
)

# The parameter tables of the documentation are generated from the spec when the site is built
# (docs/hooks.py; tests/test_docs.py checks that every spec table is there).


def test_config_defaults_come_from_the_spec():
    assert build_config() == AttackConfig()
    values = config_values(AttackConfig())
    assert values == {name: p.default for name, p in PARAMS.items()}


@pytest.mark.parametrize("name", list(PARAMS))
def test_every_parameter_round_trips_and_has_a_flag(name):
    p = PARAMS[name]
    check(name, p.default)  # the default is valid
    back = p.native(p.shown(p.default))
    assert back == p.default if p.default is None or p.kind is str else back == pytest.approx(p.default)
    for sub in ("attack", "benchmark"):
        argv = [sub, "--out", "o", "--image" if sub == "attack" else "--data", "x", "--methods", "fgsm"]
        argv = argv[:-2] if sub == "attack" else argv
        args = build_parser().parse_args(argv)
        assert hasattr(args, name), f"{sub} has no {p.flag}"
    assert p.help and p.label and p.group in ("scan", "budget", "steps", "smoothfool", "patch")


def test_cli_flags_override_preset_values_which_override_defaults():
    args = build_parser().parse_args(["attack", "--image", "x", "--out", "o", "--preset", "table2",
                                      "--eps-weak", "1/255", "--alpha", "0"])
    cfg = config_from_args(args)
    assert cfg.steps == 10 and cfg.budget.eps_weak == 1 / 255 and cfg.alpha is None  # 0 = auto
    assert cfg.omega == PARAMS["omega"].default


def test_query_parameters_are_parsed_or_ignored_with_a_warning():
    values, warnings = parse_query({"steps": "200", "eps_strong": "12", "patch": "0", "alpha": "4", "region": "topk",
                                    "omega": "nan", "eps_weak": "99", "topk": "2.5", "score": "blob",
                                    "unrelated": "1"})
    assert values == {"steps": 200, "eps_strong": 12 / 255, "patch": None, "alpha": 4 / 255, "region": "topk"}
    joined = " ".join(warnings)
    assert len(warnings) == 4
    for fragment in ("omega='nan'", "not a finite number", "eps_weak='99'", "0 … 32", "topk='2.5'",
                     "not an integer", "score='blob'"):
        assert fragment in joined
    assert all("\n" not in w and "Traceback" not in w for w in warnings)


def test_paper_literal_table1_preset():
    p = PRESETS["table1-paper"]
    cfg = build_config(p.apply())
    assert (cfg.budget.eps_strong, cfg.budget.eps_weak, cfg.budget.eps_max) == (14 / 255, 8 / 255, 14 / 255)
    assert cfg.steps == 1 and cfg.eps == 8 / 255 and cfg.scan.patch is None
    assert cfg.scan.for_size(32).patch == 4 and cfg.scan.for_size(224).patch == 16
    fair = build_config(PRESETS["table1"].apply())
    assert fair.budget.eps_strong == fair.budget.eps_max == 8 / 255 and fair.budget.eps_weak == 4 / 255
    # 4-px windows on a 32-px CIFAR image: the 8 × 8 grid whose single Ω* gives the paper's 16-pixel region
    assert grid_shape(32, 32, cfg.scan) == (8, 8)


@pytest.mark.parametrize("side, patch", [(224, 16), (32, 4), (299, 23), (64, 4), (256, 16), (227, 16)])
def test_default_patch_scales_with_the_input(side, patch):
    assert default_patch(side) == patch
    assert ScanConfig().for_size(side).patch == patch
    assert ScanConfig(patch=8).for_size(side).patch == 8  # an explicit patch is kept


def test_threshold_region_warns_when_it_selects_every_window_or_none():
    grid = torch.tensor([[[0.5, 1.0], [2.0, 3.0]]])
    assert "every window" in region_warnings(grid, BudgetConfig(region="threshold", tau=0.0))[0]
    assert "no window" in region_warnings(grid, BudgetConfig(region="threshold", tau=5.0))[0]
    assert "0.5 to 3" in region_warnings(grid, BudgetConfig(region="threshold", tau=5.0))[0]
    assert region_warnings(grid, BudgetConfig(region="threshold", tau=1.5)) == []
    assert region_warnings(grid, BudgetConfig(region="argmax")) == []


def test_ti_kernel_reaches_cli_query_and_config():
    args = build_parser().parse_args(["attack", "--image", "x", "--out", "o", "--method", "tifgsm", "--ti-kernel", "5"])
    assert config_from_args(args).ti_kernel == 5
    values, warnings = parse_query({"ti_kernel": "4"})
    assert values == {} and "must be odd" in warnings[0]
    with pytest.raises(ValueError, match="odd"):
        AttackConfig(ti_kernel=10)
