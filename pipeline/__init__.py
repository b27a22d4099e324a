"""callqa: speech analytics for contact-centre quality inspection (质检).

Stages hand frozen dataclasses forward (see :mod:`pipeline.records`); only
:mod:`pipeline.batch` knows their order.
"""

__version__ = "0.1.0"
