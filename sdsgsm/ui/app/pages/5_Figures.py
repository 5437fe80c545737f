"""Figures: paper Fig. 5/6 grids (rows = images, column groups = methods) and Fig. 3/4 radar and bars,
as print files (PDF with embedded fonts, PNG at 300 dpi, SVG, JSON caption). Same code as
`python -m sdsgsm figure grid|radar|bars`."""

import streamlit as st

from sdsgsm import ui
from sdsgsm.ui import figures as uf
from sdsgsm.ui import nav
from sdsgsm.ui import state as links
from sdsgsm.ui.figures import COLUMNS, DEFAULT_COLUMNS, grid_layout

st.set_page_config(page_title="Figures · SD-SGSM", layout="wide")
nav.sidebar()
P = "fig"
query = links.open_page(P)
st.title("Figures for papers")
st.caption("Print-ready figures: PDF (vector text, embedded TrueType fonts), PNG at 300 dpi, SVG, and a .json "
           "caption with every parameter, the model, the random seed and the package versions.")

KINDS = {"grid": "Grid (paper Fig. 5/6)", "charts": "Radar and bars (paper Fig. 3/4)"}
kind = st.radio("Figure", list(KINDS), format_func=KINDS.get, key=f"{P}_kind", horizontal=True,
                label_visibility="collapsed")
if kind == "charts":  # made from a results.csv: none of the grid's pickers or parameters apply
    st.caption("Upload a benchmark's `results.csv` (from the Benchmark page or `python -m sdsgsm benchmark`). "
               "Command line: `python -m sdsgsm figure radar|bars --results results.csv --out DIR`.")
    up = st.file_uploader("results.csv", type=["csv"], key=f"{P}_results")
    if up is not None:
        for chart, title in (("radar", "Radar (Fig. 3): per metric the best method scores 1; larger area is better"),
                             ("bars", "Bars (Fig. 4): mean ± std per metric")):
            try:
                files = uf.chart_files(chart, up.getvalue(), up.name)
            except (ValueError, KeyError) as exc:
                st.error(str(exc).splitlines()[0] if not isinstance(exc, KeyError) else
                         f"results.csv lacks the column {exc.args[0]!r}.")
                break
            st.subheader(title)
            st.image(files["preview.png"], width=700 if chart == "bars" else 420)
            cols = st.columns(4)
            for col, (name, data) in zip(cols, ((n, d) for n, d in files.items() if n != "preview.png")):
                col.download_button(name, data, name, key=f"{P}_{chart}_{name}", on_click="ignore", width="stretch")
    st.stop()

st.sidebar.header("Model")
model_key, ckpt, arch, facts = ui.chosen_model(P)
st.sidebar.header("Images, methods, columns")
collections = ["cifar10"] if facts["input_size"] <= 64 else ["imagenet", "photo"]
items = {g["key"]: g for c in collections for g in ui.gallery_options(c)}
methods = ui.method_options()


def from_link(name: str, allowed, default: list) -> list:
    """A comma list from the link (first run only), restricted to ``allowed``; else ``default``."""
    if name not in query:
        return default
    got = [v for v in query[name].split(",") if v in allowed]
    if len(got) != len(query[name].split(",")):
        st.warning(f"Ignored part of {name}={query[name][:60]!r} from the link: unknown entries.")
    return got or default


keys = st.sidebar.multiselect("Gallery images (rows)", list(items), key=f"{P}_images",
                              default=from_link("images", items, list(items)[:3]),
                              format_func=lambda k: items[k]["caption"].split(";")[0][:50])
chosen = st.sidebar.multiselect("Methods (column groups)", list(methods), key=f"{P}_methods",
                                default=from_link("methods", methods, ["fgsm", "sd-sgsm"]))
columns = st.sidebar.multiselect("Columns", list(COLUMNS), key=f"{P}_columns", format_func=COLUMNS.get,
                                 default=from_link("columns", COLUMNS, list(DEFAULT_COLUMNS)),
                                 help="Original and saliency depend on the image only and appear once per row; "
                                      "the others once per method.")
st.sidebar.header("Parameters")
try:
    cfg, _ = ui.attack_controls(P, chosen, facts["input_size"])
except ValueError as exc:
    st.error(str(exc).splitlines()[0])
    st.stop()
links.share_link(P, {"model": None if ckpt else model_key, "images": ",".join(keys), "methods": ",".join(chosen),
                     "columns": ",".join(columns)})


def downloads(files: dict, prefix: str) -> None:
    cols = st.columns(4)
    for col, (name, data) in zip(cols, ((n, d) for n, d in files.items() if n != "preview.png")):
        col.download_button(name, data, name, key=f"{P}_{prefix}_{name}", on_click="ignore", width="stretch")


if not keys or not chosen or not columns:
    st.info("Choose at least one image, one method and one column in the sidebar.")
else:
    shared, per, panels = grid_layout(len(keys), len(chosen), columns)
    st.caption(f"{len(keys)} rows × ({shared} shared + {len(chosen)} methods × {per}) = {panels} panels · "
               f"model **{facts['name']}** · command line: `python -m sdsgsm figure grid --images "
               f"{','.join(keys)} --methods {','.join(chosen)} --columns {','.join(columns)} --out DIR`")
    request = (model_key, tuple(keys), tuple(chosen), tuple(columns), cfg)
    if st.button("Build grid", type="primary", key=f"{P}_run"):
        st.session_state[f"{P}_request"] = request
    if st.session_state.get(f"{P}_request") != request:
        st.info(f"Press **Build grid** ({len(keys) * len(chosen)} attacks; each image is scanned once and "
                "cached, as in the Explorer).")
    else:
        bar = st.progress(0.0, text="Starting …")
        total = len(keys) * len(chosen)
        try:
            for i, (k, m) in enumerate((k, m) for k in keys for m in chosen):
                bar.progress(i / total, text=f"{m} on {k} ({i + 1}/{total})")
                uf.grid_record(k, model_key, m, cfg, facts["num_classes"], ckpt, arch)
            bar.progress(1.0, text="Rendering PDF, PNG (300 dpi) and SVG …")
            files = uf.grid_files(tuple(keys), model_key, tuple(chosen), tuple(columns), cfg,
                                  facts["num_classes"], ckpt, arch)
        except (ValueError, RuntimeError) as exc:
            bar.empty()
            st.error(f"The grid could not be built: {str(exc).splitlines()[0]}")
            st.stop()
        bar.empty()
        st.image(files["preview.png"], caption="Preview (screen resolution). Red: sensitive region R; yellow: "
                 "largest-perturbation tiles; perturbation ×5 around grey.")
        downloads(files, "grid")
