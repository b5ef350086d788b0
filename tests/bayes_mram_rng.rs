//! The MRAM random bit generator (`bayes::mram_rng`, library API): bias and autocorrelation
//! of the bits against the device model. The study built on it is tested in
//! `study_mram_rng.rs`.

use xbar::bayes::mram_rng::{
    GeneratorConfig, MramBitGenerator, ResetPolicy, autocorrelation, fifty_percent_amplitude_v,
};
use xbar::device::AnyDevice;
use xbar::device::mram::Mram;
use xbar::rng::stream;

/// Bits per statistical check: the binomial standard error of a fraction near 1/2 is
/// 0.5 / sqrt(n) = 1.1e-3.
const N_BITS: usize = 200_000;
/// Half-width of the acceptance band in standard errors (two-sided p ~ 7e-6 per check).
const Z: f64 = 4.5;

fn no_spread() -> toml::Table {
    let mut t = toml::Table::new();
    for name in ["d2d_r_p_sigma", "d2d_tmr_sigma", "d2d_ic0_sigma"] {
        t.insert(name.to_string(), toml::Value::Float(0.0));
    }
    t
}

/// The `stt_mram` preset with `overrides`.
fn load_mram(preset: &str, overrides: &toml::Table) -> Mram {
    match xbar::device::preset::load(preset, overrides).unwrap() {
        AnyDevice::Mram(m) => m,
        other => panic!("{preset} is a {} model", other.model_name()),
    }
}

fn generate(generator: &mut MramBitGenerator<'_>, seed: u64) -> Vec<bool> {
    let mut rng = stream(seed, &[]);
    let mut bits = vec![false; N_BITS];
    generator.fill(&mut bits, &mut rng);
    bits
}

fn assert_binomial(bits: &[bool], p: f64, what: &str) {
    let n = bits.len() as f64;
    let measured = bits.iter().filter(|&&b| b).count() as f64 / n;
    let se = (p * (1.0 - p) / n).sqrt();
    assert!(
        (measured - p).abs() < Z * se,
        "{what}: measured P(1) = {measured}, model {p} (se {se})"
    );
}

/// Thermal switching P = 1 - exp(-t/tau) at the amplitude solved for P = 1/2 (Koch et al.,
/// PRL 2004): with verified resets and negligible read disturb the bits are i.i.d. Bernoulli(1/2),
/// so their mean lies in the binomial band and every autocorrelation lag is within
/// Z / sqrt(n) of zero.
#[test]
fn bits_at_the_fifty_percent_point_are_unbiased_and_uncorrelated() {
    let model = load_mram("stt_mram", &no_spread());
    let config = GeneratorConfig::default();
    let v50 = fifty_percent_amplitude_v(&model, &model.nominal_state(false), config.pulse_width_s)
        .unwrap();
    let mut generator = MramBitGenerator::new(&model, model.nominal_state(false), v50, config);
    assert!((generator.model_probability_of_one() - 0.5).abs() < 1e-9);
    let bits = generate(&mut generator, 11);
    assert_binomial(&bits, 0.5, "nominal junction at V50");
    for (lag, r) in autocorrelation(&bits, 5).iter().enumerate() {
        assert!(
            r.abs() < Z / (N_BITS as f64).sqrt(),
            "lag {} autocorrelation {r}",
            lag + 1
        );
    }
}

/// Read disturb: a read at 0.6 V drives I ~ 0.9 Ic0 through an AP junction, which then
/// switches with d = 1 - exp(-t_read/tau(I)). With verified resets a cycle starts in P with
/// probability d independently of the past, so P(1) = p + d (1 - p) and the bits stay
/// uncorrelated.
#[test]
fn read_disturb_raises_the_probability_of_a_one_as_the_model_predicts() {
    let mut overrides = no_spread();
    overrides.insert("v_read_v".to_string(), toml::Value::Float(0.6));
    let model = load_mram("stt_mram", &overrides);
    let config = GeneratorConfig::default();
    let v50 = fifty_percent_amplitude_v(&model, &model.nominal_state(false), config.pulse_width_s)
        .unwrap();
    let d = model.read_disturb_probability(&model.nominal_state(false));
    assert!(d > 0.05, "the test needs a strong disturb, got d = {d}");
    let mut generator = MramBitGenerator::new(&model, model.nominal_state(false), v50, config);
    let p_model = generator.model_probability_of_one();
    assert!((p_model - (0.5 + d * 0.5)).abs() < 1e-9);
    let bits = generate(&mut generator, 12);
    assert_binomial(&bits, p_model, "disturbed reads");
    let r1 = autocorrelation(&bits, 1)[0];
    assert!(
        r1.abs() < Z / (N_BITS as f64).sqrt(),
        "lag-1 autocorrelation {r1}"
    );
}

/// A weak, unverified RESET fails with probability f, and the next cycle then starts in P and
/// gives a forced 1: the start state is a Markov chain with stationary
/// pi_P = p f / (1 + p f - f), so P(1) = (1 - pi_P) p + pi_P, and successive bits are
/// positively correlated.
#[test]
fn failed_resets_bias_and_correlate_the_bits_as_the_markov_model_predicts() {
    let mut overrides = no_spread();
    overrides.insert("reset_pulse_v".to_string(), toml::Value::Float(0.28));
    let model = load_mram("stt_mram", &overrides);
    let config = GeneratorConfig {
        verify_reset: false,
        reset: ResetPolicy::IfSwitched,
        ..GeneratorConfig::default()
    };
    let v50 = fifty_percent_amplitude_v(&model, &model.nominal_state(false), config.pulse_width_s)
        .unwrap();
    let mut generator = MramBitGenerator::new(&model, model.nominal_state(false), v50, config);
    let p_model = generator.model_probability_of_one();
    assert!(
        p_model > 0.55,
        "the test needs frequent reset failures (P(1) = {p_model})"
    );
    let bits = generate(&mut generator, 13);
    assert_binomial(&bits, p_model, "unverified weak resets");
    let r1 = autocorrelation(&bits, 1)[0];
    assert!(
        r1 > Z / (N_BITS as f64).sqrt(),
        "lag-1 autocorrelation {r1} should be positive"
    );
}
