//! Properties every device model must keep under any sequence of operations: conductances
//! stay within physical bounds, reads are never NaN or negative, and the same seed gives the
//! same sequence bit for bit.

use proptest::prelude::*;
use xbar::device::{AnyDevice, AnyState, Device, Polarity, Pulse, preset};

/// The built-in presets, plus RRAM with its (preset-disabled) relaxation switched on.
const PRESETS: [&str; 14] = [
    "ideal",
    "rram_hfo2",
    "pcm_gst",
    "stt_mram",
    "rram_hfo2",
    "reram_es",
    "reram_sb",
    "ecram",
    "ecram_mo",
    "capacitor",
    "gokmen_vlasov",
    "idealized",
    "aihwkit_pcm",
    "sot_mram",
];

#[derive(Clone, Debug)]
enum Op {
    Pulse {
        set: bool,
        amplitude_v: f64,
        width_s: f64,
    },
    Program {
        fraction: f64,
    },
    ProgramBinary {
        high: bool,
    },
    Read {
        t_s: f64,
    },
}

fn pulse_op() -> impl Strategy<Value = Op> {
    (any::<bool>(), 0.0..4.0f64, -11.0..-3.0f64).prop_map(|(set, amplitude_v, log_w)| Op::Pulse {
        set,
        amplitude_v,
        width_s: 10f64.powf(log_w),
    })
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        pulse_op(),
        (-0.5..1.5f64).prop_map(|fraction| Op::Program { fraction }),
        any::<bool>().prop_map(|high| Op::ProgramBinary { high }),
        (0.0..9.0f64).prop_map(|e| Op::Read {
            t_s: 10f64.powf(e) - 1.0
        }),
    ]
}

fn device(index: usize) -> AnyDevice {
    let mut overrides = toml::Table::new();
    if index == 4 {
        overrides.insert("relax_sigma_per_decade".into(), toml::Value::Float(0.05));
    }
    preset::load(PRESETS[index], &overrides).unwrap()
}

/// Apply `op`; return the value read, if it was a read.
fn apply(
    device: &AnyDevice,
    state: &mut AnyState,
    op: &Op,
    rng: &mut xbar::rng::XbarRng,
) -> Option<f64> {
    match *op {
        Op::Pulse {
            set,
            amplitude_v,
            width_s,
        } => {
            let polarity = if set { Polarity::Set } else { Polarity::Reset };
            device.apply_pulse(
                state,
                &Pulse {
                    polarity,
                    amplitude_v,
                    width_s,
                },
                rng,
            );
            None
        }
        Op::Program { fraction } => {
            let (lo, hi) = device.nominal_window();
            device.program(state, lo + fraction * (hi - lo), rng);
            None
        }
        Op::ProgramBinary { high } => {
            device.program_binary(state, high, rng);
            None
        }
        Op::Read { t_s } => Some(device.read(state, t_s, rng)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Pulses never take a cell outside its own window [g_min, g_max] (for PCM: from the
    /// amorphous floor to the cell's fully crystalline conductance).
    #[test]
    fn pulses_keep_conductance_within_the_window(
        which in 0..PRESETS.len(),
        seed in any::<u64>(),
        ops in prop::collection::vec(pulse_op(), 1..80),
    ) {
        let device = device(which);
        let mut rng = xbar::rng::stream(seed, &[]);
        let mut state = device.fabricate(&mut rng);
        let (lo, hi) = device.g_window(&state);
        for op in &ops {
            apply(&device, &mut state, op, &mut rng);
            for t_s in [0.0, 1e6] {
                let g = device.conductance_at(&state, t_s);
                prop_assert!(g.is_finite());
                prop_assert!(g >= lo * (1.0 - 1e-12) && g <= hi * (1.0 + 1e-12),
                    "{}: G({t_s} s) = {g} outside [{lo}, {hi}] after {op:?}", PRESETS[which]);
            }
        }
    }

    /// Whatever happens, a read is a finite, non-negative conductance, and the noise-free
    /// conductance is finite and non-negative at any time.
    #[test]
    fn reads_are_never_nan_or_negative(
        which in 0..PRESETS.len(),
        seed in any::<u64>(),
        ops in prop::collection::vec(any_op(), 1..60),
    ) {
        let device = device(which);
        let mut rng = xbar::rng::stream(seed, &[]);
        let mut state = device.fabricate(&mut rng);
        for op in &ops {
            if let Some(g) = apply(&device, &mut state, op, &mut rng) {
                prop_assert!(g.is_finite() && g >= 0.0, "{}: read {g} after {op:?}", PRESETS[which]);
            }
            for t in [0.0, 1.0, 1e3, 1e8] {
                let g = device.conductance_at(&state, t);
                prop_assert!(g.is_finite() && g >= 0.0);
                let s = device.read_noise_sigma(&state, t);
                prop_assert!(s.is_finite() && s >= 0.0);
            }
        }
    }

    /// Same seed, same operations: identical states and reads, bit for bit.
    #[test]
    fn same_seed_gives_identical_sequences(
        which in 0..PRESETS.len(),
        seed in any::<u64>(),
        ops in prop::collection::vec(any_op(), 1..60),
    ) {
        let device = device(which);
        let run = || {
            let mut rng = xbar::rng::stream(seed, &[1, 2]);
            let mut state = device.fabricate(&mut rng);
            let trace: Vec<u64> = ops
                .iter()
                .map(|op| {
                    let read = apply(&device, &mut state, op, &mut rng).unwrap_or(-1.0);
                    (read + device.conductance_at(&state, 10.0)).to_bits()
                })
                .collect();
            (trace, state)
        };
        prop_assert_eq!(run(), run());
    }
}
