"""The report: per-checkpoint and best-summary tables, charts and one HTML page, from a results tree.

``collect`` reads the tree (the uploader's metrics reader and epoch rule), ``summary`` ranks and
compares (the uploader's ranking), ``tables`` writes the CSVs, ``charts`` draws the PNGs
(matplotlib, imported only there), ``page`` writes ``index.html``, ``build`` ties them together.
No W&B access: it runs wherever the results tree is.
"""
