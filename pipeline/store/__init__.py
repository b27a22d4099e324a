"""The output store: Delta Lake tables any engine can read, safe with many writers.

- :mod:`pipeline.store.tables`: the tables and their columns;
- :mod:`pipeline.store.delta`: :class:`Store`, transactions and current-row reads;
- :mod:`pipeline.store.location`: where a store lives (a directory, or ``s3://bucket/prefix``);
- :mod:`pipeline.store.rows`: records to rows and back;
- :mod:`pipeline.store.state`: run records and the store's scoring state;
- :mod:`pipeline.store.maintenance`: ``callqa compact`` and ``callqa store upgrade``.

See ``docs/store.md`` for the layout, the guarantees and reading it without callqa.
"""

from pipeline.store.delta import CallResult, CommitReport, Store, is_store, new_result_id
from pipeline.store.tables import METADATA_COLUMNS, TABLES, table

__all__ = ["METADATA_COLUMNS", "TABLES", "CallResult", "CommitReport", "Store", "is_store", "new_result_id", "table"]
