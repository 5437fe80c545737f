"""One output writer: the CLI's files and the Explorer's downloads are the same bytes for the same input."""

import csv
import io
import json

import pytest

from sdsgsm.attacks import build_config
from sdsgsm.cli import main
from sdsgsm.experiments.report import OUTPUT_FILES

IMAGE = "imagenet/imagenet_00_243.jpg"


def _without_times(name: str, data: bytes):
    """result.json / metrics.csv minus the wall-clock fields (they differ between two runs)."""
    if name == "result.json":
        doc = json.loads(data)
        doc["metrics"] = {k: v for k, v in doc["metrics"].items() if not k.endswith("time_s")}
        return doc
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    return [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in rows]


@pytest.mark.slow
def test_cli_files_equal_the_explorer_downloads(tmp_path):
    from sdsgsm.ui import cache

    assert main(["attack", "--image", IMAGE, "--patch", "56", "--steps", "2", "--device", "cpu",
                 "--out", str(tmp_path)]) == 0
    cfg = build_config({"patch": 56, "steps": 2})
    app = cache.files(f"gallery:{IMAGE}", "efficientnet_lite0", "sd-sgsm", cfg, cache.true_label(f"gallery:{IMAGE}",
                                                                                                      1000))
    assert list(app) == list(OUTPUT_FILES)
    for name in OUTPUT_FILES:
        cli = (tmp_path / name).read_bytes()
        if name in ("result.json", "metrics.csv"):
            assert _without_times(name, cli) == _without_times(name, app[name]), name
        else:
            assert cli == app[name], f"{name} differs between the CLI and the Explorer download"
