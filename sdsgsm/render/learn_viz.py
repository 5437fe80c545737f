"""Pure Plotly builders for the Learn page (paper Fig. 2, §3.5, §3.7): no streamlit, no global state.

Colours follow the app: the tanh step red (paper Fig. 2's solid red arrow), FGSM's sign
directions grey and dashed (Fig. 2's dashed arrows to the vertices).
"""

from __future__ import annotations

import itertools

import numpy as np

TANH_RED = "#d62728"
SIGN_GREY = "#7f7f7f"
GRAD_BLUE = "#1f77b4"
FONT = dict(size=15)  # read from the back of a classroom


def _go():
    import plotly.graph_objects as go

    return go


def cube_2d(path: np.ndarray, current: np.ndarray, sign: np.ndarray, g_hat: np.ndarray, omega: float):
    """The square [−1, 1]² (Fig. 2 in 2-D): FGSM's four vertex directions dashed, sign(g) marked,
    the path of tanh(ω·ĝ) as ω grows (grey), and the step at the chosen ω (red arrow).

    path (k, 2) points for increasing ω; current (2,) tanh(ω·ĝ); sign (2,); g_hat (2,) = g / max|g|.
    """
    go = _go()
    fig = go.Figure()
    fig.add_shape(type="rect", x0=-1, y0=-1, x1=1, y1=1, line=dict(color="black", width=1.5))
    for vx, vy in itertools.product((-1, 1), repeat=2):
        fig.add_annotation(x=vx, y=vy, ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=2, arrowwidth=1.2, arrowcolor=SIGN_GREY, opacity=0.45, text="")
    fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", line=dict(color="#999", width=2, dash="dot"),
                             name="tanh(ω·ĝ) as ω grows", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[0, g_hat[0]], y=[0, g_hat[1]], mode="lines", line=dict(color=GRAD_BLUE, width=2),
                             name="gradient direction ĝ"))
    fig.add_trace(go.Scatter(x=[sign[0]], y=[sign[1]], mode="markers", name="FGSM: sign(g), a vertex",
                             marker=dict(size=16, color=SIGN_GREY, symbol="square")))
    fig.add_trace(go.Scatter(x=[current[0]], y=[current[1]], mode="markers", name=f"SGSM: tanh(ω·ĝ), ω = {omega:g}",
                             marker=dict(size=14, color=TANH_RED)))
    fig.add_annotation(x=current[0], y=current[1], ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y",
                       showarrow=True, arrowhead=2, arrowwidth=3, arrowcolor=TANH_RED, text="")
    fig.update_xaxes(range=[-1.2, 1.2], zeroline=True, title="g₁", constrain="domain")
    fig.update_yaxes(range=[-1.2, 1.2], zeroline=True, title="g₂", scaleanchor="x")
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0))
    return fig


def cube_3d(path: np.ndarray, current: np.ndarray, sign: np.ndarray, g_hat: np.ndarray, omega: float):
    """The cube [−1, 1]³ (Fig. 2): 12 edges, FGSM's 8 vertex directions dashed, sign(g), the
    tanh(ω·ĝ) path as ω grows and the step at the chosen ω (red). Arrays as :func:`cube_2d`, 3-D."""
    go = _go()
    verts = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=float)
    ex, ey, ez = [], [], []
    for a, b in itertools.combinations(verts, 2):
        if np.abs(a - b).sum() == 2:  # an edge: one coordinate differs
            ex += [a[0], b[0], None]
            ey += [a[1], b[1], None]
            ez += [a[2], b[2], None]
    rx, ry, rz = [], [], []
    for v in verts:
        rx += [0, v[0], None]
        ry += [0, v[1], None]
        rz += [0, v[2], None]
    fig = go.Figure([
        go.Scatter3d(x=ex, y=ey, z=ez, mode="lines", line=dict(color="black", width=3), name="cube [−1, 1]³",
                     hoverinfo="skip"),
        go.Scatter3d(x=rx, y=ry, z=rz, mode="lines", line=dict(color=SIGN_GREY, width=2, dash="dash"),
                     name="FGSM's 8 possible directions", hoverinfo="skip", opacity=0.5),
        go.Scatter3d(x=path[:, 0], y=path[:, 1], z=path[:, 2], mode="lines", line=dict(color="#999", width=4),
                     name="tanh(ω·ĝ) as ω grows", hoverinfo="skip"),
        go.Scatter3d(x=[0, g_hat[0]], y=[0, g_hat[1]], z=[0, g_hat[2]], mode="lines",
                     line=dict(color=GRAD_BLUE, width=5), name="gradient direction ĝ"),
        go.Scatter3d(x=[sign[0]], y=[sign[1]], z=[sign[2]], mode="markers", name="FGSM: sign(g)",
                     marker=dict(size=8, color=SIGN_GREY, symbol="square")),
        go.Scatter3d(x=[0, current[0]], y=[0, current[1]], z=[0, current[2]], mode="lines+markers",
                     line=dict(color=TANH_RED, width=8), marker=dict(size=[0, 7], color=TANH_RED),
                     name=f"SGSM: tanh(ω·ĝ), ω = {omega:g}"),
    ])
    axis = dict(range=[-1.15, 1.15], showbackground=False)
    fig.update_layout(scene=dict(xaxis=axis | dict(title="g₁"), yaxis=axis | dict(title="g₂"),
                                 zaxis=axis | dict(title="g₃"), aspectmode="cube",
                                 camera=dict(eye=dict(x=1.5, y=1.3, z=0.9))),
                      height=520, margin=dict(l=0, r=0, t=0, b=0), font=FONT,
                      legend=dict(orientation="h", yanchor="top", y=0.02, x=0))
    return fig


def saturation_figure(counts: np.ndarray, edges: np.ndarray, saturated_from: float, linear_below: float):
    """Histogram of |tanh(ω·ĝ)| over all values of the image's gradient; saturated bins red,
    linear-regime bins blue (log count axis: most values are tiny)."""
    go = _go()
    centres = (edges[:-1] + edges[1:]) / 2
    colours = [TANH_RED if c >= saturated_from else GRAD_BLUE if c < linear_below else "#bbbbbb" for c in centres]
    fig = go.Figure(go.Bar(x=centres, y=counts, width=np.diff(edges) * 0.95, marker_color=colours,
                           hovertemplate="|d| ≈ %{x:.2f}: %{y} values<extra></extra>"))
    fig.update_xaxes(title="|tanh(ω·ĝ)| (1 = saturated, as sign)", range=[0, 1])
    fig.update_yaxes(title="number of values", type="log")
    fig.update_layout(height=330, margin=dict(l=70, r=10, t=10, b=50), font=FONT, showlegend=False,
                      plot_bgcolor="white")
    return fig


def prop1_figure(omegas: np.ndarray, ratios: np.ndarray, omega: float, ratio: float, linear: float):
    """‖δ_tanh‖₂ / ‖δ_FGSM‖₂ against ω (log axis): the linear-regime value ‖g‖₁/(√n‖g‖₂) at small ω,
    1 (FGSM) as ω → ∞; the chosen ω marked."""
    go = _go()
    fig = go.Figure([
        go.Scatter(x=omegas, y=ratios, mode="lines", line=dict(color=TANH_RED, width=3), name="tanh, gain-matched"),
        go.Scatter(x=[omega], y=[ratio], mode="markers", marker=dict(size=13, color=TANH_RED),
                   name=f"ω = {omega:g}: {ratio:.3f}"),
    ])
    fig.add_hline(y=1.0, line=dict(color=SIGN_GREY, dash="dash"), annotation_text="FGSM (ε·√n)",
                  annotation_position="top left")
    fig.add_hline(y=linear, line=dict(color=GRAD_BLUE, dash="dot"), annotation_text="linear regime (Prop. 1)",
                  annotation_position="bottom right")
    fig.update_xaxes(type="log", title="ω")
    fig.update_yaxes(title="‖δ_tanh‖₂ / ‖δ_FGSM‖₂", range=[0, 1.1])
    fig.update_layout(height=380, margin=dict(l=70, r=10, t=10, b=60), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


def replay_figure(loss: np.ndarray, p_true: np.ndarray, p_other: np.ndarray, flip: int | None, t: int,
                  true_name: str):
    """Loss (right axis) and p(true label), p(best other class) (left axis) per step t = 0 … T,
    the step shown (black line) and the step at which the label flipped (red dashed)."""
    go = _go()
    from plotly.subplots import make_subplots

    steps = np.arange(len(loss))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=steps, y=p_true, mode="lines+markers", name=f"p(true: {true_name[:24]})",
                             line=dict(color=GRAD_BLUE, width=3)), secondary_y=False)
    fig.add_trace(go.Scatter(x=steps, y=p_other, mode="lines+markers", name="p(best other class)",
                             line=dict(color=TANH_RED, width=3)), secondary_y=False)
    fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name="loss (cross-entropy)",
                             line=dict(color="#555", width=2, dash="dot")), secondary_y=True)
    fig.add_vline(x=t, line=dict(color="black", width=2))
    if flip is not None:
        fig.add_vline(x=flip, line=dict(color=TANH_RED, width=2, dash="dash"),
                      annotation_text=f"label flips at t = {flip}", annotation_position="top right")
    fig.update_xaxes(title="step t", dtick=1 if len(loss) <= 21 else None)
    fig.update_yaxes(title="probability", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title="loss", secondary_y=True, rangemode="tozero", showgrid=False)
    fig.update_layout(height=400, margin=dict(l=70, r=70, t=60, b=50), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0))
    return fig
