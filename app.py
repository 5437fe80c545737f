"""SD-SGSM Explorer — entry point: `streamlit run app.py`. Routes (st.navigation) to the page files in views/."""

import streamlit as st

st.set_page_config(page_title="SD-SGSM Explorer", layout="wide")
st.navigation([
    st.Page("views/0_Home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/1_Explorer.py", title="Explorer", icon=":material/search:", url_path="Explorer"),
    st.Page("views/2_Compare.py", title="Compare", icon=":material/compare:", url_path="Compare"),
    st.Page("views/3_Benchmark.py", title="Benchmark", icon=":material/table_chart:", url_path="Benchmark"),
]).run()
