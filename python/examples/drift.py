"""The README's quick start from Python: train the 784-256-128-10 MLP on the embedded
MNIST-10k digits, program it on PCM crossbars and read its test accuracy from 1 second to
1 year after programming, with and without global drift compensation.

It runs experiments/quickstart.toml through ``xbar.run`` — the same engine, seed and files
as ``cargo run --release -- run experiments/quickstart.toml`` — so the numbers it prints are
the command's, bit for bit. Results go to results/quickstart-python/ (kept, and resumed if
run again); pass another directory as the first argument to change that.

Run from the repository root: ``python python/examples/drift.py``.
"""

import sys
from pathlib import Path

import numpy as np

import xbar

REPO = Path(__file__).resolve().parents[2]
LABELS = {1.0: "1 s", 3600.0: "1 hour", 86400.0: "1 day", 2.592e6: "30 days", 3.1536e7: "1 year"}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/quickstart-python")
    result = xbar.run(REPO / "experiments" / "quickstart.toml", out=out, progress=True)
    s = result["summary"]
    times = s["hardware.t_inference_s"]
    compensated = s["hardware.tile.periphery.drift_compensation"]
    print(f"\nMLP on PCM crossbars, test accuracy (mean of {int(s['n'][0])} repeats):")
    print(f"{'time since programming':>24} {'no compensation':>16} {'compensated':>12}")
    for t in np.unique(times):
        row = [s["accuracy_mean"][(times == t) & (compensated == c)][0] for c in ("false", "true")]
        print(f"{LABELS.get(t, f'{t:g} s'):>24} {100 * row[0]:>15.2f}% {100 * row[1]:>11.2f}%")
    print(f"\nfiles in {result['dir']}: {', '.join(Path(f).name for f in result['files'])}")


if __name__ == "__main__":
    main()
