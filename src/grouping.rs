//! Groups of neighbouring scan positions: gridsize `g` gives `C = g²`
//! members per group (DESIGN §3, PtychoPINN's "gridsize").
//!
//! A group is a seed position plus `C − 1` neighbours drawn uniformly, without
//! replacement, from the seed's `K` nearest neighbours (the seed excluded).
//! **The seed is a member** (member 0), as in the PtychoPINN paper's
//! `{r_i} ∪ S`; PtychoPINN's code instead draws all `C` members from the `K`
//! neighbours. Neighbours are found with a k-d tree (`kiddo`), so 100k
//! positions group in a fraction of a second.
//!
//! Offsets: the group centroid is the mean member position (the "global
//! offset"); each member's relative offset is `member − centroid` in object
//! pixels `(x, y)`. PtychoPINN's `coords_relative` is the negative of this.
//!
//! Randomness (seed choice and member choice) comes from one ChaCha8 stream
//! seeded by `seed`: the same positions and configuration give the same
//! groups.
use std::num::NonZero;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use ndarray::{Array2, Array3};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How to group positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupingConfig {
    /// 1 (single positions) or 2 (groups of 4).
    pub gridsize: usize,
    /// Candidate neighbours per seed, `K ≥ C` (PtychoPINN's `neighbor_count`).
    pub k_neighbours: usize,
    /// Number of groups; `None` = one group per position, seeds in order.
    /// (Training takes it as a cap without replacement: more groups than
    /// positions means every position once, `train::TrainingData`.)
    pub n_groups: Option<usize>,
    /// Draw seeds with replacement (allows more groups than positions).
    pub with_replacement: bool,
    pub seed: u64,
}

impl Default for GroupingConfig {
    /// gridsize 1, `K` = 4 (PtychoPINN's default `neighbor_count`).
    fn default() -> Self {
        GroupingConfig {
            gridsize: 1,
            k_neighbours: 4,
            n_groups: None,
            with_replacement: false,
            seed: 0,
        }
    }
}

impl GroupingConfig {
    /// Members per group, `C = gridsize²`.
    pub fn members(&self) -> usize {
        self.gridsize * self.gridsize
    }

    /// Checks the fields against a scan of `n_positions`.
    pub fn validate(&self, n_positions: usize) -> Result<()> {
        if !(self.gridsize == 1 || self.gridsize == 2) {
            return Err(Error::config(
                "gridsize",
                format!("must be 1 or 2, got {}", self.gridsize),
            ));
        }
        if n_positions == 0 {
            return Err(Error::value("positions", "there are no positions to group"));
        }
        let c = self.members();
        if c > 1 {
            if self.k_neighbours < c {
                return Err(Error::config(
                    "k_neighbours",
                    format!("K = {} must be at least C = gridsize² = {c}", self.k_neighbours),
                ));
            }
            if self.k_neighbours >= n_positions {
                return Err(Error::config(
                    "k_neighbours",
                    format!("K = {} needs more than {n_positions} positions", self.k_neighbours),
                ));
            }
        }
        match self.n_groups {
            Some(0) => Err(Error::config("n_groups", "must be at least 1")),
            Some(m) if m > n_positions && !self.with_replacement => Err(Error::config(
                "n_groups",
                format!("{m} groups without replacement need at least {m} positions, there are {n_positions}"),
            )),
            _ => Ok(()),
        }
    }
}

/// Groups of positions and their offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    pub gridsize: usize,
    /// Position indices `[n_groups, C]`; member 0 is the seed.
    pub indices: Array2<usize>,
    /// Group centroids `[n_groups, 2]`, `(x, y)` object pixels.
    pub centroids_px: Array2<f64>,
    /// Relative offsets `[n_groups, C, 2]`, `member − centroid`, `(x, y)`.
    pub offsets_px: Array3<f64>,
}

impl Groups {
    pub fn n_groups(&self) -> usize {
        self.indices.nrows()
    }

    /// Members per group `C`.
    pub fn members(&self) -> usize {
        self.indices.ncols()
    }
}

/// Groups `positions_px` (`[n, 2]`, `(x, y)`) as `cfg` says.
pub fn group(positions_px: &Array2<f64>, cfg: &GroupingConfig) -> Result<Groups> {
    let n = positions_px.nrows();
    if positions_px.ncols() != 2 {
        return Err(Error::shape(
            "positions",
            "[n, 2]",
            format!("{:?}", positions_px.shape()),
        ));
    }
    if let Some(i) = positions_px.iter().position(|v| !v.is_finite()) {
        return Err(Error::value(
            "positions",
            format!("non-finite coordinate in position {}", i / 2),
        ));
    }
    cfg.validate(n)?;
    let c = cfg.members();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let seeds: Vec<usize> = match cfg.n_groups {
        None => (0..n).collect(),
        Some(m) if cfg.with_replacement => {
            let mut s: Vec<usize> = (0..m).map(|_| rand::Rng::random_range(&mut rng, 0..n)).collect();
            s.sort_unstable();
            s
        }
        Some(m) => {
            let mut s = sample(&mut rng, n, m).into_vec();
            s.sort_unstable();
            s
        }
    };
    let mut indices = Array2::<usize>::zeros((seeds.len(), c));
    if c == 1 {
        indices.column_mut(0).iter_mut().zip(&seeds).for_each(|(d, &s)| *d = s);
    } else {
        let points: Vec<[f64; 2]> = positions_px.outer_iter().map(|p| [p[0], p[1]]).collect();
        let tree = ImmutableKdTree::new_from_slice(&points)
            .map_err(|e| Error::value("positions", format!("cannot build a k-d tree: {e:?}")))?;
        let k = cfg.k_neighbours;
        let want = NonZero::new(k + 1).expect("k + 1 > 0");
        for (g, &s) in seeds.iter().enumerate() {
            let found = tree
                .query(&points[s])
                .nearest_n::<SquaredEuclidean<f64>>(want)
                .execute();
            // the K nearest other positions (the seed removed; with duplicate
            // positions it need not come first)
            let mut neighbours: Vec<usize> = found.iter().map(|r| r.item as usize).filter(|&i| i != s).collect();
            neighbours.truncate(k);
            let mut chosen = sample(&mut rng, neighbours.len(), c - 1).into_vec();
            chosen.sort_unstable(); // keep nearest-first order among the chosen
            indices[[g, 0]] = s;
            for (m, &j) in chosen.iter().enumerate() {
                indices[[g, m + 1]] = neighbours[j];
            }
        }
    }
    let mut centroids_px = Array2::<f64>::zeros((seeds.len(), 2));
    let mut offsets_px = Array3::<f64>::zeros((seeds.len(), c, 2));
    for g in 0..seeds.len() {
        for a in 0..2 {
            let mean = (0..c).map(|m| positions_px[[indices[[g, m]], a]]).sum::<f64>() / c as f64;
            centroids_px[[g, a]] = mean;
            for m in 0..c {
                offsets_px[[g, m, a]] = positions_px[[indices[[g, m]], a]] - mean;
            }
        }
    }
    Ok(Groups {
        gridsize: cfg.gridsize,
        indices,
        centroids_px,
        offsets_px,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raster(side: usize, spacing: f64) -> Array2<f64> {
        Array2::from_shape_fn((side * side, 2), |(i, a)| {
            let (r, c) = (i / side, i % side);
            (if a == 0 { c } else { r }) as f64 * spacing + 40.0
        })
    }

    #[test]
    fn gridsize_one_groups_are_the_seeds_with_zero_offsets() {
        let p = raster(5, 3.0);
        let g = group(&p, &GroupingConfig::default()).unwrap();
        assert_eq!(g.indices.column(0).to_vec(), (0..25).collect::<Vec<_>>());
        assert!(g.offsets_px.iter().all(|&v| v == 0.0));
        assert_eq!(g.centroids_px, p);
    }

    #[test]
    fn members_are_among_the_k_nearest_by_brute_force() {
        let p = raster(12, 5.0);
        let cfg = GroupingConfig {
            gridsize: 2,
            k_neighbours: 6,
            n_groups: Some(60),
            seed: 3,
            ..GroupingConfig::default()
        };
        let g = group(&p, &cfg).unwrap();
        assert_eq!(g.indices.shape(), [60, 4]);
        let d2 = |a: usize, b: usize| (p[[a, 0]] - p[[b, 0]]).powi(2) + (p[[a, 1]] - p[[b, 1]]).powi(2);
        for row in g.indices.outer_iter() {
            let s = row[0];
            // brute force: distance of the K-th nearest other position
            let mut all: Vec<f64> = (0..p.nrows()).filter(|&j| j != s).map(|j| d2(s, j)).collect();
            all.sort_by(f64::total_cmp);
            let kth = all[cfg.k_neighbours - 1];
            let mut members: Vec<usize> = row.to_vec();
            for &m in &members[1..] {
                assert!(m != s && d2(s, m) <= kth + 1e-9, "member {m} of seed {s} is too far");
            }
            members.sort_unstable();
            members.dedup();
            assert_eq!(members.len(), 4, "repeated member in {row:?}");
        }
        // offsets are member − centroid: they sum to zero
        for o in g.offsets_px.outer_iter() {
            assert!(o.sum_axis(ndarray::Axis(0)).iter().all(|v| v.abs() < 1e-9));
        }
    }

    #[test]
    fn groups_are_fixed_by_the_seed_and_sampling_modes_differ() {
        let p = raster(8, 4.0);
        let cfg = GroupingConfig {
            gridsize: 2,
            n_groups: Some(30),
            seed: 9,
            ..GroupingConfig::default()
        };
        assert_eq!(group(&p, &cfg).unwrap(), group(&p, &cfg).unwrap());
        assert_ne!(
            group(&p, &cfg).unwrap(),
            group(
                &p,
                &GroupingConfig {
                    seed: 10,
                    ..cfg.clone()
                }
            )
            .unwrap()
        );
        let distinct = group(&p, &cfg).unwrap();
        let mut seeds = distinct.indices.column(0).to_vec();
        seeds.dedup();
        assert_eq!(seeds.len(), 30, "without replacement the seeds are distinct");
        let many = GroupingConfig {
            n_groups: Some(200),
            with_replacement: true,
            ..cfg.clone()
        };
        assert_eq!(group(&p, &many).unwrap().n_groups(), 200);
        let too_many = GroupingConfig {
            n_groups: Some(200),
            ..cfg
        };
        assert!(group(&p, &too_many).unwrap_err().to_string().contains("n_groups"));
    }

    #[test]
    fn k_smaller_than_c_is_refused_by_name() {
        let p = raster(4, 4.0);
        let cfg = GroupingConfig {
            gridsize: 2,
            k_neighbours: 3,
            ..GroupingConfig::default()
        };
        let e = group(&p, &cfg).unwrap_err().to_string();
        assert!(e.contains("k_neighbours") && e.contains("C = gridsize² = 4"), "{e}");
        let e = group(
            &p,
            &GroupingConfig {
                gridsize: 3,
                ..GroupingConfig::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("gridsize"));
    }
}
