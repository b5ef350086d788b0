"""Python overhead of a tile read, against the Rust benchmark `cargo bench --bench crossbar
-- mvm_512` (benches/crossbar.rs): the same noisy 512 x 512 PCM tile (8-bit DAC and ADC with
a column-max range of 0.25, read noise at every read, drift compensation, open-loop
programming, seed 7, read one day after programming) on a batch of 256 vectors and on one
vector (batch: 1 and 2 threads). Prints the median and the best time per read.

Run: ``python python/benches/read_overhead.py`` (after ``pip install ./python``), in the same
hour as the Rust benchmark; docs/BENCHMARKS.md records both.
"""

import time

import numpy as np

import xbar

N, BATCH, ONE_DAY_S = 512, 256, 86_400.0
CONFIG = dict(
    max_rows=N,
    max_cols=N,
    periphery={
        "dac_bits": 8,
        "adc": {"bits": 8, "range": {"mode": "column_max", "fraction": 0.25}},
        "read_noise": True,
        "drift_compensation": True,
    },
    programming={"method": "open_loop"},
)


def timed(f, repeats):
    f()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def main():
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (N, N))
    x = rng.uniform(-1, 1, (BATCH, N)).astype(np.float32)
    x1 = x[0].copy()
    for threads in (1, 2):
        tile = xbar.Tile(w, device="pcm_gst", seed=7, threads=threads, **CONFIG)
        tile.program()
        tile.set_read_time(ONE_DAY_S)
        med, best = timed(lambda: tile.read(x), 200)
        print(f"batch {BATCH}, {threads} thread(s): median {med * 1e3:.3f} ms, best {best * 1e3:.3f} ms")
    # One vector runs on the calling thread, as in the Rust benchmark (a tile without its
    # own pool: no hand-off to worker threads).
    tile = xbar.Tile(w, device="pcm_gst", seed=7, **CONFIG)
    tile.program()
    tile.set_read_time(ONE_DAY_S)
    med, best = timed(lambda: tile.read(x1), 5000)
    print(f"single vector: median {med * 1e6:.1f} us, best {best * 1e6:.1f} us")


if __name__ == "__main__":
    main()
