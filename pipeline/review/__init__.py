"""The QA review web app: a queue of flagged calls, the call page with audio and verdicts, rule quality.

Modules: :mod:`~pipeline.review.verdicts` (the verdict database and its read
API), :mod:`~pipeline.review.users` (accounts), :mod:`~pipeline.review.calls`
(one call's page data from the store), :mod:`~pipeline.review.queue` (the
queue index), :mod:`~pipeline.review.audio` (WAV rendering and range
requests), :mod:`~pipeline.review.app` (the FastAPI application).
"""
