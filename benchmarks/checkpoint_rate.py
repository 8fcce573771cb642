"""Results/s when every result carries a dict checkpoint (pickled, signed, written per report).

    python benchmarks/checkpoint_rate.py                 # 2 trials x 300 checkpointed reports
    python benchmarks/checkpoint_rate.py --kib 1024      # 1 MiB checkpoints

benchmarks/overhead.py reports no checkpoint; this is the path that signing (store/signing.py)
adds work to. Run it against two checkouts in the same minutes (PYTHONPATH=...) to compare;
figures are medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import asynctune


def checkpointing(config):
    payload = bytes(config["kib"] * 1024)
    for i in range(config["n"]):
        asynctune.report(score=i, checkpoint={"i": i, "weights": payload})


def rate(reports: int, kib: int, storage: str) -> float:
    start = time.perf_counter()
    asynctune.run(checkpointing, config={"n": reports, "kib": kib}, num_samples=2, max_concurrent_trials=2,
                  storage_path=storage, verbose=0, tensorboard=False)
    return 2 * reports / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--kib", type=int, default=16, help="checkpoint size in KiB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage:
        rates = [rate(args.reports, args.kib, storage) for _ in range(args.repeats)]
    print(f"{asynctune.__file__}: checkpointed results/s median {statistics.median(rates):.0f} "
          f"(runs: {', '.join(f'{r:.0f}' for r in rates)}; {args.kib} KiB checkpoints)")


if __name__ == "__main__":
    main()
