"""Fakes for the engine tests (importable by worker processes)."""

from __future__ import annotations

import os
from typing import Any

from tests.store.helpers import EchoTranscriber


class CrashOnFiveSecondCalls(EchoTranscriber):
    """Transcribes like :class:`EchoTranscriber`, but its process dies on a call of 4.9-5.1 s (news_5s.wav)."""

    def transcribe(self, channels: Any) -> list[Any]:
        if any(4.9 * 16_000 <= len(channel.samples) <= 5.1 * 16_000 for channel in channels):
            os._exit(3)  # a native crash, as far as the engine can tell
        return super().transcribe(channels)
