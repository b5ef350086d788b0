//! The Metropolis–Hastings sampler of `bayes::mcmc`: its stationary distribution is the
//! target, with Gaussian random-walk proposals and with RRAM re-programming proposals (whose
//! asymmetry the Hastings ratio corrects), checked on the closed-form posterior of a
//! Bayesian linear regression; bad settings are clear errors.

use xbar::bayes::mcmc::{
    ChainSettings, DeviceMapping, DeviceProposal, GaussianWalk, ReadPeriphery, Sample, SampleStore,
    Target, run,
};
use xbar::crossbar::energy::EnergyConfig;
use xbar::device::rram::Rram;
use xbar::device::{AnyDevice, preset};
use xbar::rng::{XbarRng, stream};

/// Bayesian linear regression `y = θ0 + θ1 x + ε`, `ε ~ N(0, σ²)`, prior `θ ~ N(0, τ² I)`:
/// the posterior is Gaussian with precision `A = XᵀX/σ² + I/τ²` and mean `A⁻¹ Xᵀy / σ²`
/// (Bishop, Pattern Recognition and Machine Learning, eq. 3.53-3.54).
struct LinearPosterior {
    mean: [f64; 2],
    precision: [[f64; 2]; 2],
}

impl LinearPosterior {
    fn new(points: &[(f64, f64)], sigma: f64, tau: f64) -> Self {
        let mut a = [[1.0 / (tau * tau), 0.0], [0.0, 1.0 / (tau * tau)]];
        let mut b = [0.0; 2];
        for &(x, y) in points {
            let phi = [1.0, x];
            for i in 0..2 {
                b[i] += phi[i] * y / (sigma * sigma);
                for j in 0..2 {
                    a[i][j] += phi[i] * phi[j] / (sigma * sigma);
                }
            }
        }
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        let cov = [
            [a[1][1] / det, -a[0][1] / det],
            [-a[1][0] / det, a[0][0] / det],
        ];
        let mean = [
            cov[0][0] * b[0] + cov[0][1] * b[1],
            cov[1][0] * b[0] + cov[1][1] * b[1],
        ];
        Self { mean, precision: a }
    }

    fn variance(&self, j: usize) -> f64 {
        let a = &self.precision;
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        a[1 - j][1 - j] / det
    }
}

impl Target for LinearPosterior {
    fn log_density(&mut self, sample: &Sample, _rng: &mut XbarRng) -> f64 {
        let d = [
            sample.theta[0] - self.mean[0],
            sample.theta[1] - self.mean[1],
        ];
        let a = &self.precision;
        -0.5 * (d[0] * (a[0][0] * d[0] + a[0][1] * d[1]) + d[1] * (a[1][0] * d[0] + a[1][1] * d[1]))
    }
}

fn posterior() -> LinearPosterior {
    let points = [
        (-1.0, -0.1),
        (-0.5, 0.2),
        (0.0, 0.3),
        (0.5, 0.2),
        (1.0, 0.5),
    ];
    LinearPosterior::new(&points, 0.3, 1.0)
}

/// The chain after burn-in as a sequence (each stored sample repeated by its weight).
fn sequence(store: &SampleStore, j: usize) -> Vec<f64> {
    store
        .samples()
        .flat_map(|(s, w)| std::iter::repeat_n(s.theta[j], w as usize))
        .collect()
}

/// Check the chain's mean and variance of both parameters against the closed form. The
/// Monte Carlo error comes from 50 batch means (the batch-means estimator of the standard
/// error of an autocorrelated chain; Flegal & Jones, Ann. Statist. 2010); the effective
/// sample size it implies bounds the variance error by `var sqrt(2 / ESS)`. 5 standard
/// errors are allowed.
fn check_moments(store: &SampleStore, target: &LinearPosterior, what: &str) {
    for j in 0..2 {
        let seq = sequence(store, j);
        let n = seq.len() as f64;
        let mean = seq.iter().sum::<f64>() / n;
        let var = seq.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let batches = 50;
        let size = seq.len() / batches;
        let means: Vec<f64> = seq
            .chunks(size)
            .take(batches)
            .map(|c| c.iter().sum::<f64>() / c.len() as f64)
            .collect();
        let bm = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (batches - 1) as f64;
        let se = (bm / batches as f64).sqrt();
        let ess = var / (se * se);
        let (m_true, v_true) = (target.mean[j], target.variance(j));
        assert!(
            (mean - m_true).abs() < 5.0 * se,
            "{what}, θ{j}: mean {mean} vs {m_true} (se {se})"
        );
        assert!(
            (var / v_true - 1.0).abs() < 5.0 * (2.0 / ess).sqrt(),
            "{what}, θ{j}: variance {var} vs {v_true} (ESS {ess})"
        );
        assert!(ess > 1000.0, "{what}: only {ess} effective samples");
    }
}

fn settings(iterations: u64) -> ChainSettings {
    ChainSettings {
        iterations,
        burn_in: 2_000,
        rows: iterations as usize,
        checkpoints: Vec::new(),
        reread_current: false,
    }
}

#[test]
fn gaussian_random_walk_samples_the_closed_form_posterior() {
    let mut target = posterior();
    let mut walk = GaussianWalk {
        start: vec![0.0, 0.0],
        step: 0.2,
    };
    let mut rng = stream(3, &[]);
    let chain = run(&mut walk, &mut target, &settings(200_000), &mut rng).unwrap();
    assert!((0.2..0.9).contains(&chain.acceptance_rate()));
    check_moments(&chain.store, &target, "random walk");
}

fn rram(overrides: &[(&str, f64)]) -> Rram {
    let table: toml::Table = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::Float(*v)))
        .collect();
    match preset::load("rram_hfo2", &table).unwrap() {
        AnyDevice::Rram(r) => r,
        other => panic!("not an RRAM: {other:?}"),
    }
}

fn periphery() -> ReadPeriphery {
    ReadPeriphery {
        adc_bits: None,
        adc_full_scale: 10.0,
        v_read_v: 0.2,
        input_full_scale: 1.0,
        energy: EnergyConfig::default(),
    }
}

fn mapping() -> DeviceMapping {
    DeviceMapping {
        weight_per_siemens: 1.0e4,
        g_ref_s: 100e-6,
        i_cc_min_a: 1e-6,
        i_cc_max_a: 500e-6,
        cycles_spent: 0,
        write_check_sigmas: 6.0,
    }
}

/// Device proposals are lognormal around the current conductance with a spread that
/// depends on it (not symmetric); with the Hastings ratio from the same law the chain still
/// samples the target exactly (noise-free reads, no faults, no wear within the test).
#[test]
fn rram_proposals_sample_the_closed_form_posterior() {
    let device = rram(&[
        ("read_noise_rel", 0.0),
        ("p_stuck_lrs", 0.0),
        ("p_stuck_hrs", 0.0),
        ("endurance_spread_exponent", 0.0),
    ]);
    let mut target = posterior();
    let iterations = 150_000;
    let mut rng = stream(4, &[]);
    let mut proposal = DeviceProposal::new(
        device,
        mapping(),
        periphery(),
        2,
        iterations as usize,
        &mut rng,
    )
    .unwrap();
    let chain = run(&mut proposal, &mut target, &settings(iterations), &mut rng).unwrap();
    assert!(
        (0.1..0.95).contains(&chain.acceptance_rate()),
        "{}",
        chain.acceptance_rate()
    );
    check_moments(&chain.store, &target, "RRAM proposals");
    // Every iteration re-programs both devices of the candidate row (plus the initial row
    // and the two reference devices).
    assert_eq!(proposal.tally.programming_events, 2 * iterations + 4);
}

/// Without the Hastings correction the same device chain is biased: the check above can fail.
#[test]
fn ignoring_the_proposal_asymmetry_biases_the_chain() {
    struct Uncorrected(DeviceProposal);
    impl xbar::bayes::mcmc::Proposal for Uncorrected {
        fn initial(&mut self, rng: &mut XbarRng) -> Sample {
            self.0.initial(rng)
        }
        fn propose(&mut self, c: &Sample, rng: &mut XbarRng) -> xbar::bayes::mcmc::Proposed {
            let mut p = self.0.propose(c, rng);
            p.log_q_ratio = 0.0;
            p
        }
        fn accept(&mut self) {
            self.0.accept();
        }
    }
    let device = rram(&[
        ("read_noise_rel", 0.0),
        ("p_stuck_lrs", 0.0),
        ("p_stuck_hrs", 0.0),
    ]);
    let mut target = posterior();
    let iterations = 150_000;
    let mut rng = stream(4, &[]);
    let inner = DeviceProposal::new(
        device,
        mapping(),
        periphery(),
        2,
        iterations as usize,
        &mut rng,
    )
    .unwrap();
    let mut proposal = Uncorrected(inner);
    let chain = run(&mut proposal, &mut target, &settings(iterations), &mut rng).unwrap();
    let result = std::panic::catch_unwind(|| check_moments(&chain.store, &target, "uncorrected"));
    assert!(
        result.is_err(),
        "the uncorrected chain matched the posterior"
    );
}

#[test]
fn bad_settings_are_clear_errors() {
    let mut target = posterior();
    let mut walk = GaussianWalk {
        start: vec![0.0, 0.0],
        step: 0.2,
    };
    let mut rng = stream(5, &[]);
    for (s, needle) in [
        (
            ChainSettings {
                iterations: 0,
                ..settings(10)
            },
            "iterations must be at least 1",
        ),
        (
            ChainSettings {
                rows: 0,
                burn_in: 0,
                ..settings(10)
            },
            "rows must be at least 1",
        ),
        (settings(10), "burn_in (2000) must be below iterations"),
    ] {
        let err = run(&mut walk, &mut target, &s, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let bad = DeviceMapping {
        i_cc_min_a: -1e-6,
        ..mapping()
    };
    let err = DeviceProposal::new(rram(&[]), bad, periphery(), 2, 4, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("i_cc_min_a must be > 0"), "{err}");
}

/// Gradient ascent reaches the maximum a posteriori point of the WDBC logistic model (the
/// gradient of log π vanishes there) and classifies the test split well.
#[test]
fn map_reference_fits_wdbc() {
    use xbar::bayes::mcmc::{accuracy, fit_map, log_posterior_gradient, with_bias};
    let split = xbar::data::wdbc::wdbc().unwrap();
    let theta = fit_map(&split.train, 1.0, 5000, 1.0);
    let grad = log_posterior_gradient(&theta, &with_bias(&split.train), &split.train.labels, 1.0);
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(norm < 1e-3 * split.train.len() as f64, "|grad| = {norm}");
    let x = with_bias(&split.test);
    let p: Vec<f64> = x
        .chunks(theta.len())
        .map(|row| {
            let z: f64 = row.iter().zip(&theta).map(|(&a, b)| f64::from(a) * b).sum();
            1.0 / (1.0 + (-z).exp())
        })
        .collect();
    assert!(accuracy(&p, &split.test.labels) > 0.93);
}
