"""The output store (see :mod:`pipeline.store.ledger`)."""

from pipeline.store.ledger import *  # noqa: F403
from pipeline.store.ledger import CALL_KEY, METADATA_COLUMNS, SCHEMAS, Store  # noqa: F401
