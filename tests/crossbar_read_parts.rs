//! A tile read handed over in parts (as a convolution streams its im2col patches) and a
//! read with per-vector input scales: both must give exactly the numbers of the plain
//! read of the whole batch — outputs, noise and energy ledger bit for bit.

use rand::RngExt;
use xbar::crossbar::{AdcRange, Direction, TileConfig, TiledMatrix};
use xbar::device::{AnyDevice, preset};
use xbar::synapses::{AnalogSynapses, InputScaling, SynapticLayer};

/// Inputs per matrix: more than one tile of `max_rows`, so partial sums are added.
const N_IN: usize = 40;
const N_OUT: usize = 7;
/// Vectors per batch: several read chunks and a partial one.
const BATCH: usize = 700;

fn pcm() -> AnyDevice {
    preset::load("pcm_gst", &toml::Table::new()).unwrap()
}

/// A noisy PCM matrix over 2 x 2 tiles, 8-bit DAC and ADC; the same seed gives the same
/// devices, so two of them read alike.
fn matrix() -> TiledMatrix<AnyDevice> {
    let mut config = TileConfig {
        max_rows: 32,
        max_cols: 4,
        ..TileConfig::default()
    };
    config.periphery.dac_bits = Some(8);
    config.periphery.adc.bits = Some(8);
    config.periphery.adc.range = AdcRange::ColumnMax { fraction: 0.5 };
    let mut m = TiledMatrix::new(pcm(), N_IN, N_OUT, config, 17).unwrap();
    let mut rng = xbar::rng::stream(5, &[1]);
    let w: Vec<f64> = (0..N_IN * N_OUT)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    m.program(&w).unwrap();
    m.set_read_time(100.0).unwrap();
    m
}

fn inputs(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = xbar::rng::stream(seed, &[2]);
    (0..len).map(|_| rng.random_range(-3.0..3.0)).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_read_in_parts_equals_the_read_of_the_whole_batch() {
    let x = inputs(1, BATCH * N_IN);
    let (mut whole, mut parts) = (matrix(), matrix());
    let mut y_whole = vec![0f32; BATCH * N_OUT];
    whole
        .read_batch(Direction::Forward, &x, BATCH, &mut y_whole)
        .unwrap();

    let mut y_parts = vec![0f32; BATCH * N_OUT];
    let mut read = parts.begin_read(Direction::Forward);
    for (first, last) in [(0, 256), (256, 768 - 256), (512, BATCH)] {
        let count = last.min(BATCH) - first;
        let (x_part, y_part) = (
            &x[first * N_IN..][..count * N_IN],
            &mut y_parts[first * N_OUT..][..count * N_OUT],
        );
        parts
            .read_part(&mut read, (x_part, &[]), count, y_part)
            .unwrap();
    }
    parts.end_read(read);
    assert_eq!(bits(&y_parts), bits(&y_whole));
    assert_eq!(parts.total_energy(), whole.total_energy());

    // The next read has fresh noise in both, and still the same numbers.
    let (mut a, mut b) = (vec![0f32; N_OUT], vec![0f32; N_OUT]);
    whole
        .read_batch(Direction::Forward, &x[..N_IN], 1, &mut a)
        .unwrap();
    parts
        .read_batch(Direction::Forward, &x[..N_IN], 1, &mut b)
        .unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_ne!(
        bits(&a),
        bits(&y_whole[..N_OUT]),
        "a new read has new noise"
    );
}

#[test]
fn a_part_after_a_part_that_ends_inside_a_chunk_is_refused() {
    let x = inputs(2, 300 * N_IN);
    let mut m = matrix();
    let mut y = vec![0f32; 300 * N_OUT];
    let mut read = m.begin_read(Direction::Forward);
    m.read_part(
        &mut read,
        (&x[..100 * N_IN], &[]),
        100,
        &mut y[..100 * N_OUT],
    )
    .unwrap();
    let err = m
        .read_part(
            &mut read,
            (&x[100 * N_IN..], &[]),
            200,
            &mut y[100 * N_OUT..],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("multiple of 256") && err.contains("100"),
        "{err}"
    );
}

#[test]
fn a_scaled_read_equals_the_read_of_the_scaled_inputs() {
    let scales: Vec<f32> = (0..BATCH).map(|b| 0.5 + (b % 7) as f32 * 0.37).collect();
    for direction in [Direction::Forward, Direction::Transposed] {
        let (n_x, n_y) = match direction {
            Direction::Forward => (N_IN, N_OUT),
            Direction::Transposed => (N_OUT, N_IN),
        };
        let x = inputs(3, BATCH * n_x);
        let pre: Vec<f32> = x
            .chunks(n_x)
            .zip(&scales)
            .flat_map(|(v, &s)| v.iter().map(move |a| a / s))
            .collect();
        let (mut a, mut b) = (matrix(), matrix());
        let (mut y_a, mut y_b) = (vec![0f32; BATCH * n_y], vec![0f32; BATCH * n_y]);
        let mut read = a.begin_read(direction);
        a.read_part(&mut read, (&x, &scales), BATCH, &mut y_a)
            .unwrap();
        a.end_read(read);
        b.read_batch(direction, &pre, BATCH, &mut y_b).unwrap();
        assert_eq!(bits(&y_a), bits(&y_b), "{direction:?}");
        assert_eq!(a.total_energy(), b.total_energy(), "{direction:?}");
    }
}

/// `forward_generated` of analog synapses (the inputs generated a part at a time) equals
/// `forward` of the whole batch, with abs-max input scaling.
#[test]
fn generated_inputs_read_like_the_whole_batch() {
    const BATCH: usize = 3500;
    let x = inputs(4, BATCH * N_IN);
    let mut whole = AnalogSynapses::new(matrix(), InputScaling::AbsMax);
    let mut generated = AnalogSynapses::new(matrix(), InputScaling::AbsMax);
    let mut y_whole = vec![0f32; BATCH * N_OUT];
    whole.forward(&x, BATCH, &mut y_whole).unwrap();
    let mut y_gen = vec![0f32; BATCH * N_OUT];
    let asked = std::sync::Mutex::new(Vec::new());
    let source = |_block: usize, rows: std::ops::Range<usize>, out: &mut [f32]| {
        asked.lock().unwrap().push(rows.clone());
        out.copy_from_slice(&x[rows.start * N_IN..rows.end * N_IN]);
    };
    let mut buffer = Vec::new();
    generated
        .forward_generated(BATCH, &source, &mut buffer, &mut y_gen)
        .unwrap();
    let asked = asked.into_inner().unwrap();
    assert_eq!(bits(&y_gen), bits(&y_whole));
    assert_eq!(
        generated.matrix().total_energy(),
        whole.matrix().total_energy()
    );
    assert_eq!(asked.first().map(|r| r.start), Some(0));
    assert_eq!(asked.last().map(|r| r.end), Some(BATCH));
    assert!(
        asked.len() > 1,
        "the batch was generated in parts: {asked:?}"
    );
}
