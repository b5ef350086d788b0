//! Uncertainty and calibration metrics of probabilistic classifiers: predictive entropy,
//! mutual information, expected calibration error with its reliability diagram, and the
//! area under the ROC curve of an uncertainty score used as an out-of-distribution detector.

use serde::Serialize;

/// Shannon entropy `-sum p ln p` of a probability vector, nats.
pub fn entropy(p: &[f64]) -> f64 {
    p.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum()
}

/// One bin of a reliability diagram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge of the confidence bin.
    pub lower: f64,
    /// Upper edge of the confidence bin.
    pub upper: f64,
    /// Mean confidence of the predictions in the bin (NaN when empty).
    pub confidence: f64,
    /// Accuracy of the predictions in the bin (NaN when empty).
    pub accuracy: f64,
    /// Predictions in the bin.
    pub count: usize,
}

/// Expected calibration error with `bins` equal-width confidence bins (Guo et al., ICML
/// 2017): `ECE = sum_b n_b / N |acc_b - conf_b|`, and the bins of the reliability diagram.
pub fn expected_calibration_error(
    confidence: &[f64],
    correct: &[bool],
    bins: usize,
) -> (f64, Vec<ReliabilityBin>) {
    let mut sum_conf = vec![0.0; bins];
    let mut sum_correct = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let b = ((c * bins as f64) as usize).min(bins - 1);
        sum_conf[b] += c;
        sum_correct[b] += f64::from(u8::from(ok));
        count[b] += 1;
    }
    let n = confidence.len() as f64;
    let mut ece = 0.0;
    let table = (0..bins)
        .map(|b| {
            let k = count[b] as f64;
            let (conf, acc) = (sum_conf[b] / k, sum_correct[b] / k);
            if count[b] > 0 {
                ece += k / n * (acc - conf).abs();
            }
            ReliabilityBin {
                lower: b as f64 / bins as f64,
                upper: (b + 1) as f64 / bins as f64,
                confidence: conf,
                accuracy: acc,
                count: count[b],
            }
        })
        .collect();
    (ece, table)
}

/// Area under the ROC curve of a detector that flags high scores as positive: the
/// probability that a random positive scores above a random negative, ties counting one
/// half (the Mann-Whitney U statistic divided by `n_pos n_neg`).
pub fn auroc(positive: &[f64], negative: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the (mid-)ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += mid_rank * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_of_separated_tied_and_reversed_scores() {
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 1.0);
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), 0.5);
        // One of the four pairs is misordered: 3/4.
        assert_eq!(auroc(&[1.0, 3.0], &[2.0, 0.0]), 0.75);
    }

    #[test]
    fn ece_of_a_calibrated_and_an_overconfident_classifier() {
        // Confidence 0.75 everywhere, right 3 times out of 4: perfectly calibrated.
        let (ece, _) = expected_calibration_error(&[0.75; 4], &[true, true, true, false], 10);
        assert!(ece.abs() < 1e-12);
        // Confidence 0.95, right half of the time: ECE = 0.45.
        let (ece, bins) = expected_calibration_error(&[0.95; 2], &[true, false], 10);
        assert!((ece - 0.45).abs() < 1e-12);
        assert_eq!(bins[9].count, 2);
    }

    #[test]
    fn entropy_of_uniform_and_certain_predictions() {
        assert!((entropy(&[0.25; 4]) - 4f64.ln()).abs() < 1e-12);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
    }
}
