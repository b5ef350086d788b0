//! Sweeps: the grid of configuration points an experiment visits, and shards of it.
//!
//! Each `[[sweep]]` axis names one configuration path (or several paths changed
//! together) and the values it takes; several axes form a grid, the first axis varying
//! slowest. Every point is run `repeats` times with different seeds.

use super::tree;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use toml::Value;

/// One sweep axis as written in the experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// The configuration path this axis changes (e.g. `hardware.tile.periphery.adc.bits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Several paths changed together: each value is then an array with one entry per path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The values the axis takes.
    pub values: Vec<Value>,
}

impl Axis {
    /// The paths this axis sets.
    pub fn all_paths(&self) -> Vec<String> {
        match (&self.path, &self.paths) {
            (Some(p), None) => vec![p.clone()],
            (None, Some(ps)) => ps.clone(),
            _ => Vec::new(),
        }
    }

    /// Check the axis is well formed; `index` is its position among the `[[sweep]]` entries.
    pub fn validate(&self, index: usize) -> Result<()> {
        let what = format!("sweep axis {} ([[sweep]] entry {})", index + 1, index + 1);
        match (&self.path, &self.paths) {
            (Some(_), Some(_)) => bail!("{what}: give either `path` or `paths`, not both"),
            (None, None) => bail!("{what}: needs a `path` (or `paths`) to sweep"),
            (None, Some(ps)) if ps.is_empty() => bail!("{what}: `paths` is empty"),
            _ => {}
        }
        if self.values.is_empty() {
            bail!("{what}: `values` is empty; list at least one value");
        }
        if let Some(ps) = &self.paths {
            for (k, v) in self.values.iter().enumerate() {
                let ok = v.as_array().is_some_and(|a| a.len() == ps.len());
                if !ok {
                    bail!(
                        "{what}: value {} must be an array of {} entries, one per path in `paths`",
                        k + 1,
                        ps.len()
                    );
                }
            }
        }
        Ok(())
    }

    /// The (path, value) assignments of this axis's `k`-th value.
    fn assignments(&self, k: usize) -> Vec<(String, Value)> {
        match &self.paths {
            None => vec![(self.all_paths()[0].clone(), self.values[k].clone())],
            Some(ps) => {
                let vals = self.values[k].as_array().cloned().unwrap_or_default();
                ps.iter().cloned().zip(vals).collect()
            }
        }
    }
}

/// One point of the sweep grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Position in the grid (row-major, first axis slowest).
    pub index: usize,
    /// The value index taken on each axis.
    pub coords: Vec<usize>,
    /// The (path, value) assignments this point makes to the base configuration.
    pub assignments: Vec<(String, Value)>,
}

impl Point {
    /// The configuration of this point: `base` with the assignments applied.
    pub fn apply(&self, base: &Value) -> Result<Value> {
        let mut tree = base.clone();
        for (path, value) in &self.assignments {
            tree::set(&mut tree, path, value.clone())
                .with_context(|| format!("sweep path '{path}'"))?;
        }
        Ok(tree)
    }
}

/// Every point of the grid spanned by `axes` (one point when there is no axis).
pub fn grid(axes: &[Axis]) -> Vec<Point> {
    let sizes: Vec<usize> = axes.iter().map(|a| a.values.len()).collect();
    let total: usize = sizes.iter().product();
    (0..total)
        .map(|index| {
            let mut rest = index;
            let mut coords = vec![0; axes.len()];
            for (d, &size) in sizes.iter().enumerate().rev() {
                coords[d] = rest % size;
                rest /= size;
            }
            let assignments = axes
                .iter()
                .zip(&coords)
                .flat_map(|(a, &k)| a.assignments(k))
                .collect();
            Point {
                index,
                coords,
                assignments,
            }
        })
        .collect()
}

/// A share of the points for one machine: `--shard I/N` takes the points whose index is
/// I modulo N (I counted from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard's number, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parse `I/N`.
    pub fn parse(text: &str) -> Result<Shard> {
        let err = || {
            format!(
                "--shard '{text}' must be I/N with 0 <= I < N (e.g. 0/4 for the first of four shards)"
            )
        };
        let (i, n) = text.split_once('/').with_context(err)?;
        let index: usize = i.trim().parse().with_context(err)?;
        let count: usize = n.trim().parse().with_context(err)?;
        if count == 0 || index >= count {
            bail!(err());
        }
        Ok(Shard { index, count })
    }

    /// Whether point `index` belongs to this shard.
    pub fn owns(&self, point_index: usize) -> bool {
        point_index % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(path: &str, values: &[i64]) -> Axis {
        Axis {
            path: Some(path.into()),
            paths: None,
            values: values.iter().map(|&v| Value::Integer(v)).collect(),
        }
    }

    #[test]
    fn the_grid_is_the_cartesian_product_first_axis_slowest() {
        let g = grid(&[axis("a", &[1, 2]), axis("b", &[10, 20, 30])]);
        assert_eq!(g.len(), 6);
        assert_eq!(g[1].coords, vec![0, 1]);
        assert_eq!(
            g[3].assignments,
            vec![
                ("a".into(), Value::Integer(2)),
                ("b".into(), Value::Integer(10))
            ]
        );
        assert_eq!(grid(&[]).len(), 1);
    }

    #[test]
    fn zipped_axes_set_several_paths_together() {
        let a = Axis {
            path: None,
            paths: Some(vec!["x".into(), "y".into()]),
            values: vec![toml::from_str::<toml::Table>("v = [1, \"p\"]").unwrap()["v"].clone()],
        };
        a.validate(0).unwrap();
        let g = grid(&[a]);
        assert_eq!(g[0].assignments[1], ("y".into(), Value::String("p".into())));
    }

    #[test]
    fn malformed_axes_are_refused() {
        let mut a = axis("a", &[]);
        assert!(a.validate(0).unwrap_err().to_string().contains("values"));
        a.values.push(Value::Integer(1));
        a.paths = Some(vec!["b".into()]);
        assert!(a.validate(0).is_err());
    }

    #[test]
    fn shards_partition_the_points() {
        let shards: Vec<Shard> = (0..3)
            .map(|i| Shard::parse(&format!("{i}/3")).unwrap())
            .collect();
        for p in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.owns(p)).count(), 1);
        }
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("0/0").is_err());
    }
}
