"""Renderers: figures (matplotlib), Plotly charts and images, tables. They draw results; they never run a model."""
