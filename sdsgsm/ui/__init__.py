"""The streamlit-aware part of the core, split by concern (the rest of ``sdsgsm`` never imports streamlit):

* :mod:`.cache`   cached adapters (models, images, scans, attacks, output files, benchmark runs);
* :mod:`.widgets` widgets generated from the parameter spec, and the image / model / method pickers;
* :mod:`.state`   page state in session state, query parameters and presets;
* :mod:`.nav`     the one navigation menu.

Pages import this package only (never torch).
"""

from sdsgsm.metrics import format_metric
from sdsgsm.ui.cache import (
    attack,
    bench_data,
    bench_files,
    bench_method,
    device_label,
    files,
    gallery_options,
    get_model,
    load_input,
    merge_bench,
    method_flags,
    method_options,
    model_facts,
    model_options,
    true_label,
)
from sdsgsm.ui.state import apply_preset, config, init_state, keep, key, values
from sdsgsm.ui.widgets import (
    attack_controls,
    chosen_model,
    image_picker,
    method_picker,
    model_picker,
    present_toggle,
    presenting,
    shown_params,
)

__all__ = ["apply_preset", "attack", "attack_controls", "bench_data", "bench_files", "bench_method", "chosen_model",
           "config", "format_metric",
           "device_label", "files", "gallery_options", "get_model", "image_picker", "init_state", "keep", "key",
           "load_input", "merge_bench", "method_flags", "method_options", "method_picker", "model_facts",
           "model_options", "model_picker", "present_toggle", "presenting", "shown_params", "true_label", "values"]
