//! Pulsed analog devices with the step-model families of IBM's aihwkit (Rasch et al., AICAS
//! 2021), so that its users recognise every parameter by name. The equations below were read
//! from aihwkit's C++ update code (`src/rpucuda/rpu_*_device.cpp`, commit 4545f11) and its
//! Python documentation (`src/aihwkit/simulator/configs/devices.py`); where the two disagree
//! (the up/down bias), the C++ code, which is what aihwkit runs, is followed.
//!
//! **Units.** Like aihwkit, the model works in *weight units*: the nominal device spans
//! `[w_min, w_max]` (which contains 0) and one nominal pulse moves it by about `dw_min`. The
//! conductance is the affine image of the weight, `G(w) = g_min_s + (w - w_min) (g_max_s -
//! g_min_s) / (w_max - w_min)`, so the nominal device spans `[g_min_s, g_max_s]`. A cell's
//! conductance never goes below 0 S: its lower bound is raised to the weight of 0 S if the
//! device-to-device spread would take it lower.
//!
//! **Fabrication** (device-to-device spread, as `PulsedRPUDevice::populate` does it, with
//! aihwkit's default `enforce_consistency = true`; every ξ is a standard normal drawn only
//! when its spread is non-zero, in this order):
//! - bounds `b_max = w_max (1 + w_max_dtod ξ)`, `b_min = w_min (1 + w_min_dtod ξ)`, swapped
//!   if crossed, then `b_max = |b_max|`, `b_min = -|b_min|`;
//! - step scales `s_up = |(β_up + g + r) dw_min|`, `s_down = |(β_down + g - r) dw_min|`,
//!   with gain `g = 1 + dw_min_dtod ξ`, `r = up_down_dtod ξ` and the up/down bias of the
//!   C++ code: `β_up = min(up_down, 0)`, `β_down = -max(up_down, 0)` (a positive `up_down`
//!   shortens the down steps, a negative one the up steps);
//! - the family's own per-device parameters (below), then the stuck-at fault
//!   ([`cell::draw_stuck`]). A new cell sits at its lower bound.
//!
//! **One pulse** (cycle-to-cycle noise ξ drawn per pulse, `σ = dw_min_std`), then the weight
//! is clipped to `[b_min, b_max]`. Up (SET) pulses add `Δ⁺`, down (RESET) pulses subtract
//! `Δ⁻`:
//! - *constant step* (`ConstantStepDevice`, `rpu_constantstep_device.cpp`):
//!   `Δ^d = s_d (1 + σ ξ)`;
//! - *linear step* (`LinearStepDevice`, `rpu_linearstep_device.cpp`):
//!   `Δ⁺ = s_up (1 - γ⁺ w / w_ref⁺)`, `Δ⁻ = s_down (1 - γ⁻ w / w_ref⁻)`, times `(1 + σ ξ)`
//!   with `mult_noise`, plus `s_d σ ξ` without it; the per-device
//!   `γ^d = |gamma_d + gamma_d_dtod ξ|` (sign kept with `allow_increasing`) and the reference
//!   `w_ref⁺`/`w_ref⁻` is the nominal `w_max`/`w_min` with `mean_bound_reference`, the cell's
//!   `b_max`/`b_min` otherwise (a zero reference gives a constant step);
//! - *soft bounds* (`SoftBoundsDevice`, `SoftBoundsRPUDeviceMetaParameter` in
//!   `rpu_linearstep_device.h`): the linear step with `γ = 1`, no spread of γ and the cell's
//!   own bounds as reference, so the mean step `s_up (1 - w / b_max)` vanishes at the bound;
//! - *exponential step* (`ExpStepDevice`, `rpu_expstep_device.cpp`): with
//!   `z = 2 a w / (b_max - b_min) + b`, `Δ⁺ = s_up max(1 - A_up e^{γ_up z}, 0) (1 + σ ξ)` and
//!   `Δ⁻ = s_down max(1 - A_down e^{-γ_down z}, 0) (1 + σ ξ)`; with `dw_min_std_add` or
//!   `dw_min_std_slope` non-zero the noise is state-dependent instead, `Δ^d + σ (Δ^d +
//!   dw_min_std_add + dw_min_std_slope |w|) ξ` (aihwkit's "complex noise");
//! - *power step* (`PowStepDevice`, `rpu_powstep_device.cpp`; Fusi & Abbott 2007): with
//!   `ω = (b_max - w) / (b_max - b_min)`, `Δ⁺ = s_up ω^{γ⁺} (1 + σ ξ)`,
//!   `Δ⁻ = s_down (1 - ω)^{γ⁻} (1 + σ ξ)`; the per-device exponents
//!   `γ^d = |(β_d + g + r) pow_gamma|` with `g = 1 + pow_gamma_dtod ξ`,
//!   `r = pow_up_down_dtod ξ` and the bias `β` from `pow_up_down` as for the step scales;
//! - *piecewise step* (`PiecewiseStepDevice`, `rpu_piecewisestep_device.cpp`): the nodes
//!   `v^d` (`piecewise_up`, `piecewise_down`) sit evenly over `[b_min, b_max]`; with
//!   `x = (w - b_min) / (b_max - b_min) (n - 1)` for `n` nodes, `i = min(⌊x⌋, n - 2)` and
//!   `q = min(x - i, 1)`, `Δ^d = s_d ((1 - q) v^d_i + q v^d_{i+1}) (1 + σ ξ)` (a single node
//!   is a constant factor).
//!
//! **Between updates** (aihwkit's `diffuse_weights` and `decay_weights`, which its analog
//! optimiser calls once per mini-batch, in this order, from `post_update_step` in
//! `simulator/tiles/rpucuda.py`; C++ `PulsedRPUDevice::diffuseWeights`/`decayWeights`): a
//! tile calls [`Device::after_update`] on every cell once after each update (one call of
//! `apply_outer_product` or `apply_dense_update` = one mini-batch):
//! - *diffusion* `w ← w + ρ ξ` with the cell's rate `ρ = |diffusion (1 + diffusion_dtod ξ)|`;
//! - *decay* `w ← (w - r) δ + r` towards the cell's reset value `r = reset + reset_dtod ξ`,
//!   with `δ = 1 - 1/L` for the cell's lifetime `L = lifetime (1 + lifetime_dtod ξ)` if
//!   `L > 1`, else `δ = 0` (one update resets the weight to `r`);
//!
//! each followed by clipping to the cell's bounds, then the write noise is redrawn. Both are
//! off at 0 (aihwkit's defaults), and then draw nothing, at fabrication or per update, so
//! devices without them give the same numbers as before they were modelled. The per-cell
//! values are drawn at fabrication after the step scales, diffusion first (aihwkit's order);
//! the reset value and lifetime only with `lifetime > 0`.
//!
//! On a tile each weight is a differential pair of such cells (`G+ - G-`), not one aihwkit
//! device: decay pulls both cells towards their reset value, so the pair's weight decays
//! towards 0 (by `δ` per update when both cells share `δ` and `r`), and the pair's weight
//! diffuses with the variance of two cells.
//!
//! Not modelled (yet): the reference devices of the
//! `...ReferenceDevice` classes, the reset operation itself (`reset_std`, used by
//! aihwkit's refresh of one-sided unit cells; `reset` here is only the decay target), and
//! the `reverse_up`/`reverse_down` and log-normal `dw_min_dtod` options.
//!
//! **Write noise** (aihwkit's `write_noise_std`, in units of `dw_min`): pulses change the
//! hidden weight `w`; reads see `w + write_noise_std dw_min ξ`, redrawn at every write. Unlike
//! aihwkit, the seen weight is clipped to the cell's bounds, so a conductance never leaves
//! the cell's window.
//!
//! **Programming** ([`Device::program`]) sets the hidden weight to the target (clipped to
//! the cell's bounds) and draws the write noise, as aihwkit's `set_weights` does.
//!
//! **Reads** share the other models' blocks: power-law drift `G(t) = G (t/t0)^-drift_nu`
//! ([`cell::power_law_drift_factor`], off with `drift_nu = 0`), Gaussian read noise of
//! standard deviation `read_noise_rel G(t)` (as the RRAM model), stuck cells at their bounds.

use super::cell;
use super::params::{
    ParamError, all_non_negative, all_positive, finite, non_negative, ordered, positive,
    stuck_fractions,
};
use super::sampling::{scaled_normal, standard_normal};
use super::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Most nominal pulses [`PulsedDevice::pulses_across_window`] reports (keeps pulse trains of
/// devices with very fine steps bounded).
pub const MAX_PULSES_ACROSS_WINDOW: u32 = 100_000;

/// Parameters every step-model family shares (aihwkit's `PulsedDevice`), plus the
/// conductance window, read noise, drift, faults and the pulse used for energy accounting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulsedParams {
    /// Conductance of the nominal device at `w_min`, siemens.
    pub g_min_s: f64,
    /// Conductance of the nominal device at `w_max`, siemens.
    pub g_max_s: f64,
    /// Nominal lower bound, weight units (at most 0).
    pub w_min: f64,
    /// Nominal upper bound, weight units (at least 0).
    pub w_max: f64,
    /// Device-to-device spread of `w_min`, relative to it.
    pub w_min_dtod: f64,
    /// Device-to-device spread of `w_max`, relative to it.
    pub w_max_dtod: f64,
    /// Mean step of one pulse, weight units.
    pub dw_min: f64,
    /// Device-to-device spread of the step, relative to `dw_min`.
    pub dw_min_dtod: f64,
    /// Cycle-to-cycle spread of the step, relative to the step (or to `dw_min` with additive
    /// noise).
    pub dw_min_std: f64,
    /// Systematic up/down asymmetry of the step, in units of `dw_min` (|up_down| < 1).
    pub up_down: f64,
    /// Device-to-device spread of the up/down asymmetry, in units of `dw_min`.
    pub up_down_dtod: f64,
    /// Write noise of the seen weight, in units of `dw_min`.
    pub write_noise_std: f64,
    /// Read noise: standard deviation as a fraction of the conductance read.
    pub read_noise_rel: f64,
    /// Power-law drift exponent nu of `G(t) = G (t/t0)^-nu` (0 = no drift).
    pub drift_nu: f64,
    /// Drift reference time t0, seconds.
    pub drift_t0_s: f64,
    /// Probability that a cell is stuck at its upper bound at fabrication.
    pub p_stuck_lrs: f64,
    /// Probability that a cell is stuck at its lower bound at fabrication.
    pub p_stuck_hrs: f64,
    /// Amplitude of the nominal pulse, volts (for energy accounting).
    pub pulse_amplitude_v: f64,
    /// Width of the nominal pulse, seconds.
    pub pulse_width_s: f64,
    /// Standard deviation of the weight's Gaussian random walk per update of the tile
    /// (aihwkit's `diffusion`), weight units; 0 = none.
    #[serde(default)]
    pub diffusion: f64,
    /// Device-to-device spread of `diffusion`, relative to it.
    #[serde(default)]
    pub diffusion_dtod: f64,
    /// Decay time in updates of the tile (aihwkit's `lifetime`, one over the decay rate):
    /// each update moves the weight towards the reset value by the fraction 1/lifetime;
    /// 0 = no decay.
    #[serde(default)]
    pub lifetime: f64,
    /// Device-to-device spread of `lifetime`, relative to it.
    #[serde(default)]
    pub lifetime_dtod: f64,
    /// Reset value the weight decays towards, weight units (aihwkit's `reset`).
    #[serde(default)]
    pub reset: f64,
    /// Device-to-device spread of `reset`, weight units (additive, aihwkit's `reset_dtod`).
    #[serde(default)]
    pub reset_dtod: f64,
}

/// Parameters of the linear-step family (aihwkit's `LinearStepDevice`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearStepParams {
    /// Relative decrease γ⁺ of the up step from w = 0 to the upper reference bound.
    pub gamma_up: f64,
    /// Relative decrease γ⁻ of the down step from w = 0 to the lower reference bound.
    pub gamma_down: f64,
    /// Device-to-device spread of `gamma_up` (absolute).
    pub gamma_up_dtod: f64,
    /// Device-to-device spread of `gamma_down` (absolute).
    pub gamma_down_dtod: f64,
    /// Keep the sign of a drawn γ (steps may grow towards a bound) instead of its magnitude.
    pub allow_increasing: bool,
    /// Use the nominal bounds `w_max`/`w_min` as slope reference instead of the cell's.
    pub mean_bound_reference: bool,
    /// Multiplicative cycle-to-cycle noise (true) or additive noise of `s_d dw_min_std` (false).
    pub mult_noise: bool,
}

/// Parameters of the soft-bounds family (aihwkit's `SoftBoundsDevice`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftBoundsParams {
    /// Multiplicative cycle-to-cycle noise (true) or additive noise of `s_d dw_min_std` (false).
    pub mult_noise: bool,
}

/// Parameters of the exponential-step family (aihwkit's `ExpStepDevice`; aihwkit's names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpStepParams {
    /// Factor `A_up` of the up step.
    #[serde(rename = "A_up")]
    pub a_up: f64,
    /// Factor `A_down` of the down step.
    #[serde(rename = "A_down")]
    pub a_down: f64,
    /// Exponent `gamma_up` of the up step.
    pub gamma_up: f64,
    /// Exponent `gamma_down` of the down step.
    pub gamma_down: f64,
    /// Global slope `a` of `z = 2 a w / (b_max - b_min) + b`.
    pub a: f64,
    /// Global offset `b` of `z`.
    pub b: f64,
    /// State-independent part of the cycle-to-cycle noise, weight units (times
    /// `dw_min_std`; 0 with `dw_min_std_slope` = 0 gives multiplicative noise).
    pub dw_min_std_add: f64,
    /// Part of the cycle-to-cycle noise growing with |w| (times `dw_min_std`).
    pub dw_min_std_slope: f64,
}

/// Parameters of the power-step family (aihwkit's `PowStepDevice`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowStepParams {
    /// Exponent γ of the relative distance to the bound.
    pub pow_gamma: f64,
    /// Device-to-device spread of γ, relative to it.
    pub pow_gamma_dtod: f64,
    /// Up/down asymmetry of γ, relative to it.
    pub pow_up_down: f64,
    /// Device-to-device spread of the up/down asymmetry of γ, relative to it.
    pub pow_up_down_dtod: f64,
}

/// Parameters of the piecewise-step family (aihwkit's `PiecewiseStepDevice`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiecewiseStepParams {
    /// Up step, in units of the cell's `s_up`, at nodes spread evenly from `b_min` to `b_max`.
    pub piecewise_up: Vec<f64>,
    /// Down step, in units of the cell's `s_down`, at the same nodes.
    pub piecewise_down: Vec<f64>,
}

/// A step-model family with its own parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum StepFamily {
    /// Constant step up to hard bounds.
    ConstantStep,
    /// Step falling linearly with the weight.
    LinearStep(LinearStepParams),
    /// Step falling linearly to zero at each bound.
    SoftBounds(SoftBoundsParams),
    /// Exponential dependence of the step on the weight.
    ExpStep(ExpStepParams),
    /// Power of the relative distance to the bound.
    PowStep(PowStepParams),
    /// Measured step table, interpolated.
    PiecewiseStep(PiecewiseStepParams),
}

/// Model names of the families, as written in preset files.
pub const FAMILIES: [&str; 6] = [
    "constant_step",
    "linear_step",
    "soft_bounds",
    "exp_step",
    "pow_step",
    "piecewise_step",
];

impl StepFamily {
    /// Model name as written in preset files (one of [`FAMILIES`]).
    pub fn name(&self) -> &'static str {
        match self {
            StepFamily::ConstantStep => FAMILIES[0],
            StepFamily::LinearStep(_) => FAMILIES[1],
            StepFamily::SoftBounds(_) => FAMILIES[2],
            StepFamily::ExpStep(_) => FAMILIES[3],
            StepFamily::PowStep(_) => FAMILIES[4],
            StepFamily::PiecewiseStep(_) => FAMILIES[5],
        }
    }

    /// The parameter names that belong to family `name` (not to [`PulsedParams`]).
    pub fn fields(name: &str) -> &'static [&'static str] {
        match name {
            "linear_step" => &[
                "gamma_up",
                "gamma_down",
                "gamma_up_dtod",
                "gamma_down_dtod",
                "allow_increasing",
                "mean_bound_reference",
                "mult_noise",
            ],
            "soft_bounds" => &["mult_noise"],
            "exp_step" => &[
                "A_up",
                "A_down",
                "gamma_up",
                "gamma_down",
                "a",
                "b",
                "dw_min_std_add",
                "dw_min_std_slope",
            ],
            "pow_step" => &[
                "pow_gamma",
                "pow_gamma_dtod",
                "pow_up_down",
                "pow_up_down_dtod",
            ],
            "piecewise_step" => &["piecewise_up", "piecewise_down"],
            _ => &[],
        }
    }

    /// The family's device-to-device spreads (scaled with the other variability parameters).
    pub fn variability_fields(name: &str) -> &'static [&'static str] {
        match name {
            "linear_step" => &["gamma_up_dtod", "gamma_down_dtod"],
            "pow_step" => &["pow_gamma_dtod", "pow_up_down_dtod"],
            _ => &[],
        }
    }

    /// Whether the cycle-to-cycle noise is additive (`s_d dw_min_std ξ`) rather than
    /// multiplicative.
    fn additive_noise(&self) -> bool {
        match self {
            StepFamily::LinearStep(p) => !p.mult_noise,
            StepFamily::SoftBounds(p) => !p.mult_noise,
            _ => false,
        }
    }

    fn validate(&self) -> Result<(), ParamError> {
        match self {
            StepFamily::ConstantStep | StepFamily::SoftBounds(_) => Ok(()),
            StepFamily::LinearStep(p) => {
                finite("gamma_up", p.gamma_up)?;
                finite("gamma_down", p.gamma_down)?;
                all_non_negative(&[
                    ("gamma_up_dtod", p.gamma_up_dtod),
                    ("gamma_down_dtod", p.gamma_down_dtod),
                ])
            }
            StepFamily::ExpStep(p) => {
                [
                    ("A_up", p.a_up),
                    ("A_down", p.a_down),
                    ("gamma_up", p.gamma_up),
                    ("gamma_down", p.gamma_down),
                    ("a", p.a),
                    ("b", p.b),
                ]
                .iter()
                .try_for_each(|&(field, v)| finite(field, v))?;
                all_non_negative(&[
                    ("dw_min_std_add", p.dw_min_std_add),
                    ("dw_min_std_slope", p.dw_min_std_slope),
                ])
            }
            StepFamily::PowStep(p) => {
                finite("pow_up_down", p.pow_up_down)?;
                all_non_negative(&[
                    ("pow_gamma", p.pow_gamma),
                    ("pow_gamma_dtod", p.pow_gamma_dtod),
                    ("pow_up_down_dtod", p.pow_up_down_dtod),
                ])
            }
            StepFamily::PiecewiseStep(p) => {
                step_table("piecewise_up", &p.piecewise_up)?;
                step_table("piecewise_down", &p.piecewise_down)?;
                if p.piecewise_up.len() == p.piecewise_down.len() {
                    Ok(())
                } else {
                    Err(ParamError {
                        field: "piecewise_down".to_string(),
                        message: format!(
                            "must have as many nodes as piecewise_up ({}, got {})",
                            p.piecewise_up.len(),
                            p.piecewise_down.len()
                        ),
                    })
                }
            }
        }
    }
}

/// A step table: at least one node, every node finite and >= 0, not all zero.
fn step_table(field: &str, nodes: &[f64]) -> Result<(), ParamError> {
    for (i, &v) in nodes.iter().enumerate() {
        non_negative(&format!("{field}[{i}]"), v)?;
    }
    if nodes.iter().any(|&v| v > 0.0) {
        Ok(())
    } else {
        Err(ParamError {
            field: field.to_string(),
            message: "needs at least one node and one non-zero step (got none): a device \
                      that never moves"
                .to_string(),
        })
    }
}

/// The up/down biases `(β_up, β_down)` of an asymmetry `up_down`, as aihwkit's C++ code
/// applies them: the positive part shortens the down direction, the negative part the up.
fn up_down_biases(up_down: f64) -> (f64, f64) {
    if up_down > 0.0 {
        (0.0, -up_down)
    } else {
        (up_down, 0.0)
    }
}

/// Reference time of the drift law of [`PulsedParams::noise_free`], seconds (unused there:
/// its drift exponent is 0).
pub const NOISE_FREE_DRIFT_T0_S: f64 = 1.0;

impl PulsedParams {
    /// A nominal device without any randomness or imperfection: the window `[g_min_s,
    /// g_max_s]` (siemens) over the weights `[w_min, w_max]`, the step `dw_min`, and the
    /// nominal pulse `(amplitude V, width s)` used for energy accounting; every
    /// device-to-device spread, cycle-to-cycle and write noise, read noise, drift, fault
    /// rate and asymmetry is 0. Change the fields a use needs with struct update syntax,
    /// e.g. `PulsedParams { dw_min_std: 0.3, ..PulsedParams::noise_free(...) }`.
    pub fn noise_free(
        (g_min_s, g_max_s): (f64, f64),
        (w_min, w_max): (f64, f64),
        dw_min: f64,
        (pulse_amplitude_v, pulse_width_s): (f64, f64),
    ) -> Self {
        Self {
            g_min_s,
            g_max_s,
            w_min,
            w_max,
            w_min_dtod: 0.0,
            w_max_dtod: 0.0,
            dw_min,
            dw_min_dtod: 0.0,
            dw_min_std: 0.0,
            up_down: 0.0,
            up_down_dtod: 0.0,
            write_noise_std: 0.0,
            read_noise_rel: 0.0,
            drift_nu: 0.0,
            drift_t0_s: NOISE_FREE_DRIFT_T0_S,
            p_stuck_lrs: 0.0,
            p_stuck_hrs: 0.0,
            pulse_amplitude_v,
            pulse_width_s,
            diffusion: 0.0,
            diffusion_dtod: 0.0,
            lifetime: 0.0,
            lifetime_dtod: 0.0,
            reset: 0.0,
            reset_dtod: 0.0,
        }
    }

    /// Check every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        non_negative("g_min_s", self.g_min_s)?;
        positive("g_max_s", self.g_max_s)?;
        ordered("g_min_s", self.g_min_s, "g_max_s", self.g_max_s)?;
        finite("w_min", self.w_min)?;
        finite("w_max", self.w_max)?;
        ordered("w_min", self.w_min, "w_max", self.w_max)?;
        if self.w_min > 0.0 || self.w_max < 0.0 {
            return Err(ParamError {
                field: "w_min".to_string(),
                message: format!(
                    "[w_min, w_max] = [{}, {}] must contain 0 (aihwkit's convention)",
                    self.w_min, self.w_max
                ),
            });
        }
        positive("dw_min", self.dw_min)?;
        finite("up_down", self.up_down)?;
        if self.up_down.abs() >= 1.0 {
            return Err(ParamError {
                field: "up_down".to_string(),
                message: format!(
                    "must be within (-1, 1) (got {}): the shorter direction's step would vanish",
                    self.up_down
                ),
            });
        }
        all_non_negative(&[
            ("w_min_dtod", self.w_min_dtod),
            ("w_max_dtod", self.w_max_dtod),
            ("dw_min_dtod", self.dw_min_dtod),
            ("dw_min_std", self.dw_min_std),
            ("up_down_dtod", self.up_down_dtod),
            ("write_noise_std", self.write_noise_std),
            ("read_noise_rel", self.read_noise_rel),
            ("drift_nu", self.drift_nu),
            ("diffusion", self.diffusion),
            ("diffusion_dtod", self.diffusion_dtod),
            ("lifetime", self.lifetime),
            ("lifetime_dtod", self.lifetime_dtod),
            ("reset_dtod", self.reset_dtod),
        ])?;
        finite("reset", self.reset)?;
        stuck_fractions(self.p_stuck_lrs, self.p_stuck_hrs)?;
        all_positive(&[
            ("drift_t0_s", self.drift_t0_s),
            ("pulse_amplitude_v", self.pulse_amplitude_v),
            ("pulse_width_s", self.pulse_width_s),
        ])
    }

    /// Siemens per weight unit of the map from weights to conductances.
    fn siemens_per_weight(&self) -> f64 {
        (self.g_max_s - self.g_min_s) / (self.w_max - self.w_min)
    }
}

/// A cell's own parameters of its family's step shape, drawn at fabrication.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CellShape {
    /// No per-device shape parameter (constant, exponential and piecewise steps).
    Plain,
    /// Linear-step and soft-bounds slopes: the step changes by `slope w` (per weight unit).
    Slopes {
        /// Slope of the up step, `-γ⁺ s_up / w_ref⁺`.
        up: f64,
        /// Slope of the down step, `-γ⁻ s_down / w_ref⁻`.
        down: f64,
    },
    /// Power-step exponents.
    Exponents {
        /// Exponent γ⁺ of the up step.
        up: f64,
        /// Exponent γ⁻ of the down step.
        down: f64,
    },
}

/// One pulsed cell (weights in weight units, see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct PulsedState {
    /// Hidden weight that pulses change.
    pub w: f64,
    /// Weight that reads see: `w` plus the write noise of the last write.
    pub w_seen: f64,
    /// This cell's lower bound `b_min`.
    pub b_min: f64,
    /// This cell's upper bound `b_max`.
    pub b_max: f64,
    /// This cell's up step scale `s_up`.
    pub scale_up: f64,
    /// This cell's down step scale `s_down`.
    pub scale_down: f64,
    /// This cell's family shape parameters.
    pub shape: CellShape,
    /// Stuck-at fault, if any.
    pub stuck: Option<StuckAt>,
    /// This cell's diffusion rate ρ, weight units per update (0 = none).
    pub diffusion_rate: f64,
    /// This cell's decay factor δ per update (1 = no decay).
    pub decay_scale: f64,
    /// This cell's reset value r, the weight it decays towards.
    pub reset_bias: f64,
}

/// A pulsed device of one step-model family.
#[derive(Clone, Debug, PartialEq)]
pub struct PulsedDevice {
    /// Parameters shared by the families.
    pub params: PulsedParams,
    /// The step model and its own parameters.
    pub family: StepFamily,
}

impl PulsedDevice {
    /// A device of `family` with these (already validated, see [`PulsedDevice::validate`])
    /// parameters.
    pub fn new(params: PulsedParams, family: StepFamily) -> Self {
        Self { params, family }
    }

    /// Check the shared and the family's parameters; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.params.validate()?;
        self.family.validate()
    }

    /// Conductance of weight `w`, siemens.
    pub fn conductance_of(&self, w: f64) -> f64 {
        let p = &self.params;
        p.g_min_s + (w - p.w_min) * p.siemens_per_weight()
    }

    /// Weight of conductance `g_s`.
    pub fn weight_of(&self, g_s: f64) -> f64 {
        let p = &self.params;
        p.w_min + (g_s - p.g_min_s) / p.siemens_per_weight()
    }

    /// Nominal pulses of size `dw_min` across the nominal window, `(w_max - w_min) / dw_min`.
    pub fn pulses_across_window(&self) -> u32 {
        let p = &self.params;
        ((p.w_max - p.w_min) / p.dw_min)
            .ceil()
            .clamp(1.0, f64::from(MAX_PULSES_ACROSS_WINDOW)) as u32
    }

    /// The cell's bounds: nominal ones with their spread, made consistent (0 inside), the
    /// lower one raised to the weight of 0 S.
    fn draw_bounds<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        let p = &self.params;
        let b_max = p.w_max * (1.0 + scaled_normal(p.w_max_dtod, rng));
        let b_min = p.w_min * (1.0 + scaled_normal(p.w_min_dtod, rng));
        let (b_min, b_max) = if b_min > b_max {
            (b_max, b_min)
        } else {
            (b_min, b_max)
        };
        ((-b_min.abs()).max(self.weight_of(0.0)), b_max.abs())
    }

    /// The cell's step scales `(s_up, s_down)` with their spread and asymmetry.
    fn draw_scales<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64) {
        let p = &self.params;
        let gain = 1.0 + scaled_normal(p.dw_min_dtod, rng);
        let r = scaled_normal(p.up_down_dtod, rng);
        let (bias_up, bias_down) = up_down_biases(p.up_down);
        (
            ((bias_up + gain + r) * p.dw_min).abs(),
            ((bias_down + gain - r) * p.dw_min).abs(),
        )
    }

    /// The cell's diffusion rate, decay factor and reset value (see the module
    /// documentation); nothing is drawn for a process that is off.
    fn draw_evolution<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, f64, f64) {
        let p = &self.params;
        let diffusion_rate = if p.diffusion > 0.0 {
            (p.diffusion * (1.0 + scaled_normal(p.diffusion_dtod, rng))).abs()
        } else {
            0.0
        };
        if p.lifetime <= 0.0 {
            return (diffusion_rate, 1.0, p.reset);
        }
        let reset_bias = p.reset + scaled_normal(p.reset_dtod, rng);
        let lifetime = p.lifetime * (1.0 + scaled_normal(p.lifetime_dtod, rng));
        let decay_scale = if lifetime > 1.0 {
            1.0 - 1.0 / lifetime
        } else {
            0.0
        };
        (diffusion_rate, decay_scale, reset_bias)
    }

    /// The cell's family shape parameters.
    fn draw_shape<R: Rng + ?Sized>(
        &self,
        bounds: (f64, f64),
        scales: (f64, f64),
        rng: &mut R,
    ) -> CellShape {
        let (b_min, b_max) = bounds;
        let (s_up, s_down) = scales;
        match &self.family {
            StepFamily::LinearStep(f) => {
                let draw = |gamma: f64, dtod: f64, rng: &mut R| {
                    let g = gamma + scaled_normal(dtod, rng);
                    if f.allow_increasing { g } else { g.abs() }
                };
                let gamma_up = draw(f.gamma_up, f.gamma_up_dtod, rng);
                let gamma_down = draw(f.gamma_down, f.gamma_down_dtod, rng);
                let (ref_down, ref_up) = if f.mean_bound_reference {
                    (self.params.w_min, self.params.w_max)
                } else {
                    (b_min, b_max)
                };
                CellShape::Slopes {
                    up: slope(gamma_up, s_up, ref_up),
                    down: slope(gamma_down, s_down, ref_down),
                }
            }
            StepFamily::SoftBounds(_) => CellShape::Slopes {
                up: slope(1.0, s_up, b_max),
                down: slope(1.0, s_down, b_min),
            },
            StepFamily::PowStep(f) => {
                let gain = 1.0 + scaled_normal(f.pow_gamma_dtod, rng);
                let r = scaled_normal(f.pow_up_down_dtod, rng);
                let (bias_up, bias_down) = up_down_biases(f.pow_up_down);
                CellShape::Exponents {
                    up: ((bias_up + gain + r) * f.pow_gamma).abs(),
                    down: ((bias_down + gain - r) * f.pow_gamma).abs(),
                }
            }
            StepFamily::ConstantStep | StepFamily::ExpStep(_) | StepFamily::PiecewiseStep(_) => {
                CellShape::Plain
            }
        }
    }

    /// Noise-free size (>= 0 for a saturating device) of the step a `polarity` pulse makes
    /// at weight `w` on `state`'s cell, weight units, before clipping to the bounds.
    pub fn mean_step(&self, state: &PulsedState, polarity: Polarity, w: f64) -> f64 {
        let up = polarity == Polarity::Set;
        let scale = if up { state.scale_up } else { state.scale_down };
        let (b_min, b_max) = (state.b_min, state.b_max);
        let range = b_max - b_min;
        match (&self.family, state.shape) {
            (
                StepFamily::LinearStep(_) | StepFamily::SoftBounds(_),
                CellShape::Slopes { up: su, down: sd },
            ) => {
                if up {
                    scale + su * w
                } else {
                    scale + sd * w
                }
            }
            (StepFamily::ExpStep(f), _) => {
                let z = 2.0 * f.a * w / range + f.b;
                let y = if up {
                    1.0 - f.a_up * (f.gamma_up * z).exp()
                } else {
                    1.0 - f.a_down * (-f.gamma_down * z).exp()
                };
                scale * y.max(0.0)
            }
            (StepFamily::PowStep(_), CellShape::Exponents { up: gu, down: gd }) => {
                let omega = (b_max - w) / range;
                if up {
                    scale * omega.powf(gu)
                } else {
                    scale * (1.0 - omega).powf(gd)
                }
            }
            (StepFamily::PiecewiseStep(f), _) => {
                let nodes = if up {
                    &f.piecewise_up
                } else {
                    &f.piecewise_down
                };
                scale * interpolate(nodes, (w - b_min) / range)
            }
            _ => scale,
        }
    }

    /// One pulse's step with cycle-to-cycle noise, signed, weight units.
    fn noisy_step<R: Rng + ?Sized>(
        &self,
        state: &PulsedState,
        polarity: Polarity,
        rng: &mut R,
    ) -> f64 {
        let mean = self.mean_step(state, polarity, state.w);
        let noise = scaled_normal(self.params.dw_min_std, rng);
        let step = match &self.family {
            family if family.additive_noise() => {
                let scale = match polarity {
                    Polarity::Set => state.scale_up,
                    Polarity::Reset => state.scale_down,
                };
                mean + scale * noise
            }
            StepFamily::ExpStep(f) if f.dw_min_std_add > 0.0 || f.dw_min_std_slope > 0.0 => {
                mean + noise * (mean + f.dw_min_std_add + f.dw_min_std_slope * state.w.abs())
            }
            _ => mean * (1.0 + noise),
        };
        match polarity {
            Polarity::Set => step,
            Polarity::Reset => -step,
        }
    }

    /// Redraw the write noise of the weight reads see.
    fn draw_write_noise<R: Rng + ?Sized>(&self, state: &mut PulsedState, rng: &mut R) {
        let sigma = self.params.write_noise_std * self.params.dw_min;
        state.w_seen = (state.w + scaled_normal(sigma, rng)).clamp(state.b_min, state.b_max);
    }

    fn one_pulse_write(&self, g_s: f64) -> WriteReport {
        let pulse = self.nominal_pulse(Polarity::Set);
        cell::one_pulse_write(&pulse, cell::joule_energy_j(&pulse, g_s))
    }
}

/// Slope `-γ s / w_ref` of a linear step (0 for a zero reference, as aihwkit).
fn slope(gamma: f64, scale: f64, w_ref: f64) -> f64 {
    if w_ref == 0.0 {
        0.0
    } else {
        -gamma * scale / w_ref
    }
}

/// Linear interpolation of `nodes` spread evenly over [0, 1] at `x` (clamped to the table).
pub fn interpolate(nodes: &[f64], x: f64) -> f64 {
    let sections = nodes.len().saturating_sub(1);
    if sections == 0 || !x.is_finite() {
        return nodes.first().copied().unwrap_or(1.0);
    }
    let scaled = (x * sections as f64).max(0.0);
    let i = (scaled.floor() as usize).min(sections - 1);
    let q = (scaled - i as f64).min(1.0);
    (1.0 - q) * nodes[i] + q * nodes[i + 1]
}

impl Device for PulsedDevice {
    type State = PulsedState;

    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> PulsedState {
        let (b_min, b_max) = self.draw_bounds(rng);
        let (scale_up, scale_down) = self.draw_scales(rng);
        let (diffusion_rate, decay_scale, reset_bias) = self.draw_evolution(rng);
        let shape = self.draw_shape((b_min, b_max), (scale_up, scale_down), rng);
        let stuck = cell::draw_stuck(self.params.p_stuck_lrs, self.params.p_stuck_hrs, rng);
        PulsedState {
            diffusion_rate,
            decay_scale,
            reset_bias,
            w: b_min,
            w_seen: b_min,
            b_min,
            b_max,
            scale_up,
            scale_down,
            shape,
            stuck,
        }
    }

    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut PulsedState,
        g_target_s: f64,
        rng: &mut R,
    ) -> WriteReport {
        let report = self.one_pulse_write(self.conductance_at(state, 0.0));
        if state.stuck.is_none() {
            state.w = self.weight_of(g_target_s).clamp(state.b_min, state.b_max);
            self.draw_write_noise(state, rng);
        }
        report
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut PulsedState,
        pulse: &Pulse,
        rng: &mut R,
    ) -> PulseReport {
        let energy_j = cell::joule_energy_j(pulse, self.conductance_at(state, 0.0));
        if state.stuck.is_some() || state.b_max <= state.b_min {
            return PulseReport {
                switched: false,
                energy_j,
            };
        }
        let before = state.w;
        let step = self.noisy_step(state, pulse.polarity, rng);
        state.w = (state.w + step).clamp(state.b_min, state.b_max);
        self.draw_write_noise(state, rng);
        PulseReport {
            switched: state.w != before,
            energy_j,
        }
    }

    fn evolves_per_update(&self) -> bool {
        self.params.diffusion > 0.0 || self.params.lifetime > 0.0
    }

    /// Diffusion, then decay (see the module documentation), then a new draw of the write
    /// noise; stuck cells do not move.
    fn after_update<R: Rng + ?Sized>(&self, state: &mut PulsedState, rng: &mut R) {
        if !self.evolves_per_update() || state.stuck.is_some() || state.b_max < state.b_min {
            return;
        }
        let (b_min, b_max) = (state.b_min, state.b_max);
        if self.params.diffusion > 0.0 {
            state.w = (state.w + state.diffusion_rate * standard_normal(rng)).clamp(b_min, b_max);
        }
        if self.params.lifetime > 0.0 {
            let r = state.reset_bias;
            state.w = ((state.w - r) * state.decay_scale + r).clamp(b_min, b_max);
        }
        self.draw_write_noise(state, rng);
    }

    fn nominal_pulse(&self, polarity: Polarity) -> Pulse {
        Pulse {
            polarity,
            amplitude_v: self.params.pulse_amplitude_v,
            width_s: self.params.pulse_width_s,
        }
    }

    /// `dw_min` in siemens: noise-free, so that heavy cycle-to-cycle and write noise (up to
    /// 75 `dw_min` in aihwkit's ReRAM presets) does not inflate the step a tile scales its
    /// pulse trains by.
    fn declared_step_s(&self) -> Option<f64> {
        Some(self.params.dw_min * self.params.siemens_per_weight())
    }

    fn conductance_at(&self, state: &PulsedState, t_s: f64) -> f64 {
        let w = match state.stuck {
            Some(StuckAt::Lrs) => state.b_max,
            Some(StuckAt::Hrs) => state.b_min,
            None => state.w_seen,
        };
        let p = &self.params;
        let drift = match state.stuck {
            Some(_) => 1.0,
            None => cell::power_law_drift_factor(p.drift_nu, t_s, p.drift_t0_s),
        };
        self.conductance_of(w).max(0.0) * drift
    }

    fn read_noise_sigma(&self, state: &PulsedState, t_s: f64) -> f64 {
        self.params.read_noise_rel * self.conductance_at(state, t_s)
    }

    fn g_window(&self, state: &PulsedState) -> (f64, f64) {
        (
            self.conductance_of(state.b_min).max(0.0),
            self.conductance_of(state.b_max),
        )
    }

    fn nominal_window(&self) -> (f64, f64) {
        (self.params.g_min_s, self.params.g_max_s)
    }

    fn set_stuck(&self, state: &mut PulsedState, stuck: Option<StuckAt>) {
        state.stuck = stuck;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a family's parameters serialise to, in order.
    fn keys<P: Serialize>(params: &P) -> Vec<String> {
        toml::Table::try_from(params)
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// `StepFamily::fields` lists exactly the fields of each family's parameter struct, so the
    /// preset loader splits a table without losing or stealing a parameter.
    #[test]
    fn family_field_lists_match_the_parameter_structs() {
        let linear = LinearStepParams {
            gamma_up: 0.1,
            gamma_down: 0.1,
            gamma_up_dtod: 0.0,
            gamma_down_dtod: 0.0,
            allow_increasing: false,
            mean_bound_reference: true,
            mult_noise: true,
        };
        let exp = ExpStepParams {
            a_up: 1.0,
            a_down: 1.0,
            gamma_up: 1.0,
            gamma_down: 1.0,
            a: 1.0,
            b: 0.0,
            dw_min_std_add: 0.0,
            dw_min_std_slope: 0.0,
        };
        let pow = PowStepParams {
            pow_gamma: 1.0,
            pow_gamma_dtod: 0.0,
            pow_up_down: 0.0,
            pow_up_down_dtod: 0.0,
        };
        let piecewise = PiecewiseStepParams {
            piecewise_up: vec![1.0],
            piecewise_down: vec![1.0],
        };
        let soft = SoftBoundsParams { mult_noise: true };
        let mut by_family = [
            ("linear_step", keys(&linear)),
            ("soft_bounds", keys(&soft)),
            ("exp_step", keys(&exp)),
            ("pow_step", keys(&pow)),
            ("piecewise_step", keys(&piecewise)),
            ("constant_step", Vec::new()),
        ];
        for (name, fields) in &mut by_family {
            fields.sort();
            assert_eq!(*fields, sorted(StepFamily::fields(name)), "{name}");
            for v in StepFamily::variability_fields(name) {
                assert!(fields.contains(&v.to_string()), "{name}: {v}");
            }
        }
    }

    /// Nodes sit evenly over [0, 1]; between them the value is linear; outside, the end node.
    #[test]
    fn interpolation_is_linear_between_even_nodes() {
        let nodes = [1.0, 0.5, 0.0];
        assert_eq!(interpolate(&nodes, 0.0), 1.0);
        assert!((interpolate(&nodes, 0.25) - 0.75).abs() < 1e-12);
        assert!((interpolate(&nodes, 0.75) - 0.25).abs() < 1e-12);
        assert_eq!(interpolate(&nodes, 1.0), 0.0);
        assert_eq!(interpolate(&nodes, -3.0), 1.0);
        assert_eq!(interpolate(&nodes, 7.0), 0.0);
        assert_eq!(interpolate(&[0.7], 0.3), 0.7);
    }

    /// aihwkit's up/down bias: the positive part shortens down steps, the negative part up.
    #[test]
    fn up_down_bias_shortens_one_direction() {
        assert_eq!(up_down_biases(0.25), (0.0, -0.25));
        assert_eq!(up_down_biases(-0.25), (-0.25, 0.0));
    }
}
