//! Crossbar tile tests with ideal devices: exact forward and transposed MVM, DAC/ADC
//! quantisation bounds and saturation, bit slicing, tiling, faults and dead lines,
//! 2T2R sense-amplifier reads, the energy ledger, and configuration errors.

use rand::RngExt;
use xbar::crossbar::{
    AdcRange, BitSlicing, Direction, Tile, TileConfig, TiledMatrix, WeightEncoding,
};
use xbar::device::ideal::{Ideal, IdealParams};

const G_MIN_S: f64 = 1e-6;
const G_MAX_S: f64 = 26e-6;

fn ideal() -> Ideal {
    Ideal {
        params: IdealParams {
            g_min_s: G_MIN_S,
            g_max_s: G_MAX_S,
            levels: 100,
            pulse_amplitude_v: 1.0,
            pulse_width_s: 100e-9,
        },
    }
}

fn random(len: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = xbar::rng::stream(seed, &[99]);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Exact y = W x (W row-major n_out x n_in) for a batch, and sum |w||x| per output (the
/// natural scale of float rounding errors).
fn exact(w: &[f64], x: &[f32], n_in: usize, n_out: usize) -> (Vec<f64>, Vec<f64>) {
    let batch = x.len() / n_in;
    let mut y = vec![0.0; batch * n_out];
    let mut scale = vec![0.0; batch * n_out];
    for b in 0..batch {
        for j in 0..n_out {
            for i in 0..n_in {
                let p = w[j * n_in + i] * f64::from(x[b * n_in + i]);
                y[b * n_out + j] += p;
                scale[b * n_out + j] += p.abs();
            }
        }
    }
    (y, scale)
}

fn transpose(w: &[f64], n_in: usize, n_out: usize) -> Vec<f64> {
    let mut t = vec![0.0; w.len()];
    for j in 0..n_out {
        for i in 0..n_in {
            t[i * n_out + j] = w[j * n_in + i];
        }
    }
    t
}

fn assert_close(got: &[f32], want: &[f64], scale: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len());
    for (k, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= rel * s + 1e-12,
            "output {k}: got {g}, exact {w} (scale {s})"
        );
    }
}

/// Ideal devices, ideal wires, no quantisation and no noise: the forward MVM equals W x
/// and the transposed MVM equals W^T x to float precision (f32 conductances and GEMM:
/// relative error a few 1e-7 of sum |w x|).
#[test]
fn ideal_tile_computes_exact_forward_and_transposed_products() {
    let (n_in, n_out, batch) = (70, 45, 130);
    let w = random(n_in * n_out, 1, -2.0, 2.0);
    let mut tile = Tile::new(ideal(), n_in, n_out, TileConfig::ideal(), 5, 0).unwrap();
    tile.program(&w).unwrap();

    let x = to_f32(&random(batch * n_in, 2, -1.0, 1.0));
    let mut y = vec![0f32; batch * n_out];
    tile.forward_batch(&x, batch, &mut y).unwrap();
    let (want, scale) = exact(&w, &x, n_in, n_out);
    assert_close(&y, &want, &scale, 1e-5);

    let single = tile.forward(&x[..n_in]).unwrap();
    assert_close(&single, &want[..n_out], &scale[..n_out], 1e-5);

    let xt = to_f32(&random(batch * n_out, 3, -1.0, 1.0));
    let mut yt = vec![0f32; batch * n_in];
    tile.transposed_batch(&xt, batch, &mut yt).unwrap();
    let (want_t, scale_t) = exact(&transpose(&w, n_in, n_out), &xt, n_out, n_in);
    assert_close(&yt, &want_t, &scale_t, 1e-5);

    // Read-back of the effective weights reproduces the programmed matrix.
    let back = tile.effective_weights().unwrap();
    for (a, b) in back.iter().zip(&w) {
        assert!((a - b).abs() < 1e-6 * 2.0, "read-back {a} vs {b}");
    }
}

/// A 1 x 1 tile storing w = 1 exposes the converters: a b-bit DAC rounds the input to
/// the nearest of 2^(b-1)-1 levels per side (error <= LSB/2 inside the range) and clips
/// outside; an ADC with a fixed full scale does the same on the output current.
#[test]
fn dac_and_adc_errors_stay_within_half_an_lsb_and_saturate_outside() {
    let mut config = TileConfig::ideal();
    config.periphery.dac_bits = Some(4);
    let mut tile = Tile::new(ideal(), 1, 1, config.clone(), 1, 0).unwrap();
    tile.program(&[1.0]).unwrap();
    let dac_lsb = 1.0 / 7.0;
    for k in 0..=400 {
        let x = -2.0 + 4.0 * f64::from(k) / 400.0;
        let y = f64::from(tile.forward(&[x as f32]).unwrap()[0]);
        if x.abs() <= 1.0 {
            assert!((y - x).abs() <= dac_lsb / 2.0 + 1e-6, "DAC: x {x} -> {y}");
        } else {
            assert!(
                (y - x.signum()).abs() < 1e-6,
                "DAC saturation: x {x} -> {y}"
            );
        }
    }

    // ADC: full scale = half the current of a full-scale input on w = 1.
    let v_read = config.periphery.v_read_v;
    config.periphery.dac_bits = None;
    config.periphery.adc.bits = Some(4);
    config.periphery.adc.range = AdcRange::Fixed {
        full_scale_a: 0.5 * v_read * (G_MAX_S - G_MIN_S),
    };
    let mut tile = Tile::new(ideal(), 1, 1, config, 1, 0).unwrap();
    tile.program(&[1.0]).unwrap();
    let adc_lsb = 0.5 / 7.0;
    for k in 0..=400 {
        let x = -1.0 + 2.0 * f64::from(k) / 400.0;
        let y = f64::from(tile.forward(&[x as f32]).unwrap()[0]);
        if x.abs() <= 0.5 {
            assert!((y - x).abs() <= adc_lsb / 2.0 + 1e-6, "ADC: x {x} -> {y}");
        } else {
            assert!(
                (y - 0.5 * x.signum()).abs() < 1e-6,
                "ADC saturation: x {x} -> {y}"
            );
        }
    }
}

/// A calibrated ADC range covers the calibration inputs: no saturation, and every
/// output within half an LSB of the exact product (LSB = margin x peak / 127).
#[test]
fn calibrated_adc_range_covers_the_calibration_inputs() {
    let (n_in, n_out, batch) = (32, 8, 50);
    let mut config = TileConfig::ideal();
    config.periphery.adc.bits = Some(8);
    config.periphery.adc.range = AdcRange::Calibrated { margin: 1.0 };
    let w = random(n_in * n_out, 7, -1.0, 1.0);
    let mut tile = Tile::new(ideal(), n_in, n_out, config, 3, 0).unwrap();
    tile.program(&w).unwrap();
    let x = to_f32(&random(batch * n_in, 8, -1.0, 1.0));
    tile.calibrate_adc(Direction::Forward, &x, batch).unwrap();
    let mut y = vec![0f32; batch * n_out];
    tile.forward_batch(&x, batch, &mut y).unwrap();
    let (want, _) = exact(&w, &x, n_in, n_out);
    for j in 0..n_out {
        let peak = (0..batch)
            .map(|b| want[b * n_out + j].abs())
            .fold(0.0, f64::max);
        let lsb = peak / 127.0;
        for b in 0..batch {
            let err = (f64::from(y[b * n_out + j]) - want[b * n_out + j]).abs();
            assert!(
                err <= lsb / 2.0 + 1e-5 * peak,
                "column {j} vector {b}: error {err}"
            );
        }
    }
}

/// A column that carried no current during calibration (all of its inputs were zero, as
/// for the border pixels of MNIST digits) gets a zero ADC range: it must read exactly 0,
/// never NaN, and the other columns are unaffected.
#[test]
fn a_column_without_calibration_current_reads_zero_not_nan() {
    let (n_in, n_out, batch) = (16, 4, 10);
    let mut config = TileConfig::ideal();
    config.periphery.adc.bits = Some(8);
    config.periphery.adc.range = AdcRange::Calibrated { margin: 1.0 };
    // Column 0's weights are all zero: it never carries current.
    let mut w = random(n_in * n_out, 9, -1.0, 1.0);
    w[..n_in].iter_mut().for_each(|v| *v = 0.0);
    let mut tile = Tile::new(ideal(), n_in, n_out, config, 3, 0).unwrap();
    tile.program(&w).unwrap();
    let x = to_f32(&random(batch * n_in, 10, -1.0, 1.0));
    tile.calibrate_adc(Direction::Forward, &x, batch).unwrap();
    let mut y = vec![0f32; batch * n_out];
    tile.forward_batch(&x, batch, &mut y).unwrap();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    assert!((0..batch).all(|b| y[b * n_out] == 0.0));
    assert!((0..batch).any(|b| y[b * n_out + 1] != 0.0));
}

/// Bit slicing with 2 slices of 2 bits (16 magnitude levels) stores integer weights
/// |w| <= 15 exactly when w_max = 15, and the digital shift-and-add of the slice outputs
/// reproduces W x.
#[test]
fn bit_sliced_tile_reproduces_integer_weights() {
    let (n_in, n_out) = (20, 6);
    let mut config = TileConfig::ideal();
    config.mapping.bit_slicing = Some(BitSlicing {
        slices: 2,
        bits_per_slice: 2,
    });
    config.mapping.weight_max = Some(15.0);
    let w: Vec<f64> = random(n_in * n_out, 9, -15.49, 15.49)
        .iter()
        .map(|v| v.round())
        .collect();
    let mut tile = Tile::new(ideal(), n_in, n_out, config, 2, 0).unwrap();
    tile.program(&w).unwrap();
    let x = to_f32(&random(3 * n_in, 10, -1.0, 1.0));
    let mut y = vec![0f32; 3 * n_out];
    tile.forward_batch(&x, 3, &mut y).unwrap();
    let (want, scale) = exact(&w, &x, n_in, n_out);
    assert_close(&y, &want, &scale, 1e-5);
}

/// A matrix split over 16 x 16 tiles (3 x 4 grid for 40 inputs x 50 outputs) with digital
/// accumulation gives the same product as the untiled matrix, forward and transposed.
#[test]
fn tiled_matrix_equals_the_untiled_product() {
    let (n_in, n_out, batch) = (40, 50, 70);
    let mut config = TileConfig::ideal();
    config.max_rows = 16;
    config.max_cols = 16;
    let w = random(n_in * n_out, 11, -1.0, 1.0);
    let mut tiled = TiledMatrix::new(ideal(), n_in, n_out, config, 4).unwrap();
    assert_eq!(tiled.grid(), (3, 4));
    tiled.program(&w).unwrap();
    let x = to_f32(&random(batch * n_in, 12, -1.0, 1.0));
    let mut y = vec![0f32; batch * n_out];
    tiled.forward_batch(&x, batch, &mut y).unwrap();
    let (want, scale) = exact(&w, &x, n_in, n_out);
    assert_close(&y, &want, &scale, 1e-5);

    let xt = to_f32(&random(batch * n_out, 13, -1.0, 1.0));
    let mut yt = vec![0f32; batch * n_in];
    tiled.transposed_batch(&xt, batch, &mut yt).unwrap();
    let (want_t, scale_t) = exact(&transpose(&w, n_in, n_out), &xt, n_out, n_in);
    assert_close(&yt, &want_t, &scale_t, 1e-5);

    let back = tiled.effective_weights().unwrap();
    for (a, b) in back.iter().zip(&w) {
        assert!((a - b).abs() < 1e-6, "read-back {a} vs {b}");
    }
    let energy = tiled.total_energy();
    assert_eq!(
        energy.vectors,
        2 * 12 * batch as u64,
        "12 tiles, two reads each"
    );
}

/// Dead lines: an open row carries no current (the output ignores that input); an open
/// column delivers no current (its output is exactly 0 without output noise).
#[test]
fn dead_rows_and_columns_carry_no_current() {
    let (n_in, n_out) = (10, 5);
    let mut config = TileConfig::ideal();
    config.faults.dead_rows = vec![3];
    config.faults.dead_columns = vec![1];
    let w = random(n_in * n_out, 14, -1.0, 1.0);
    let mut tile = Tile::new(ideal(), n_in, n_out, config, 6, 0).unwrap();
    tile.program(&w).unwrap();
    let mut x = to_f32(&random(n_in, 15, -1.0, 1.0));
    let y1 = tile.forward(&x).unwrap();
    x[3] = -x[3] + 0.5;
    let y2 = tile.forward(&x).unwrap();
    assert_eq!(y1, y2, "the dead row's input must not matter");
    assert_eq!(y1[1], 0.0, "dead column reads zero");
    let mut w_alive = w.clone();
    for j in 0..n_out {
        w_alive[j * n_in + 3] = 0.0;
    }
    let (want, scale) = exact(&w_alive, &x, n_in, n_out);
    for j in (0..n_out).filter(|&j| j != 1) {
        assert!((f64::from(y2[j]) - want[j]).abs() <= 1e-5 * scale[j]);
    }
}

/// Stuck-at faults at rate p per device: a weight is corrupted when either device of its
/// pair is stuck, probability 1 - (1 - p)^2; the observed fraction over 4,096 weights
/// lies within 4 binomial standard deviations. All devices stuck at HRS give W = 0.
#[test]
fn stuck_at_faults_hit_the_configured_fraction_of_weights() {
    let (n, p) = (64usize, 0.05);
    let mut config = TileConfig::ideal();
    config.max_rows = n;
    config.max_cols = n;
    config.faults.stuck_at_lrs_rate = p / 2.0;
    config.faults.stuck_at_hrs_rate = p / 2.0;
    let w = random(n * n, 16, 0.2, 0.8); // away from the window ends
    let mut tile = Tile::new(ideal(), n, n, config.clone(), 8, 0).unwrap();
    tile.program(&w).unwrap();
    let back = tile.effective_weights().unwrap();
    let wrong = back
        .iter()
        .zip(&w)
        .filter(|(a, b)| (*a - *b).abs() > 1e-6)
        .count();
    let q = 1.0 - (1.0 - p) * (1.0 - p);
    let expected = q * (n * n) as f64;
    let sigma = (expected * (1.0 - q)).sqrt();
    assert!(
        (wrong as f64 - expected).abs() < 4.0 * sigma,
        "{wrong} corrupted weights, expected {expected:.0} +- {sigma:.0}"
    );

    config.faults.stuck_at_lrs_rate = 0.0;
    config.faults.stuck_at_hrs_rate = 1.0;
    let mut dead = Tile::new(ideal(), n, n, config, 8, 0).unwrap();
    dead.program(&w).unwrap();
    assert!(dead.effective_weights().unwrap().iter().all(|&v| v == 0.0));
}

/// 2T2R pairs read by precharge sense amplifiers: binary mode senses sign(W), ternary
/// mode senses 0 for weights below the threshold; the sensed product is w_max S x.
#[test]
fn sense_amplifiers_read_binary_and_ternary_weights() {
    let (n_in, n_out) = (30, 12);
    let w = random(n_in * n_out, 17, -1.0, 1.0);
    for encoding in [WeightEncoding::Binary, WeightEncoding::Ternary] {
        let mut config = TileConfig::ideal();
        config.mapping.encoding = encoding;
        config.mapping.weight_max = Some(1.0);
        let mut tile = Tile::new(ideal(), n_in, n_out, config, 9, 0).unwrap();
        tile.program(&w).unwrap();
        let sensed = tile.sense_weights().unwrap();
        let mapping = tile.mapping().unwrap().clone();
        for (k, (&s, &wk)) in sensed.iter().zip(&w).enumerate() {
            assert_eq!(
                f64::from(s),
                mapping.ideal_weight(wk),
                "{encoding:?} weight {k}"
            );
        }
        let x = to_f32(&random(n_in, 18, -1.0, 1.0));
        let mut y = vec![0f32; n_out];
        tile.forward_sensed_batch(&x, 1, &mut y).unwrap();
        let s64: Vec<f64> = sensed.iter().map(|&s| f64::from(s)).collect();
        let (want, scale) = exact(&s64, &x, n_in, n_out);
        assert_close(&y, &want, &scale, 1e-5);
    }
}

/// A comparator offset much larger than the window makes binary sensing a coin toss:
/// the bit-error rate over 4,096 pairs is 0.5 within 4 binomial sigmas.
#[test]
fn sense_amplifier_offset_causes_bit_errors() {
    let n = 64;
    let mut config = TileConfig::ideal();
    config.max_rows = n;
    config.max_cols = n;
    config.mapping.encoding = WeightEncoding::Binary;
    config.periphery.sense_amp.offset_sigma_s = 1e3 * (G_MAX_S - G_MIN_S);
    let w = random(n * n, 19, -1.0, 1.0);
    let mut tile = Tile::new(ideal(), n, n, config, 10, 0).unwrap();
    tile.program(&w).unwrap();
    let sensed = tile.sense_weights().unwrap();
    let errors = sensed
        .iter()
        .zip(&w)
        .filter(|(s, w)| f64::from(**s) != w.signum())
        .count() as f64;
    let total = (n * n) as f64;
    assert!(
        (errors - 0.5 * total).abs() < 4.0 * (0.25 * total).sqrt(),
        "{errors} errors"
    );
}

/// Energy ledger of one read of a 2 x 2 ideal tile with known conductances:
/// E_array = t_read v_read^2 sum_i u_i^2 sum_j (G+_ij + G-_ij); DAC energy = rows x
/// bits x E_bit; ADC energy = columns x FOM x 2^bits; pJ/MAC = read energy / 4 MACs.
#[test]
fn energy_ledger_counts_array_dac_and_adc_energy() {
    let mut config = TileConfig::ideal();
    config.periphery.dac_bits = Some(8);
    config.periphery.adc.bits = Some(8);
    config.mapping.weight_max = Some(1.0);
    // W (2 outputs x 2 inputs): row-major n_out x n_in.
    let w = [1.0, 0.0, -0.5, 0.25];
    let mut tile = Tile::new(ideal(), 2, 2, config.clone(), 11, 0).unwrap();
    let report = tile.program(&w).unwrap();
    assert_eq!(report.devices, 8);
    assert!(report.write.energy_j > 0.0 && report.write.pulses == 8);
    let x = [1.0f32, 0.3];
    tile.forward(&x).unwrap();
    let last = tile.ledger().last;
    let gu = G_MAX_S - G_MIN_S;
    // Input row i feeds weights W[j][i]; each pair holds G+ + G- = 2 g_min + gu |w|.
    let row_sum = |i: usize| {
        (0..2)
            .map(|j| 2.0 * G_MIN_S + gu * w[j * 2 + i].abs())
            .sum::<f64>()
    };
    // The 8-bit DAC has 127 levels per side: 0.3 -> 38/127 of v_read; 1.0 is exact.
    let u1 = 38.0 / 127.0;
    let e = &config.energy;
    let v = config.periphery.v_read_v;
    let want_array = e.read_time_s * v * v * (row_sum(0) + u1 * u1 * row_sum(1));
    assert!((last.array_read_j - want_array).abs() < 1e-6 * want_array);
    assert!((last.dac_j - 2.0 * 8.0 * e.dac_energy_per_bit_j).abs() < 1e-24);
    assert!((last.adc_j - 2.0 * e.adc_fom_j_per_step * 256.0).abs() < 1e-24);
    assert_eq!(last.macs, 4.0);
    let pj = last.pj_per_mac();
    assert!((pj - last.read_j() / 4.0 * 1e12).abs() < 1e-9 * pj);
    assert_eq!(tile.ledger().total.programming_pulses, 8);
}

/// Bad configurations and inputs give errors that name the field.
#[test]
fn bad_configurations_give_clear_errors() {
    let check = |edit: &dyn Fn(&mut TileConfig), field: &str| {
        let mut config = TileConfig::default();
        edit(&mut config);
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(err.contains(field), "error `{err}` should name {field}");
    };
    check(&|c| c.periphery.v_read_v = f64::NAN, "periphery.v_read_v");
    check(
        &|c| c.periphery.input_full_scale = 0.0,
        "periphery.input_full_scale",
    );
    check(&|c| c.periphery.dac_bits = Some(1), "periphery.dac_bits");
    check(&|c| c.periphery.adc.bits = Some(40), "periphery.adc.bits");
    check(
        &|c| c.periphery.output_noise_sigma_a = -1.0,
        "output_noise_sigma_a",
    );
    check(
        &|c| c.periphery.adc.range = AdcRange::ColumnMax { fraction: 0.0 },
        "fraction",
    );
    check(
        &|c| c.faults.stuck_at_lrs_rate = 1.5,
        "faults.stuck_at_lrs_rate",
    );
    check(&|c| c.mapping.weight_max = Some(0.0), "mapping.weight_max");
    check(&|c| c.programming.max_pulses = 0, "programming.max_pulses");
    check(&|c| c.energy.read_time_s = -1e-9, "energy.read_time_s");
    check(&|c| c.max_rows = 0, "max_rows");

    // TOML: negative bits and unknown fields are rejected by the parser.
    let negative = toml::from_str::<TileConfig>("[periphery]\ndac_bits = -3\n");
    assert!(negative.is_err());
    let unknown = toml::from_str::<TileConfig>("[periphery]\nadc_bitz = 8\n").unwrap_err();
    assert!(unknown.to_string().contains("adc_bitz"), "{unknown}");
    let parsed: TileConfig = toml::from_str(
        "max_rows = 128\n[periphery.adc]\nbits = 6\nrange = { mode = \"fixed\", full_scale_a = 1e-5 }\n",
    )
    .unwrap();
    assert_eq!(parsed.max_rows, 128);
    assert_eq!(parsed.periphery.adc.bits, Some(6));

    // Tile construction and use.
    let too_big = Tile::new(ideal(), 300, 10, TileConfig::default(), 0, 0);
    assert!(format!("{:#}", too_big.err().unwrap()).contains("TiledMatrix"));
    let mut config = TileConfig::ideal();
    config.faults.dead_rows = vec![12];
    let bad_line = Tile::new(ideal(), 10, 10, config, 0, 0);
    assert!(format!("{:#}", bad_line.err().unwrap()).contains("dead_rows"));
    let mut tile = Tile::new(ideal(), 4, 3, TileConfig::ideal(), 0, 0).unwrap();
    assert!(
        tile.forward(&[0.0; 4]).is_err(),
        "reading before programming"
    );
    assert!(tile.program(&[0.0; 5]).is_err(), "wrong weight count");
    assert!(tile.program(&[f64::NAN; 12]).is_err(), "NaN weight");
    tile.program(&[0.1; 12]).unwrap();
    assert!(tile.forward(&[0.0; 3]).is_err(), "wrong input length");
    assert!(tile.set_read_time(-1.0).is_err());
}

/// Wire resistance in the read path (IR-drop solver): with 1e-6 ohm segments the tile
/// reproduces the ideal product (relative 1e-5); with 5 ohm segments and all-positive
/// weights and inputs every output current falls below its ideal value (IR drop only
/// loses voltage), forward and transposed.
#[test]
fn wire_resistance_lowers_the_outputs_and_vanishes_for_tiny_wires() {
    let (n_in, n_out) = (24, 16);
    let w = random(n_in * n_out, 20, 0.1, 1.0);
    let x = to_f32(&random(n_in, 21, 0.2, 1.0));
    let xt = to_f32(&random(n_out, 22, 0.2, 1.0));
    let read = |r_wire_ohm: f64| {
        let mut config = TileConfig::ideal();
        config.wires.r_wire_ohm = r_wire_ohm;
        let mut tile = Tile::new(ideal(), n_in, n_out, config, 12, 0).unwrap();
        tile.program(&w).unwrap();
        (tile.forward(&x).unwrap(), tile.transposed(&xt).unwrap())
    };
    let (want, scale) = exact(&w, &x, n_in, n_out);
    let (want_t, scale_t) = exact(&transpose(&w, n_in, n_out), &xt, n_out, n_in);
    let (y, yt) = read(1e-6);
    assert_close(&y, &want, &scale, 1e-5);
    assert_close(&yt, &want_t, &scale_t, 1e-5);
    let (y, yt) = read(5.0);
    for (got, ideal) in y.iter().zip(&want).chain(yt.iter().zip(&want_t)) {
        assert!(
            f64::from(*got) < *ideal * (1.0 - 1e-4),
            "{got} vs ideal {ideal}"
        );
        assert!(f64::from(*got) > 0.5 * ideal, "{got} vs ideal {ideal}");
    }
}
