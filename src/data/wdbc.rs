//! The embedded Wisconsin Diagnostic Breast Cancer set (WDBC: 569 samples, 30 features,
//! 0 = malignant, 1 = benign; `data/wdbc/README.md` has its source and licence), as a
//! tabular two-class set with a fixed split and standardised features.
//!
//! The features are not images, so this module has its own small type, [`Tabular`], rather
//! than [`super::Dataset`] (whose pixels live in `[0, 1]` on a `rows x cols` grid).
//!
//! **Split** (fixed, no random numbers): within each class, in file order, every fifth
//! sample (class-local index ≡ 4 mod 5) is a test sample: 42 malignant + 71 benign = 113
//! test samples, 456 training samples. **Standardisation**: every feature is shifted and
//! scaled by the mean and population standard deviation of the *training* part only, and the
//! same transform is applied to the test part.

use anyhow::{Context, Result, bail, ensure};

/// One parsed sample: its features and its label.
type Row = (Vec<f32>, u8);

static WDBC_CSV: &str = include_str!("../../data/wdbc/wdbc.csv");

/// The `data.source` name of the embedded set.
pub const NAME: &str = "wdbc";

/// Every `TEST_STRIDE`-th sample of a class (the last of each group) is a test sample.
pub const TEST_STRIDE: usize = 5;

/// A labelled tabular set: `len()` samples of `features` real values and a class label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tabular {
    /// Feature values, sample after sample (`len() * features` values).
    pub x: Vec<f32>,
    /// Class label of each sample.
    pub labels: Vec<u8>,
    /// Values per sample.
    pub features: usize,
}

impl Tabular {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        &self.x[i * self.features..(i + 1) * self.features]
    }

    fn push(&mut self, x: &[f32], label: u8) {
        self.x.extend_from_slice(x);
        self.labels.push(label);
    }
}

/// A train/test pair of tabular sets.
#[derive(Clone, Debug, PartialEq)]
pub struct TabularSplit {
    /// Training samples.
    pub train: Tabular,
    /// Held-out test samples.
    pub test: Tabular,
}

/// The embedded WDBC set, split and standardised as the module documentation says.
pub fn wdbc() -> Result<TabularSplit> {
    let (rows, features) = parse_csv(WDBC_CSV).context("embedded data/wdbc/wdbc.csv")?;
    let mut split = stratified_split(&rows, features);
    standardise(&mut split);
    Ok(split)
}

/// Parse the scikit-learn layout: a header `n,features,name0,name1`, then `n` lines of
/// `features` values and a 0/1 label. Returns the samples and the feature count.
fn parse_csv(text: &str) -> Result<(Vec<Row>, usize)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty file")?.split(',').collect();
    ensure!(header.len() >= 2, "line 1 must be `samples,features,...`");
    let n: usize = header[0].trim().parse().context("line 1: sample count")?;
    let features: usize = header[1].trim().parse().context("line 1: feature count")?;
    let mut rows = Vec::with_capacity(n);
    for (k, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        ensure!(
            fields.len() == features + 1,
            "line {}: {} fields, expected {} features and a label",
            k + 2,
            fields.len(),
            features
        );
        let x = fields[..features]
            .iter()
            .map(|f| f.trim().parse::<f32>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("line {}: a feature is not a number", k + 2))?;
        let label = match fields[features].trim() {
            "0" => 0,
            "1" => 1,
            other => bail!("line {}: label {other:?} is neither 0 nor 1", k + 2),
        };
        rows.push((x, label));
    }
    ensure!(
        rows.len() == n,
        "the header announces {n} samples, the file holds {}",
        rows.len()
    );
    Ok((rows, features))
}

/// The fixed stratified split: class-local index ≡ `TEST_STRIDE - 1` (mod `TEST_STRIDE`)
/// goes to the test set, in file order.
fn stratified_split(rows: &[Row], features: usize) -> TabularSplit {
    let empty = || Tabular {
        x: Vec::new(),
        labels: Vec::new(),
        features,
    };
    let mut split = TabularSplit {
        train: empty(),
        test: empty(),
    };
    let mut seen = [0usize; 2];
    for (x, label) in rows {
        let k = &mut seen[usize::from(*label)];
        if *k % TEST_STRIDE == TEST_STRIDE - 1 {
            split.test.push(x, *label);
        } else {
            split.train.push(x, *label);
        }
        *k += 1;
    }
    split
}

/// Standardise every feature with the training part's mean and population standard
/// deviation (a constant feature is only centred).
fn standardise(split: &mut TabularSplit) {
    let d = split.train.features;
    let n = split.train.len() as f64;
    for j in 0..d {
        let column = (0..split.train.len()).map(|i| f64::from(split.train.x[i * d + j]));
        let mean = column.clone().sum::<f64>() / n;
        let var = column.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let scale = if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 };
        for set in [&mut split.train, &mut split.test] {
            for i in 0..set.len() {
                let v = &mut set.x[i * d + j];
                *v = ((f64::from(*v) - mean) * scale) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stratified_and_fixed() {
        let s = wdbc().unwrap();
        assert_eq!((s.train.len(), s.test.len()), (456, 113));
        assert_eq!(s.train.features, 30);
        let count = |t: &Tabular, c: u8| t.labels.iter().filter(|&&l| l == c).count();
        // 212 malignant: 42 test; 357 benign: 71 test (every fifth of each class).
        assert_eq!((count(&s.test, 0), count(&s.test, 1)), (42, 71));
        assert_eq!((count(&s.train, 0), count(&s.train, 1)), (170, 286));
    }

    /// After standardisation each training feature has mean 0 and variance 1; the test part
    /// is transformed with the training statistics, so its moments are only close to them.
    #[test]
    fn features_are_standardised_on_the_training_part() {
        let s = wdbc().unwrap();
        let d = s.train.features;
        for j in 0..d {
            let col: Vec<f64> = (0..s.train.len())
                .map(|i| f64::from(s.train.sample(i)[j]))
                .collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
                "{j}: {mean} {var}"
            );
        }
        // The first raw sample of the file (radius 17.99, malignant) is a training sample.
        assert_eq!(s.train.labels[0], 0);
        assert!(s.train.sample(0)[0] > 1.0);
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        for (text, needle) in [
            ("2,2,a,b\n1,2,0\n", "holds 1"),
            ("1,2,a,b\n1,x,0\n", "not a number"),
            ("1,2,a,b\n1,2,7\n", "neither 0 nor 1"),
            ("1,2,a,b\n1,0\n", "2 fields"),
        ] {
            let err = format!("{:#}", parse_csv(text).unwrap_err());
            assert!(err.contains(needle), "{err}");
        }
    }
}
