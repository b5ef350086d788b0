//! Worker thread pools: the one place that turns a requested thread count into a rayon
//! pool, shared by the `xbar` command and the Python package. Results never depend on the
//! count (every random stream is keyed by what it draws, not by the thread drawing it);
//! more threads than the machine's cores only add overhead, so a larger request is capped
//! there, with a warning.

use anyhow::{Context, Result, bail};

/// The machine's cores (1 if they cannot be counted).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A pool of `threads` worker threads (capped at the cores, with a warning on stderr).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    if threads == 0 {
        bail!("threads = 0: use at least one thread");
    }
    let cores = cores();
    if threads > cores {
        eprintln!(
            "warning: {threads} threads is more than the {cores} cores of this machine; using {cores}"
        );
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.min(cores))
        .build()
        .context("cannot start the worker threads")
}

/// Run `f` on a worker of a pool of `threads` threads, or, when `None`, of rayon's default
/// size (`RAYON_NUM_THREADS`, else all cores). `f` itself runs on a worker, so every
/// parallel loop inside it starts there: called from another thread, each loop would be
/// handed over to the pool and waited for, a thread wake-up per loop (a quarter of the time
/// of a LeNet-5 training epoch on one thread, whose every layer runs a few parallel loops
/// per mini-batch).
pub fn with_threads<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let pool = match threads {
        None => rayon::ThreadPoolBuilder::new()
            .build()
            .context("cannot start the worker threads")?,
        Some(n) => pool(n)?,
    };
    pool.install(f)
}
