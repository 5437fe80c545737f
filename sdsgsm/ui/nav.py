"""The app's one navigation menu: a `st.page_link` per page at the top of the sidebar.

The pages live in the classic `pages/` folder next to `app.py` (the landing page), both in
sdsgsm/ui/app, so Streamlit discovers
them and serves `/Explorer`, `/Compare` and `/Benchmark` (file name minus its number prefix) without
`st.navigation`. Its automatic menu is hidden (`client.showSidebarNavigation = false` in
.streamlit/config.toml) because it would label the landing page "app"; this module draws the menu
instead, with our labels and icons. `app.py` and every page call `sidebar()` right after
`st.set_page_config`. Material icons only: no emoji font on a bare Debian Chromium.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import NamedTuple
from urllib.parse import urlsplit

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError


class NavPage(NamedTuple):
    path: str  # relative to app.py
    label: str
    icon: str
    blurb: str  # one line for the landing page's links


PAGES: tuple[NavPage, ...] = (
    NavPage("app.py", "Home", ":material/home:", "what SD-SGSM is, device and model"),
    NavPage("pages/1_Explorer.py", "Explorer", ":material/search:", "one image, every stage live"),
    NavPage("pages/4_Learn.py", "Learn", ":material/school:", "the method step by step, for a class"),
    NavPage("pages/2_Compare.py", "Compare", ":material/compare:", "many methods side by side"),
    NavPage("pages/3_Benchmark.py", "Benchmark", ":material/table_chart:", "paper Tables 1 and 2, black-box queries"),
    NavPage("pages/5_Figures.py", "Figures", ":material/image:", "paper Fig. 3–6 as PDF, PNG, SVG"),
    NavPage("pages/6_Sweeps.py", "Sweeps", ":material/show_chart:", "a metric against ε, ω, m, T, α"),
    NavPage("pages/7_Defences.py", "Defences", ":material/security:",
            "input transforms, detection, randomisation and EOT"),
    NavPage("pages/8_Robust_training.py", "Robust training", ":material/shield:",
            "distillation, adversarial training, certificates"),
    NavPage("pages/9_Transfer.py", "Transfer", ":material/swap_horiz:", "craft on one model, fool another"),
)


def url_name(path: str) -> str:
    """The URL path Streamlit serves a page file under: '' for the landing page, else the file name
    without its number prefix and extension ('pages/8_Robust_training.py' -> 'Robust_training')."""
    if path == PAGES[0].path:
        return ""
    return re.sub(r"^\d+_", "", PurePosixPath(path).stem)


def unknown_page(url: str | None, base_path: str = "") -> str | None:
    """The page name a browser asked for when it is none of :data:`PAGES` (Streamlit then runs the
    landing page instead), else None. url: the browser's address (``st.context.url``); base_path:
    the server's ``server.baseUrlPath``."""
    if not url:
        return None
    path = urlsplit(url).path.strip("/")
    base = base_path.strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base):].strip("/")
    if not path or path in {url_name(p.path) for p in PAGES}:
        return None
    return path


def sidebar() -> None:
    """Draw the page links at the top of the sidebar, the current page highlighted.

    When a page file is run on its own (`streamlit run sdsgsm/ui/app/pages/1_Explorer.py`, or
    `AppTest.from_file` on a page) there is no app to navigate, Streamlit knows no other page,
    and the menu is left out instead of failing the page. An address that names no page (Streamlit
    runs the landing page for it) gets one warning line (:func:`unknown_page`).
    """
    home, *others = PAGES
    try:
        st.sidebar.page_link(home.path, label=home.label, icon=home.icon)
    except StreamlitPageNotFoundError:  # a page run on its own: app.py is not part of this app
        return
    for page in others:  # a missing page here is a real error and is not hidden
        st.sidebar.page_link(page.path, label=page.label, icon=page.icon)
    st.sidebar.divider()
    asked = unknown_page(st.context.url, st.get_option("server.baseUrlPath") or "")
    if asked:
        st.warning(f"There is no page {asked[:40]!r}; this is the Home page. Pages: "
                   + ", ".join(url_name(p.path) for p in others) + ".")
