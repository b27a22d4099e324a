"""A writer process for the store's concurrency tests: commits random results to a few calls in a loop.

    python tests/store/writer.py STORE SEED ROUNDS CALLS
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.store import Store  # noqa: E402
from tests.store.helpers import run_result  # noqa: E402


def main() -> None:
    root, seed, rounds, n_calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    store = Store(root)
    for round_ in range(rounds):
        chosen = rng.sample([f"c{i}" for i in range(n_calls)], k=rng.randint(1, 3))
        store.commit([run_result(c, rng.randint(0, 4), tag=f"w{seed}r{round_}") for c in chosen])
    print("done", flush=True)


if __name__ == "__main__":
    main()
