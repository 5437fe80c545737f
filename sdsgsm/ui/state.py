"""Page state: session-state keys, spec defaults, query parameters and presets.

Every page keeps its parameter values in ``st.session_state`` under page-prefixed keys
(``ex_omega``, ``cmp_steps``, …) in *shown* units (ε and α in 1/255, 0 = auto), exactly as the
widgets generated from the spec (:mod:`sdsgsm.ui.widgets`) hold them. Nothing here is module-level
mutable state: each session has its own values, and a link's values never change another
session's widgets.
"""

from __future__ import annotations

import streamlit as st

from ..attacks import METHODS, AttackConfig
from ..params import PARAMS, build_config, get_preset, parse_query


def key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def init_state(prefix: str, method_key: str | None = "method") -> list[str]:
    """Once per session and page: spec defaults, then the link's valid query parameters.

    Returns one-line warnings for query values that were ignored (NaN, inf, out of range,
    not a choice). Later runs return [] and only keep the values alive (:func:`keep`).
    """
    if st.session_state.get(key(prefix, "init")):
        keep(prefix)
        return []
    for name, p in PARAMS.items():
        st.session_state.setdefault(key(prefix, name), p.shown(p.default))
    query = st.query_params.to_dict()
    values, warnings = parse_query(query)
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


def image_from_query(prefix: str, value: str) -> list[str]:
    """``?image=<gallery key>`` (e.g. ``imagenet/imagenet_00_243.jpg``) into the image picker's state
    (source, collection, image); a key that is not in the gallery is ignored with a one-line warning."""
    from ..data import gallery_item

    try:
        item = gallery_item(value.strip())
    except ValueError:
        return [f"Ignored image={value[:40]!r} from the link: not a gallery image."]
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
