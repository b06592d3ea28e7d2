"""Orchestration: whole experiments made of many steps (`vicokd demo`, `vicokd reproduce`).

This layer sits beside the CLI, above :mod:`vicokd.training` (training runs) and
:mod:`vicokd.report` (tables and figures), and is the only place that imports both:
``cli → pipeline → training / report → inference → methods → models / losses → data``
(the full table is in tests/test_layers.py).

* :mod:`~vicokd.pipeline.steps` — numbered, timed, resumable steps; reuse / resume / start a run;
* :mod:`~vicokd.pipeline.grid` — the grid of runs behind the paper's tables (`reproduce`);
* :mod:`~vicokd.pipeline.demo` — the synthetic home end to end: a small Table-1 grid + figures.
"""
