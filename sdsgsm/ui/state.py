"""Page state: session-state keys, spec defaults, query parameters and presets.

Every page keeps its parameter values in ``st.session_state`` under page-prefixed keys
(``ex_omega``, ``cmp_steps``, …) in *shown* units (ε and α in 1/255, 0 = auto), exactly as the
widgets generated from the spec (:mod:`sdsgsm.ui.widgets`) hold them. Nothing here is module-level
mutable state: each session has its own values, and a link's values never change another
session's widgets.
"""

from __future__ import annotations

import streamlit as st

from sdsgsm.attacks import METHODS, AttackConfig, build_config
from sdsgsm.params import PARAMS, get_preset, parse_query


def key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def init_state(prefix: str, method_key: str | None = "method") -> list[str]:
    """Once per session and page: spec defaults, then the link's valid query parameters.

    Returns one-line warnings for query values that were ignored (NaN, inf, out of the spec's range or
    above the app's limits, not a choice): every such value is ignored, never clamped, and the page shows.
    Later runs return [] and only keep the values alive (:func:`keep`).
    """
    if st.session_state.get(key(prefix, "init")):
        keep(prefix)
        return []
    for name, p in PARAMS.items():
        st.session_state.setdefault(key(prefix, name), p.shown(p.default))
    query = st.query_params.to_dict()
    values, warnings = parse_query(query)
    values, more = within_app_limits(values)
    warnings += more
    for name, value in values.items():
        st.session_state[key(prefix, name)] = PARAMS[name].shown(value)
    if method_key and "method" in query:
        if query["method"] in METHODS:
            st.session_state[key(prefix, method_key)] = query["method"]
        else:
            warnings.append(f"Ignored method={query['method'][:40]!r} from the link: not a registered method.")
    if "image" in query:
        warnings += image_from_query(prefix, query["image"])
    st.session_state[key(prefix, "init")] = True
    return warnings


def within_app_limits(values: dict) -> tuple[dict, list[str]]:
    """A link's parsed values without those above the shared server's per-request limits
    (:mod:`sdsgsm.ui.limits`: ``steps=999`` would hide the page behind the limit's error), each
    ignored with one warning line, like a value outside the spec's range (``omega=-1``): the page
    keeps its default and stays usable."""
    from sdsgsm.ui.limits import APP_MAX_SF_ITER, APP_MAX_STEPS

    caps = {"steps": APP_MAX_STEPS, "sf_max_iter": APP_MAX_SF_ITER}
    kept, warnings = {}, []
    for name, value in values.items():
        if name in caps and value is not None and value > caps[name]:
            warnings.append(f"Ignored {name}={PARAMS[name].shown(value)} from the link: this app runs at most "
                            f"{caps[name]} (the command line has no such limit).")
        else:
            kept[name] = value
    return kept, warnings


def image_from_query(prefix: str, value: str) -> list[str]:
    """``?image=<gallery key>`` (e.g. ``imagenet/imagenet_00_243.jpg``) into the image picker's state
    (source, collection, image); a key that is not in the gallery is ignored with a one-line warning."""
    from sdsgsm.data import gallery_item

    try:
        item = gallery_item(value.strip())
    except ValueError:
        return [f"Ignored image={value[:40]!r} from the link: not a gallery image (an upload must be uploaded "
                "again)."]
    for name, v in (("source", "Gallery"), ("collection", item.dataset), ("image", item.key)):
        st.session_state[key(prefix, name)] = v
    return []


def keep(prefix: str) -> None:
    """Keep every parameter's value across runs in which its widget is not drawn.

    Streamlit forgets the state of a widget that a run does not render (e.g. k when the region
    is not top-k); writing the value back before any widget is drawn keeps it.
    """
    for name, p in PARAMS.items():
        k = key(prefix, name)
        st.session_state[k] = st.session_state[k] if k in st.session_state else p.shown(p.default)


def values(prefix: str) -> dict:
    """Native values of every spec parameter from the page's state."""
    return {name: p.native(st.session_state[key(prefix, name)]) for name, p in PARAMS.items()}


def config(prefix: str) -> AttackConfig:
    """AttackConfig from the page's state. Raises ValueError (one line) for invalid combinations."""
    return build_config(values(prefix))


def apply_preset(prefix: str, name: str | None) -> None:
    """on_click callback: a preset's values (or, for None, every spec default) into the page's state."""
    if name is None:
        pairs = [(n, p.default) for n, p in PARAMS.items()]
    else:
        pairs = list(get_preset(name).values)
    for pname, value in pairs:
        st.session_state[key(prefix, pname)] = PARAMS[pname].shown(value)


# ----------------------------------------------------------------------------- shareable links
LABEL_MODES = {"true": "true label (gallery)", "pred": "clean prediction", "index": "choose…"}


def first_query(prefix: str) -> dict[str, str]:
    """The link's query parameters on the page's first run in this session, else {} (read once)."""
    k = key(prefix, "links_read")
    if st.session_state.get(k):
        return {}
    st.session_state[k] = True
    return st.query_params.to_dict()


def apply_run_query(prefix: str, query: dict[str, str]) -> list[str]:
    """A link's (or a result.json's) ``image``, ``model`` and ``label`` into the page's picker state.

    image: a gallery key (collection and image pickers); model: a registered model name; label: a
    class index or ``pred``. Returns one-line warnings for values that were ignored.
    """
    from sdsgsm.ui.cache import model_options

    warnings = image_from_query(prefix, query["image"]) if "image" in query else []
    if "model" in query:
        if query["model"] in [m["name"] for m in model_options() if m["available"]]:
            st.session_state[key(prefix, "model")] = query["model"]
        else:
            warnings.append(f"Ignored model={query['model'][:40]!r} from the link: not available here.")
    label = query.get("label")
    if label == "pred":
        st.session_state[key(prefix, "label_mode")] = LABEL_MODES["pred"]
    elif label is not None and label.isdigit():
        st.session_state.update({key(prefix, "label_mode"): LABEL_MODES["index"], key(prefix, "label"): int(label)})
    elif label is not None:
        warnings.append(f"Ignored label={label[:20]!r} from the link: give a class index or 'pred'.")
    return warnings


def load_saved_run(prefix: str, upload_key: str) -> None:
    """on_change callback of a result.json uploader: the saved run's image, model, method, label and
    every parameter into the page's state (before its widgets are drawn); a bad file leaves a one-line
    message in ``<prefix>_saved_message``."""
    from sdsgsm.share import load_result, run_query

    up = st.session_state.get(upload_key)
    if up is None:
        return
    try:
        run = load_result(up.getvalue())
    except ValueError as exc:
        st.session_state[key(prefix, "saved_message")] = ("error", str(exc))
        return
    query = run_query(run)
    values, warnings = parse_query(query)
    for name, value in values.items():
        st.session_state[key(prefix, name)] = PARAMS[name].shown(value)
    st.session_state[key(prefix, "method")] = run.method
    warnings += apply_run_query(prefix, query)
    text = f"Loaded {run.method} on {run.image} from result.json." + (" " + " ".join(warnings) if warnings else "")
    st.session_state[key(prefix, "saved_message")] = ("warning" if warnings else "success", text)


def link_query(prefix: str, extra: dict) -> dict[str, str]:
    """The page's state as query parameters: ``extra`` (image, model, method, …) then the spec
    parameters in shown units that differ from where a link starts (the spec defaults, or the named
    ``preset``'s numbers; :func:`sdsgsm.share.param_query`, :func:`sdsgsm.share.link_base`)."""
    from sdsgsm.share import link_base, param_query

    out = {k: str(v) for k, v in extra.items() if v is not None and v != ""}
    return {**out, **param_query(values(prefix), link_base(extra.get("preset")))}


def app_root() -> str:
    """The app's absolute address without a page ('http://host:8501' plus the server's base path):
    from the browser's address (``st.context.url``) when known, else ``http://localhost:<server.port>``."""
    from urllib.parse import urlsplit

    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = st.context.url
    if url:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
    else:
        origin = f"http://localhost:{st.get_option('server.port') or 8501}"
    return origin + (f"/{base}" if base else "")


def page_url(page: str, query: dict[str, str]) -> str:
    """The absolute link to page file ``page`` ('pages/1_Explorer.py', 'app.py') with ``query``: what a
    student can open from a projector or a chat (:func:`app_root`, :func:`sdsgsm.share.absolute_link`)."""
    from sdsgsm.share import absolute_link
    from sdsgsm.ui.nav import url_name

    return absolute_link(app_root(), url_name(page), query)


def unknown_link_keys(query: dict[str, str], known) -> list[str]:
    """One warning line for the link's query keys that this page does not read (``/Transfer?models=x``),
    instead of ignoring them silently; [] when every key is known. known: the page's own keys; the
    spec parameters and the defence parameters are always known."""
    from sdsgsm.params import DEFENCE_PARAMS

    bad = [k for k in query if k not in PARAMS and k not in DEFENCE_PARAMS and k not in set(known)]
    if not bad:
        return []
    shown = ", ".join(f"{k}={str(query[k])[:30]!r}" for k in bad[:3])
    return [f"Ignored {shown} from the link: this page reads " + ", ".join(sorted(set(known))) +
            " and the attack parameters."]


def _this_page() -> str:
    """The URL name of the running page ('Explorer'; '' for Home or when unknown), from its script file."""
    from pathlib import Path

    from sdsgsm.ui.nav import url_name

    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        path = Path(ctx.pages_manager.get_pages()[ctx.page_script_hash]["script_path"])
    except (AttributeError, KeyError, TypeError):
        return ""
    return url_name(f"pages/{path.name}") if path.parent.name == "pages" else ""


def share_link(prefix: str, extra: dict, box=None) -> str:
    """Keep the URL equal to the page's state and offer it in a 'Copy link' box (st.code has a copy
    button) and as a QR code. Returns the absolute link (the browser's address, else
    ``http://localhost:<port>``) with only the non-default values (:func:`link_query`); the link's keys
    that the page does not read are said in one warning line, once (:func:`unknown_link_keys`)."""
    from urllib.parse import urlencode

    from sdsgsm.share import qr_png

    checked = key(prefix, "link_keys_checked")
    if not st.session_state.get(checked):  # the link the page was opened with, once: its unknown keys
        st.session_state[checked] = True
        for warning in unknown_link_keys(st.query_params.to_dict(), [*extra, "method", "image", "label", "model"]):
            st.warning(warning)
    query = link_query(prefix, extra)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
    page = (st.context.url or "").split("?")[0] or app_root() + (f"/{_this_page()}" if _this_page() else "")
    link = page + (f"?{urlencode(query)}" if query else "")
    with (box or st.sidebar).expander("Share: copy link", icon=":material/link:"):
        st.code(link, language=None, wrap_lines=True)
        st.caption("The copy button sits at the code box's top right. The link holds the image, model, method "
                   "and every parameter that differs from its default; opened on any server it reproduces the "
                   "same numbers.")
        if st.toggle("QR code", key=key(prefix, "qr"), help="for a classroom: students scan it to open this page "
                     "with these settings"):
            png = qr_png(link)
            if png is None:
                st.caption("A QR code needs the segno package (pip install segno).")
            else:
                st.image(png, width=180, caption="Scan to open this page with these settings")
    return link


def open_page(prefix: str, method_key: str | None = None, link_keys: tuple[str, ...] = ("model",)) -> dict[str, str]:
    """The start of every page after ``nav.sidebar()``: :func:`init_state` (spec parameters, method and
    image from the link), then the link's ``link_keys`` (model, label) into the pickers, each ignored
    value said in one warning line. Returns the link's query parameters on the page's first run, else {}."""
    for warning in init_state(prefix, method_key):
        st.warning(warning)
    query = first_query(prefix)
    for warning in apply_run_query(prefix, {k: v for k, v in query.items() if k in link_keys}):
        st.warning(warning)
    return query


def bench_query(prefix: str, query: dict[str, str], presets, data_choices, methods) -> list[str]:
    """The Benchmark page's link (``data``, ``preset``, ``methods``, ``limit``, ``batch``) into its state,
    on the first run only (``query`` from :func:`open_page`). A named preset's numbers are set first and the
    link's own parameters then win (a link with parameters but no preset: over the first preset, the page's
    default; as after editing a preset's numbers in the sidebar, the menu keeps the preset's name). Returns one-line
    warnings for ignored values."""
    if not query:
        return []
    warnings = []
    preset = query.get("preset")
    if preset is not None and preset not in (*presets, "custom"):
        warnings.append(f"Ignored preset={preset[:40]!r} from the link: choose one of {', '.join(presets)}, custom.")
        preset = None
    values, _ = parse_query(query)  # open_page already warned about the bad ones
    if preset is None and values:
        preset = next(iter(presets))
    if preset is not None:
        if preset in presets:
            apply_preset(prefix, preset)
        for name, value in values.items():  # the link's own numbers over the preset's
            st.session_state[key(prefix, name)] = PARAMS[name].shown(value)
        st.session_state.update({key(prefix, "preset"): preset, key(prefix, "preset_applied"): True})
    if "data" in query:
        if query["data"] in data_choices:
            st.session_state[key(prefix, "data")] = query["data"]
        else:
            warnings.append(f"Ignored data={query['data'][:40]!r} from the link: a link may name "
                            f"{' or '.join(data_choices)} (choose folders in the sidebar).")
    if "methods" in query:
        chosen = [m for m in query["methods"].split(",") if m in methods]
        bad = [m for m in query["methods"].split(",") if m not in methods]
        st.session_state[key(prefix, f"methods_{preset or next(iter(presets))}")] = chosen
        if bad:
            warnings.append(f"Ignored methods {', '.join(b[:20] for b in bad[:3])!s} from the link: not registered.")
    for name, hi in (("limit", 100000), ("batch", 256)):
        raw = query.get(name)
        if raw is not None:
            if raw.isdigit() and int(raw) <= hi and (name == "limit" or int(raw) >= 1):
                st.session_state[key(prefix, name)] = int(raw)
            else:
                warnings.append(f"Ignored {name}={raw[:20]!r} from the link: give a whole number up to {hi}.")
    return warnings


def run_stop(prefix: str, request: tuple, run_label: str, stop_help: str, idle_text: str) -> bool:
    """The Run / Stop buttons of a long computation (Sweeps, Defences, Transfer) for the hashable ``request``
    (everything the run depends on). Before Run is pressed for this very request: ``idle_text`` as an info
    box and the script stops. Returns True when Stop was pressed (the page shows what is finished)."""
    run_col, stop_col = st.columns([1, 6])
    if run_col.button(run_label, type="primary", key=key(prefix, "run")):
        st.session_state.update({key(prefix, "request"): request, key(prefix, "stopped"): False})
    if stop_col.button("Stop", key=key(prefix, "stop"), help=stop_help):
        st.session_state.update({key(prefix, "request"): request, key(prefix, "stopped"): True})
    if st.session_state.get(key(prefix, "request")) != request:
        st.info(idle_text)
        st.stop()
    return bool(st.session_state.get(key(prefix, "stopped")))


def run_guarded(prefix: str, request: tuple, idle_text: str, what: str, compute):
    """A long run behind :func:`run_stop`: Run / Stop, a progress bar while ``compute(progress)`` works
    (``progress(text, done, total)``), and a one-line error naming ``what`` instead of a traceback.
    Returns compute's result, or None when stopped or failed (the page has said why)."""
    if run_stop(prefix, request, "Run", "End the run now (its partial rows are not kept)", idle_text):
        st.warning("Stopped: press Run to start again.")
        return None
    bar = st.progress(0.0, text="Starting …")
    try:
        return compute(lambda text, done, total: bar.progress(done / max(total, 1), text=f"{text} ({done}/{total})"))
    except (ValueError, RuntimeError) as exc:
        st.error(f"The {what} run could not run: {str(exc).splitlines()[0]}")
        return None
    finally:
        bar.empty()
