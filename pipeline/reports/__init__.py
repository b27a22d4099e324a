"""QA reports, sampling plans for human review, and reviewer agreement.

Everything here sits on top of the store (:class:`pipeline.store.Store`) and
the review database (:mod:`pipeline.review.verdicts`); it reads them, never
writes them, except sampling queues under ``STORE/_review/queues/``.

- :mod:`~pipeline.reports.periods`: day / week / month periods;
- :mod:`~pipeline.reports.inputs`: the store's current rows as Arrow tables;
- :mod:`~pipeline.reports.tables`: the report's tables (DuckDB over Arrow);
- :mod:`~pipeline.reports.plots` and :mod:`~pipeline.reports.fonts`: charts
  with Chinese labels;
- :mod:`~pipeline.reports.render`: self-contained HTML, CSV, Parquet, PDF;
- :mod:`~pipeline.reports.sampling`: review queues (random, stratified, targeted);
- :mod:`~pipeline.reports.agreement`: Cohen's κ, Krippendorff's α, rule precision.
"""
