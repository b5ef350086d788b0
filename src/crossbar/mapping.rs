//! Weight to conductance mapping: differential pairs, 2T2R binary/ternary pairs and bit
//! slicing, and the inverse used to read effective weights back.
//!
//! Every weight is stored on a pair of devices per *plane* (G+ for the positive part,
//! G- for the negative part); a plane is one bit slice (one plane without slicing). With
//! the nominal window [g_min, g_max] and g_unit = g_max - g_min, plane s contributes
//! c_s * (G+ - G-) / g_unit to the weight, where c_s is the plane's digital weight
//! ([`Mapping::plane_factors`]):
//! - analog: G+ = g_min + g_unit |w| / w_max for w > 0 (G- = g_min), and mirrored for
//!   w < 0; c_0 = w_max;
//! - reference: G+ = g_min + g_unit (1 + w / w_max) / 2 and G- = g_min + g_unit / 2 (a
//!   reference device in the middle of the window); c_0 = 2 w_max;
//! - bit slicing with S slices of b bits (L = 2^b levels per device): |w| is rounded to
//!   q = round(|w| / w_max (L^S - 1)), written in base L as digits d_s, and slice s holds
//!   G = g_min + g_unit d_s / (L - 1) on the weight's sign side;
//!   c_s = w_max (L - 1) L^s / (L^S - 1);
//! - binary / ternary (2T2R): +1 = (LRS, HRS), -1 = (HRS, LRS), ternary 0 = (HRS, HRS),
//!   programmed with the device's binary operation; c_0 = w_max.

use super::config::{MappingConfig, WeightEncoding};

/// What to write into one pair of devices of one plane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PairTarget {
    /// Analog targets as fractions of the nominal window, in [0, 1]: G = g_min + f g_unit.
    Analog {
        /// Fraction for the positive device G+.
        pos: f64,
        /// Fraction for the negative device G-.
        neg: f64,
    },
    /// Binary states: `true` = low-resistance (high-conductance) state.
    Binary {
        /// State of the positive device G+.
        pos_high: bool,
        /// State of the negative device G-.
        neg_high: bool,
    },
}

/// A resolved mapping: the encoding plus the weight scale of one matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    encoding: WeightEncoding,
    w_max: f64,
    ternary_threshold: f64,
    /// (slices, levels per device) when bit slicing.
    slicing: Option<(u32, u32)>,
}

impl Mapping {
    /// Resolve `config` for a weight scale `w_max` (> 0).
    pub fn new(config: &MappingConfig, w_max: f64) -> Self {
        Self {
            encoding: config.encoding,
            w_max,
            ternary_threshold: config.ternary_threshold,
            slicing: config
                .bit_slicing
                .map(|s| (s.slices, 1u32 << s.bits_per_slice)),
        }
    }

    /// The weight that maps to the full conductance window.
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// The encoding.
    pub fn encoding(&self) -> WeightEncoding {
        self.encoding
    }

    /// Number of planes (bit slices; 1 without slicing).
    pub fn planes(&self) -> usize {
        self.slicing.map_or(1, |(s, _)| s as usize)
    }

    /// Digital weight c_s of each plane: w = sum_s c_s (G+_s - G-_s) / g_unit.
    pub fn plane_factors(&self) -> Vec<f64> {
        match self.slicing {
            None if self.encoding == WeightEncoding::Reference => vec![2.0 * self.w_max],
            None => vec![self.w_max],
            Some((slices, levels)) => {
                let l = f64::from(levels);
                let full = l.powi(slices as i32) - 1.0;
                (0..slices)
                    .map(|s| self.w_max * (l - 1.0) * l.powi(s as i32) / full)
                    .collect()
            }
        }
    }

    /// Encode weight `w` into one target per plane (`out.len() == self.planes()`).
    pub fn encode(&self, w: f64, out: &mut [PairTarget]) {
        match self.encoding {
            WeightEncoding::Analog => self.encode_analog(w, out),
            WeightEncoding::Reference => {
                out[0] = PairTarget::Analog {
                    pos: (0.5 + 0.5 * w / self.w_max).clamp(0.0, 1.0),
                    neg: 0.5,
                }
            }
            WeightEncoding::Binary => {
                out[0] = PairTarget::Binary {
                    pos_high: w >= 0.0,
                    neg_high: w < 0.0,
                }
            }
            WeightEncoding::Ternary => {
                let zero = w.abs() < self.ternary_threshold * self.w_max;
                out[0] = PairTarget::Binary {
                    pos_high: !zero && w > 0.0,
                    neg_high: !zero && w < 0.0,
                }
            }
        }
    }

    fn encode_analog(&self, w: f64, out: &mut [PairTarget]) {
        let magnitude = (w.abs() / self.w_max).min(1.0);
        let split = |f: f64| {
            if w >= 0.0 {
                PairTarget::Analog { pos: f, neg: 0.0 }
            } else {
                PairTarget::Analog { pos: 0.0, neg: f }
            }
        };
        match self.slicing {
            None => out[0] = split(magnitude),
            Some((slices, levels)) => {
                let full = u64::from(levels).pow(slices) - 1;
                let mut q = (magnitude * full as f64).round() as u64;
                let top = f64::from(levels - 1);
                for target in out.iter_mut().take(slices as usize) {
                    let digit = q % u64::from(levels);
                    q /= u64::from(levels);
                    *target = split(digit as f64 / top);
                }
            }
        }
    }

    /// The weight this mapping would ideally store for `w` (after clipping, rounding to
    /// slice levels, binarisation or ternarisation).
    pub fn ideal_weight(&self, w: f64) -> f64 {
        let mut targets = vec![PairTarget::Analog { pos: 0.0, neg: 0.0 }; self.planes()];
        self.encode(w, &mut targets);
        self.plane_factors()
            .iter()
            .zip(&targets)
            .map(|(c, t)| match *t {
                PairTarget::Analog { pos, neg } => c * (pos - neg),
                PairTarget::Binary { pos_high, neg_high } => {
                    c * (f64::from(u8::from(pos_high)) - f64::from(u8::from(neg_high)))
                }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossbar::config::BitSlicing;

    #[test]
    fn bit_slicing_round_trips_integer_levels() {
        // 2 slices of 2 bits: 16 magnitude levels 0..=15, w_max = 15 makes them integers.
        let config = MappingConfig {
            bit_slicing: Some(BitSlicing {
                slices: 2,
                bits_per_slice: 2,
            }),
            ..MappingConfig::default()
        };
        let mapping = Mapping::new(&config, 15.0);
        for w in -15..=15 {
            let back = mapping.ideal_weight(f64::from(w));
            assert!((back - f64::from(w)).abs() < 1e-12, "{w} -> {back}");
        }
    }

    /// The reference encoding spans [-w_max, w_max] with one device: w = 2 w_max (f - 1/2).
    #[test]
    fn reference_encoding_spans_the_window_with_one_device() {
        let config = MappingConfig {
            encoding: WeightEncoding::Reference,
            ..MappingConfig::default()
        };
        let mapping = Mapping::new(&config, 2.0);
        for w in [-2.0, -0.5, 0.0, 1.25, 2.0] {
            assert!((mapping.ideal_weight(w) - w).abs() < 1e-12, "{w}");
        }
        assert_eq!(mapping.ideal_weight(3.0), 2.0);
        let mut t = [PairTarget::Analog { pos: 0.0, neg: 0.0 }];
        mapping.encode(-2.0, &mut t);
        assert_eq!(t[0], PairTarget::Analog { pos: 0.0, neg: 0.5 });
    }

    #[test]
    fn ternary_threshold_zeroes_small_weights() {
        let config = MappingConfig {
            encoding: WeightEncoding::Ternary,
            ..MappingConfig::default()
        };
        let mapping = Mapping::new(&config, 1.0);
        assert_eq!(mapping.ideal_weight(0.3), 0.0);
        assert_eq!(mapping.ideal_weight(0.7), 1.0);
        assert_eq!(mapping.ideal_weight(-0.7), -1.0);
    }
}
