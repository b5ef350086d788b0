//! The random draws shared by the device models: standard and scaled normal, lognormal factors,
//! Bernoulli trials and the Poisson firing probability. Each returns its trivial value
//! without consuming randomness when the spread or probability makes it certain, so that a
//! noise-free preset draws nothing.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// One standard normal draw.
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

/// A zero-mean Gaussian draw of standard deviation `sigma` (`sigma = 0` gives exactly 0
/// without consuming randomness).
pub fn scaled_normal<R: Rng + ?Sized>(sigma: f64, rng: &mut R) -> f64 {
    if sigma == 0.0 {
        0.0
    } else {
        sigma * standard_normal(rng)
    }
}

/// A lognormal multiplicative factor with median 1 and log-standard deviation `sigma`
/// (`sigma = 0` gives exactly 1 without consuming randomness).
pub fn lognormal_factor<R: Rng + ?Sized>(sigma: f64, rng: &mut R) -> f64 {
    if sigma == 0.0 {
        1.0
    } else {
        (sigma * standard_normal(rng)).exp()
    }
}

/// A Bernoulli trial with success probability `p` (`p <= 0` never, `p >= 1` always,
/// neither consuming randomness).
pub fn bernoulli<R: Rng + ?Sized>(p: f64, rng: &mut R) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.random::<f64>() < p
    }
}

/// `1 - exp(-x)` for x >= 0, accurate for small x: the probability that a Poisson process of
/// mean `x` events fires at least once.
pub fn one_minus_exp_neg(x: f64) -> f64 {
    -(-x).exp_m1()
}
