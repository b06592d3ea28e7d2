"""Reports from run artefacts: the paper's tables, mAP curves, per-class bars, attention maps.

Everything here reads what runs wrote (summary.json, metrics.csv) or takes models and frames
handed in; nothing trains or loads checkpoints (that is :mod:`vicokd.training`, and the
orchestration in :mod:`vicokd.pipeline` ties both together). Every figure is a PNG with the
plotted data as a CSV of the same stem beside it.

Modules: :mod:`~vicokd.report.tables` (Table 1-4), :mod:`~vicokd.report.curves` (Fig. 3 curves,
grouped bars), :mod:`~vicokd.report.attention` (Fig. 4 maps), :mod:`~vicokd.report.timeline`
(``vicokd predict`` timelines).
"""
