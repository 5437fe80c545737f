"""Learn: the method in seven stations on one live image (paper §3, Fig. 1, Fig. 2, Proposition 1).

One station at a time (a teacher projects it): the prediction, one window zeroed out, the saliency
map and region R, the budget map E, sign versus tanh, the iterations replayed, and a link to the
Explorer with the same image and parameters. The image and parameters are shared with the Explorer.
"""

from urllib.parse import urlencode

import numpy as np
import streamlit as st

from sdsgsm import ui
from sdsgsm.params import PARAMS, format_budget
from sdsgsm.render import learn_viz, viz
from sdsgsm.ui import learn as lu
from sdsgsm.ui import nav
from sdsgsm.ui.widgets import derived_value, param_widget

st.set_page_config(page_title="Learn · SD-SGSM", layout="wide",
                   initial_sidebar_state="collapsed" if ui.presenting() else "auto")
nav.sidebar()
P = lu.P
ui.present_toggle(P)
STATIONS = list(lu.STATIONS)

first = not st.session_state.get(f"{P}_init")
adopted = lu.adopt_explorer_state()
for warning in ui.init_state(P) + (lu.station_from_query() if first else []):
    st.warning(warning)
st.session_state.setdefault(f"{P}_station", STATIONS[0])

st.title("Learn: how SD-SGSM works")
st.sidebar.header("Image")
picked = ui.image_picker(P)
st.sidebar.header("Model")
model_key, ckpt, arch, facts = ui.chosen_model(P)
if adopted:
    st.sidebar.caption("Image and parameters taken from the Explorer.")
if picked is None:
    st.info("Upload an image in the sidebar (PNG, JPEG, WebP, BMP, TIFF or GIF) or pick one from the gallery.")
    st.stop()
source, data, caption = picked
try:
    original = ui.load_input(source, facts["input_size"], data).transpose(1, 2, 0)  # (H, W, 3)
except ValueError as exc:  # a corrupt, empty, tiny or huge image
    st.error(str(exc).splitlines()[0])
    st.stop()
side = facts["input_size"]
label = ui.true_label(source, facts["num_classes"])
args = (data, ckpt, arch)


def step_buttons() -> None:
    """Back / Next above the station (in the first screen, whatever the station's height)."""
    i = STATIONS.index(st.session_state[f"{P}_station"])
    back, _, nxt = st.columns([1, 4, 1])
    if i > 0:
        back.button("← Back", key=f"{P}_back", on_click=lu.go_station, args=(i - 1,), width="stretch")
    if i < len(STATIONS) - 1:
        nxt.button("Next →", key=f"{P}_next", on_click=lu.go_station, args=(i + 1,), width="stretch",
                   type="primary")


def explain(text: str, equation: str) -> None:
    """A station's plain-language explanation with the paper's equation beside it."""
    left, right = st.columns([4, 5], vertical_alignment="center")  # room for the widest equation (station 6)
    left.markdown(text)
    right.latex(equation)


def widgets(*names: str, box=None) -> None:
    """Spec widgets (sdsgsm/params.py) for ``names``, in ``box`` (default: the main area)."""
    with box or st.container():
        for name in names:
            p = PARAMS[name]
            if p.show_if is None or st.session_state[f"{P}_{p.show_if[0]}"] in p.show_if[1]:
                param_widget(P, p, side, derived_value(name, ui.config(P), (st.session_state.get(
                    f"{P}_method", "sd-sgsm"),), side) if p.auto and p.widget == "slider" else None)


def top5_table(box, title: str, rows: list[dict], short: bool = False) -> None:
    box.dataframe({title: [r["name"][:24] if short else r["name"] for r in rows], "p": [r["prob"] for r in rows]},
                  hide_index=True, width="stretch", column_config={"p": st.column_config.ProgressColumn(
                      "p" if short else "probability", format="percent", min_value=0.0, max_value=1.0)})


def scanned() -> dict:
    cfg = lu.scan_config(ui.values(P))
    with st.spinner("Zero-out scan of every window (once per image and patch size) …"):
        return lu.scan(source, model_key, cfg, label, *args)


# ----------------------------------------------------------------------------- stations
def station_prediction() -> None:
    explain(f"The classifier *f* turns the image *x* ({side} × {side} pixels, values in [0, 1]) into one score per "
            "class; softmax makes them probabilities. These are its five best guesses. The attack will try to "
            "change the top one while moving every pixel by only a few 1/255.",
            r"p = \mathrm{softmax}\big(f(x)\big),\qquad \hat y = \arg\max_k\, p_k")
    top5 = lu.prediction(source, model_key, *args)
    c1, c2 = st.columns([2, 3])
    c1.image(viz.to_pil(original), width="stretch", caption=caption[:80])
    top5_table(c2, "Top-5 classes", top5)
    truth = f"**{facts['labels'][label]}** (the gallery's true label)" if label is not None else \
        "the model's own top-1 (no true label is known for this image)"
    c2.markdown(f"The attack will push the image away from {truth}.")


def station_window() -> None:
    explain("Black out one square window Ω (all three colour channels set to 0) and ask the model again. "
            "Where its evidence is, the scores move a lot; elsewhere they hardly change (paper Fig. 1: cover the "
            "dog's face and it is no longer sure it is a dog). Δ_Ω measures the move; the scan tries every "
            "window, and Ω* is the one that moves the logits most.",
            r"\begin{aligned}(Z_\Omega x)_{i,j,c} &= 0\ \ \text{for } (i,j)\in\Omega\ \ (\text{eq. 1})\\"
            r"\Delta_\Omega &= \lVert f(x) - f(Z_\Omega x)\rVert_2\ \ (\text{eq. 2})\end{aligned}")
    c0, cs, c1, c2, c3 = st.columns([2, 2, 1, 1, 1.4], vertical_alignment="bottom")
    widgets("patch", box=c0)
    widgets("score", box=cs)
    s = scanned()
    grid, boxes = s["grid"], s["boxes"]
    nh, nw = grid.shape
    best = lu.best_window(grid)
    lu.clamp_window(source, grid.shape, best)
    c1.selectbox("Window row", range(nh), key=f"{P}_row", format_func=lambda r: str(r + 1))
    c2.selectbox("Window column", range(nw), key=f"{P}_col", format_func=lambda c: str(c + 1))
    c3.button("Most sensitive Ω*", key=f"{P}_best", on_click=lu.set_window, args=(best,), width="stretch")
    r, c = st.session_state[f"{P}_row"], st.session_state[f"{P}_col"]
    box = tuple(int(v) for v in boxes[r * nw + c])
    occ = lu.occluded(source, model_key, box, *args)
    is_best = (r, c) == best
    colour = viz.RED if is_best else lu.PICKED
    i1, i2, i3 = st.columns([1, 1, 1.1])
    i1.image(viz.draw_boxes(viz.to_pil(original), [box], colour), width="stretch", caption="x: the original")
    i2.image(viz.draw_boxes(viz.to_pil(occ["occluded"]), [box], colour), width="stretch",
             caption=f"Z_Ω x: window row {r + 1}, column {c + 1} " + ("(Ω*, the most sensitive)" if is_best else ""))
    top5_table(i3, "Before", occ["before"], short=True)
    top5_table(i3, "After zeroing Ω", occ["after"], short=True)
    rank = int((grid > grid[r, c]).sum()) + 1
    m1, m2, m3 = st.columns(3)
    m1.metric("Δ_Ω (logit distance)", f"{occ['delta']:.2f}", help="‖f(x) − f(Z_Ω x)‖₂, eq. 2, float32")
    m2.metric("Rank among windows", f"{rank} of {grid.size}", help="by the scan's Δ (1 = Ω*)")
    m3.metric(f"p({occ['before'][0]['name'][:22]})", f"{occ['p_top1_after']:.1%}",
              delta=f"{(occ['p_top1_after'] - occ['before'][0]['prob']) * 100:+.1f} points")
    if occ["p_top1_after"] > occ["before"][0]["prob"] and st.session_state[f"{P}_score"] == "logit_l2":
        st.caption("The logits moved a lot, yet the top class became *more* likely: Δ_Ω counts any change. Set the "
                   "window score to confidence_drop to rank windows by how much the top class loses instead "
                   "(Algorithm 1's γ).")


def station_region() -> None:
    explain("Doing this for every window gives a **saliency map**: bright windows are where the model looks. "
            "The sensitive region R is taken from it: Ω* alone (the paper's default), the top-k windows, every "
            "window with Δ > τ, Ω* plus its strong neighbours, or *soft* (no hard region: the budget follows "
            "the saliency). Switch the mode and watch R (red) change.",
            r"\Omega^* = \arg\max_{\Omega}\,\Delta_\Omega,\qquad R = \Omega^*\ \ (\text{eq. 11})")
    c0, c1 = st.columns([1, 3])
    widgets("patch", "region", "topk", "tau", "rho", box=c0)
    s = scanned()
    try:
        bud = lu.budget_of(s["grid"], s["boxes"], side, lu.budget_config(ui.values(P)))
    except ValueError as exc:
        st.error(str(exc))
        return
    red = lu.region_box_list(bud["region"], s["boxes"])
    i1, i2 = c1.columns(2)
    i1.image(viz.draw_boxes(viz.to_pil(original), red, viz.RED), width="stretch", caption="Red: the region R")
    i2.plotly_chart(viz.saliency_figure(lu.saliency_pixels(s["grid"], s["boxes"], side), red), theme=None,
                    key=f"{P}_sal")
    g = s["grid"]
    mode = st.session_state[f"{P}_region"]
    held = "none (soft: E follows the saliency)" if mode == "soft" else f"{len(red)} of {g.size} windows"
    c1.caption(f"Δ ranges {g.min():.3g} … {g.max():.3g} over {g.size} windows of {s['cfg'].patch} px; "
               f"R holds {held}. Scan: {s['seconds']:.2f} s ({s['engine']}), cached.")


def station_budget() -> None:
    explain("Every pixel gets its own L∞ budget: ε_strong inside R, ε_weak elsewhere. The attack may change a "
            "pixel's value by at most E there (in units of 1/255 of the full range). For a fair comparison the "
            "paper caps every ε at ε_max = 8/255, the budget FGSM and PGD get everywhere.",
            r"\begin{aligned}E_{i,j} &= \begin{cases}\varepsilon_{\mathrm{strong}} & (i,j)\in R\\"
            r"\varepsilon_{\mathrm{weak}} & \text{otherwise}\end{cases}\ \ (\text{eq. 5, 11})\\"
            r"|\delta_{i,j}| &\le E_{i,j}\end{aligned}")
    c0, c1 = st.columns([1, 3])
    widgets("eps_strong", "eps_weak", "eps_max", box=c0)
    s = scanned()
    try:
        cfg = lu.budget_config(ui.values(P))
    except ValueError as exc:  # ε_weak > ε_strong, ε_strong > ε_max
        c1.error(str(exc))
        return
    bud = lu.budget_of(s["grid"], s["boxes"], side, cfg)
    i1, i2 = c1.columns(2)
    i1.plotly_chart(viz.budget_figure(bud["budget"]), theme=None, key=f"{P}_budget")
    n = bud["budget"].size
    i2.metric("Pixels at ε_strong", f"{bud['strong']:,} ({bud['strong'] / n:.1%})")
    i2.metric("Pixels at ε_weak", f"{bud['weak']:,} ({bud['weak'] / n:.1%})")
    if bud["between"]:
        i2.metric("Pixels in between (soft)", f"{bud['between']:,} ({bud['between'] / n:.1%})")
    cap = cfg.eps_max * 255
    i2.caption(f"ε_strong = {cfg.eps_strong * 255:g}/255, ε_weak = {cfg.eps_weak * 255:g}/255, cap ε_max = {cap:g}/255"
               + (" — above the paper's fair cap of 8/255." if cap > 8 + 1e-9 else " (the paper's fair cap)."))


def station_tanh() -> None:
    explain("FGSM moves every pixel by exactly ±ε: its direction sign(g) is always a **corner** of the cube "
            "[−1, 1]ⁿ. SGSM uses tanh(ω·ĝ) instead, with ĝ the gradient divided by its largest value: for small ω "
            "it points along the gradient itself, inside the cube; as ω grows it slides out to the same corner as "
            "FGSM (paper Fig. 2). Move ω and watch the red step.",
            r"\begin{aligned}\operatorname{sign}(g)\ &\longrightarrow\ \tanh(\omega\cdot\hat g)\ \ (\text{eq. 6})\\"
            r"\hat g &= g/\max|g|\end{aligned}")
    c0, c1 = st.columns([1, 3])
    widgets("omega", box=c0)
    omega = float(st.session_state[f"{P}_omega"])
    grad_norm = st.session_state[f"{P}_grad_norm"]
    kind = c1.radio("Gradient to draw", ["three real pixels of this image", "your own numbers"], horizontal=True,
                    key=f"{P}_gsource")
    grad = lu.gradient(source, model_key, label, *args)
    if kind == "your own numbers":
        cols = c1.columns(3)
        g = np.array([cols[i].number_input(f"g{i + 1}", -10.0, 10.0, step=0.05, key=f"{P}_g{i + 1}")
                      for i in range(3)])
        picks, cube_norm = None, grad_norm
    else:
        picks = lu.learn.pick_pixels(grad)
        if grad_norm == "max":  # ĝ = g / max|g| over the whole image, as the attack normalises
            g, cube_norm = np.array([p["g_hat"] for p in picks]), "none"
        else:  # pow10 / none: the first pick is the image's largest |g|, so the 3-vector scales alike
            g, cube_norm = np.array([p["value"] for p in picks]), grad_norm
    tabs = st.tabs(["(a) The cube", "(b) The paper's toy example", "(c) Saturation on this image",
                    "(d) Proposition 1 live"])
    with tabs[0]:
        cube(g, omega, cube_norm, picks)
    with tabs[1]:
        toy()
    with tabs[2]:
        sat = lu.learn.saturation(lu.torch_of(grad), omega, grad_norm)
        st.markdown(f"At ω = {omega:g}, **{sat['saturated']:.1%}** of the {sat['n']:,} gradient values give a "
                    f"saturated step (|tanh| ≥ {lu.learn.SATURATED}, red: as hard as FGSM) and **{sat['linear']:.1%}**"
                    f" stay in the linear regime (|tanh| < {lu.learn.LINEAR}, blue: proportional to the gradient). "
                    "Raise ω to push more pixels to the corner.")
        st.plotly_chart(learn_viz.saturation_figure(sat["counts"], sat["edges"], lu.learn.SATURATED,
                                                    lu.learn.LINEAR), theme=None, key=f"{P}_sat")
    with tabs[3]:
        proposition(omega, grad_norm)


def cube(g: np.ndarray, omega: float, grad_norm: str, picks) -> None:
    if not np.any(g[:2]):
        st.info("Enter a gradient with a non-zero g1 or g2.")
        return
    two, three = lu.learn.tanh_path(g[:2], lu.OMEGA_CURVE, grad_norm), lu.learn.tanh_path(g, lu.OMEGA_CURVE, grad_norm)
    now2, now3 = lu.learn.tanh_path(g[:2], [omega], grad_norm), lu.learn.tanh_path(g, [omega], grad_norm)
    c1, c2 = st.columns(2)
    c1.plotly_chart(learn_viz.cube_2d(two["points"], now2["points"][0], two["sign"], two["g_hat"], omega),
                    theme=None, key=f"{P}_cube2")
    c2.plotly_chart(learn_viz.cube_3d(three["points"], now3["points"][0], three["sign"], three["g_hat"], omega),
                    theme=None, key=f"{P}_cube3")
    if picks:
        where = "; ".join(f"ĝ{i + 1} = {p['g_hat']:+.3f} ({lu.rank_text(p['quantile'])} |g|: channel "
                          f"{'RGB'[p['channel']]}, row {p['row']}, column {p['col']})" for i, p in enumerate(picks))
        st.caption(f"Three real pixels of this image's gradient, divided by its largest |g| as the attack does: "
                   f"{where}. The 2-D picture uses the first two.")
    st.caption("tanh(ω·ĝ) = " + ", ".join(f"{v:+.3f}" for v in now3["points"][0]) + " · sign(g) = "
               + ", ".join(f"{v:+.0f}" for v in three["sign"]))


def toy() -> None:
    st.markdown("§3.4's example: a 1-D gradient g = [−0.2, −0.05, 0, 0.05, 0.2], eq. 6 read literally "
                "(no normalisation). The paper uses ω = 5.")
    st.session_state.setdefault(f"{P}_toy_omega", 5.0)  # the paper's ω
    w = st.select_slider("ω for the toy example", [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0], key=f"{P}_toy_omega")
    t = lu.learn.toy_example(w)
    rows = {"g": t["g"], "sign(g)  (FGSM)": t["sign"], f"tanh({w:g}·g)  (SGSM)": t["tanh"]}
    st.dataframe({"": list(rows), **{f"g{i + 1}": [f"{rows[r][i]:+.3f}" for r in rows] for i in range(5)}},
                 hide_index=True)
    st.caption("sign collapses −0.2 and −0.05 to the same −1; tanh keeps their ratio while staying within ±1.")


def proposition(omega: float, grad_norm: str) -> None:
    eps = ui.values(P)["eps"]
    st.markdown("**Proposition 1.** Scale the tanh step by α so that its first-order gain ⟨g, δ⟩ equals FGSM's. "
                "While tanh is linear, its L2 norm is ε‖g‖₁/‖g‖₂, never more than FGSM's ε√n (Cauchy–Schwarz), "
                "equal only if every |g_i| is the same. Here on this image's gradient, by the attack's own code:")
    st.latex(r"\alpha\,\langle g,\tanh(\omega\hat g)\rangle = \varepsilon\lVert g\rVert_1\ \Rightarrow\ "
             r"\lVert\delta_{\tanh}\rVert_2 \approx \varepsilon\frac{\lVert g\rVert_1}{\lVert g\rVert_2}"
             r"\le \varepsilon\sqrt{n} = \lVert\delta_{\mathrm{FGSM}}\rVert_2")
    try:
        res = lu.prop1(source, model_key, label, eps, omega, grad_norm, *args)
    except ValueError as exc:  # a zero gradient: nothing to compare
        st.info(str(exc))
        return
    curve = lu.prop1_curve(source, model_key, label, eps, grad_norm, *args)
    c1, c2 = st.columns([1, 2])
    c1.metric("‖δ_FGSM‖₂", f"{res['l2_fgsm']:.3f}", help=f"ε·sign(g), ε = {eps * 255:g}/255, n = {res['n']:,}")
    c1.metric(f"‖δ_tanh‖₂ at ω = {omega:g}", f"{res['l2_tanh']:.3f}", delta=f"{(res['ratio'] - 1):+.1%} vs FGSM",
              delta_color="inverse")
    c1.metric("Linear-regime value ε‖g‖₁/‖g‖₂", f"{res['l2_linear']:.3f}")
    c1.caption(f"Same gain: ⟨g, δ⟩ = {res['gain_fgsm']:.4g} for both. α = {res['alpha'] * 255:.3g}/255; the "
               f"matched tanh step reaches L∞ {res['linf_tanh'] * 255:.3g}/255 (the proposition matches gains, "
               "not budgets).")
    linear = res["l2_linear"] / res["l2_fgsm"]
    c2.plotly_chart(learn_viz.prop1_figure(lu.OMEGA_CURVE, curve, omega, res["ratio"], linear), theme=None,
                    key=f"{P}_prop1")


def station_replay() -> None:
    explain("The multi-step attack repeats one step T times: move by α·tanh(ω·ĝ), clip the change to the budget E, "
            "clip the image to [0, 1]. Drag the step slider to watch the image x_t, its change δ_t (×5, grey = 0) "
            "and the model's confidence; the red dashed line marks the step at which the label flips.",
            r"\begin{aligned}x' &= x_t + \alpha\tanh(\omega\,\hat g_t)\ \ (\text{eq. 12})\\"
            r"x_{t+1} &= \mathrm{clip}_{[0,1]}\big(x + \mathrm{clip}_{[-E,E]}(x' - x)\big)\ \ (\text{14–15})"
            r"\end{aligned}")
    c = st.columns(4, vertical_alignment="bottom")
    st.session_state.setdefault(f"{P}_method", "sd-sgsm")
    if st.session_state[f"{P}_method"] not in lu.REPLAY_METHODS:
        st.session_state[f"{P}_method"] = "sd-sgsm"
    method = c[0].selectbox("Method", lu.REPLAY_METHODS, key=f"{P}_method",
                            help="FGSM-family methods: their loop records every step")
    widgets("steps", box=c[1])
    widgets("alpha", box=c[2])
    widgets("omega", box=c[3])
    try:
        cfg = ui.config(P)
    except ValueError as exc:
        st.error(str(exc))
        return
    if cfg.steps > lu.MAX_REPLAY_STEPS and ui.method_flags(method)["multi_step"]:
        st.error(f"The replay keeps every step: choose T ≤ {lu.MAX_REPLAY_STEPS} (the Explorer runs any T).")
        return
    if ui.method_flags(method)["spatial"]:
        scanned()
    with st.spinner(f"{method}: recording every step …"):
        rec = lu.replay(source, model_key, method, cfg, label, *args)
    replay_view(rec)


@st.fragment
def replay_view(rec: dict) -> None:
    """The step slider and what it shows (a fragment: moving t reruns only this)."""
    steps = rec["steps"]
    k = f"{P}_t"
    st.session_state[k] = min(st.session_state.get(k, 0), steps)
    t = st.slider("Step t", 0, steps, key=k) if steps > 0 else 0
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.image(viz.to_pil(rec["states"][t]), width="stretch", caption=f"x_{t}: {rec['pred_names'][t]}")
    c2.image(viz.to_pil(rec["perturbation_x5"][t]), width="stretch", caption=f"δ_{t} × 5 (grey = 0)")
    c3.plotly_chart(learn_viz.replay_figure(rec["loss"], rec["p_true"], rec["p_other"], rec["flip"], t, rec["label"]),
                    theme=None, key=f"{P}_replay_chart")
    flip = rec["flip"]
    when = f"flips at step {flip}" if flip is not None else f"does not flip within {steps} step{'s' * (steps != 1)}"
    st.markdown(f"Step {t}: p(**{rec['label']}**) = {rec['p_true'][t]:.1%}, best other class "
                f"**{rec['other_names'][t]}** = {rec['p_other'][t]:.1%}, loss {rec['loss'][t]:.2f}. The label {when}; "
                f"final L∞ {format_budget(rec['linf'])}.")
    alpha = format_budget(None, auto=rec["alpha"]) if rec["alpha_auto"] else format_budget(rec["alpha"])
    st.caption(f"Attacked label: {rec['label']} ({rec['label_source']}). Step size α = {alpha}, "
               f"{rec['steps']} step{'s' if rec['steps'] != 1 else ''}.")


def station_try() -> None:
    st.markdown("Everything you saw here runs live in the **Explorer**, with every parameter and every method, the "
                "metrics (L2, L∞, SSIM, times) and downloads. The button opens it with this image, this method "
                "and these parameters; **Compare** then puts SD-SGSM beside FGSM, PGD and the rest.")
    method = st.session_state.get(f"{P}_method", "sd-sgsm")
    query = lu.explorer_query(source, method)
    if st.button("Open the Explorer with this image and these parameters", key=f"{P}_open", type="primary"):
        lu.hand_over_to_explorer()
        st.switch_page("pages/1_Explorer.py", query_params=query)
    st.markdown("A link to share (opens a fresh session with the same image and parameters):")
    st.code(f"/Explorer?{urlencode(query, safe='/')}", language=None)
    if not source.startswith("gallery:"):
        st.caption("An uploaded image cannot travel in a link or between pages: the button carries the method and "
                   "the parameters; upload the same file again in the Explorer.")
    st.markdown("Ideas for the class: make ε_weak = ε_strong (SD becomes uniform), set ω = 1e6 (SGSM becomes "
                "FGSM), try region *topk* with k = 5, or a patch of 56 px (16 windows, a coarse map).")


STATION_FNS = [station_prediction, station_window, station_region, station_budget, station_tanh, station_replay,
               station_try]
current = st.radio("Station", STATIONS, horizontal=True, key=f"{P}_station", label_visibility="collapsed")
step_buttons()
st.header(lu.TITLES[STATIONS.index(current)])
STATION_FNS[STATIONS.index(current)]()
