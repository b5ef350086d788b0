//! Helpers shared by the integration tests: running the built `xbar` binary, writing data
//! files, running work on a pool of a given thread count.
// Each test crate includes this module and uses only some of the helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run `xbar` with `args` and wait for it.
pub fn xbar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xbar"))
        .args(args)
        .output()
        .expect("the xbar binary runs")
}

/// `xbar run FILE --out OUT --quiet` plus `extra` arguments.
pub fn xbar_run(file: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        file.to_str().expect("UTF-8 path"),
        "--out",
        out.to_str().expect("UTF-8 path"),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    xbar(&args)
}

/// Run `xbar` with `args` on a rayon pool of `threads` threads.
pub fn xbar_threads(args: &[&str], threads: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xbar"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("the xbar binary runs")
}

/// The standard output of a run, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The standard error of a run, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A text file's contents; panics naming the file.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Write `images` (n x rows x cols bytes) and `labels` as one split of an IDX data set:
/// `{split}-images-idx3-ubyte` and `{split}-labels-idx1-ubyte` (split `train` or `t10k`).
pub fn write_idx_split(
    dir: &Path,
    split: &str,
    images: &[u8],
    labels: &[u8],
    rows: u32,
    cols: u32,
) {
    let idx = |magic: u32, dims: &[u32], body: &[u8]| -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        dims.iter()
            .for_each(|d| out.extend_from_slice(&d.to_be_bytes()));
        out.extend_from_slice(body);
        out
    };
    let n = labels.len() as u32;
    let img = idx(0x0803, &[n, rows, cols], images);
    std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), img).unwrap();
    let lab = idx(0x0801, &[n], labels);
    std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), lab).unwrap();
}

/// Bytes of one CIFAR-10 binary record: the label byte, then 3 x 32 x 32 pixel bytes.
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Write a CIFAR-10 binary batch file: each record is its label byte followed by its
/// 3,072 pixel bytes (the red, green and blue 32 x 32 planes, row-major).
pub fn write_cifar_batch(path: &Path, records: &[(u8, Vec<u8>)]) {
    let mut bytes = Vec::with_capacity(records.len() * CIFAR_RECORD);
    for (label, pixels) in records {
        assert_eq!(pixels.len(), CIFAR_RECORD - 1, "a record has 3,072 pixels");
        bytes.push(*label);
        bytes.extend_from_slice(pixels);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Write a `.npy` file (format version 1.0, as `np.save` writes it) with the header's
/// `descr`, `shape` and `fortran_order`, and `body` as the raw data bytes; independent of
/// xbar's writer, so that any type, order or inconsistent body can be written.
pub fn write_npy_raw(path: &Path, descr: &str, shape: &[usize], fortran: bool, body: &[u8]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(body);
    std::fs::write(path, bytes).unwrap();
}

/// Pixels per CIFAR-10 colour plane.
pub const PLANE: usize = 32 * 32;
/// The CIFAR-10 training files, in order.
pub const CIFAR_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// Pixel `i` of channel `c` of the CIFAR test image number `k` (distinct per record and
/// channel, so that a misplaced plane or record shows).
pub fn cifar_pixel(k: usize, c: usize, i: usize) -> u8 {
    ((k * 7 + c * 85 + i) % 256) as u8
}

/// Record `k`: label `k % 10`, pixels [`cifar_pixel`].
pub fn cifar_record(k: usize) -> (u8, Vec<u8>) {
    let pixels = (0..3)
        .flat_map(|c| (0..PLANE).map(move |i| cifar_pixel(k, c, i)))
        .collect();
    ((k % 10) as u8, pixels)
}

/// A CIFAR-10 directory whose training batch `b` holds `b + 1` records and whose test
/// batch holds 2; records are numbered through the training files, then the test file.
pub fn write_cifar_dir(dir: &Path) {
    let mut k = 0;
    for (b, name) in CIFAR_TRAIN.iter().enumerate() {
        let records: Vec<_> = (k..k + b + 1).map(cifar_record).collect();
        k += b + 1;
        write_cifar_batch(&dir.join(name), &records);
    }
    write_cifar_batch(
        &dir.join("test_batch.bin"),
        &[cifar_record(k), cifar_record(k + 1)],
    );
}

/// The seven NeuroSim V3.0 benchmark synapses among the built-in presets.
pub const NEUROSIM_PRESETS: [&str; 7] = [
    "neurosim_agasi",
    "neurosim_taox_hfox",
    "neurosim_pcmo",
    "neurosim_alox_hfo2",
    "neurosim_gst",
    "neurosim_epiram",
    "neurosim_hzo_fefet",
];

/// The MTJ switching probability of a current pulse written out from the published
/// formulas (not the model's functions): thermal P_th = 1 - exp(-t/tau),
/// tau = tau0 exp(Delta (1 - I/Ic0)^b) (Koch et al., PRL 2004), precessional
/// P_prec = exp(-(pi^2 Delta/4) exp(-2 (I/Ic0 - 1) t/tau_D)) above Ic0 (Sun, Proc. SPIE
/// 2004), combined as independent channels.
pub fn mtj_switching_probability(
    m: &xbar::device::mram::Mram,
    current_a: f64,
    width_s: f64,
) -> f64 {
    use std::f64::consts::PI;
    let p = &m.params;
    let x = current_a / p.ic0_a;
    let barrier = p.delta * (1.0 - x).max(0.0).powf(p.barrier_exponent);
    let p_th = 1.0 - (-width_s / (p.tau0_s * barrier.exp())).exp();
    let p_prec = if x > 1.0 {
        (-(PI * PI * p.delta / 4.0) * (-2.0 * (x - 1.0) * width_s / p.tau_d_s).exp()).exp()
    } else {
        0.0
    };
    1.0 - (1.0 - p_th) * (1.0 - p_prec)
}

/// `f` run on a fresh rayon pool of `threads` threads (for the 1-versus-2-threads checks of
/// bit-identical results).
pub fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}
