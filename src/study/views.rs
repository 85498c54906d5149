//! Overlap views and measured overlap (ptychopinn.md §7, phase D): keep the
//! positions of a split that lie at least a spacing `S` apart, and measure
//! how much the probe discs of neighbours (and of groups) overlap. Pure
//! functions: no file IO, no printing.
//!
//! Selection: the "direct" filter keeps every position whose nearest
//! neighbour is at least `S` away (those are pairwise ≥ `S` apart); when it
//! keeps less than the effective acceptance floor, a greedy pass in (y, x)
//! order keeps each position that is ≥ `S` from all kept ones. The floor is
//! `min(min_acceptance, area / (n·π(S/2)²))`, `area` the positions'
//! bounding box (PtychoPINN's geometry-aware floor, finding ACCEPTANCE-001).
use std::f64::consts::PI;
use std::num::NonZero;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grouping::Groups;

/// How a view was selected from one split (part of the job record format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewSelection {
    pub spacing_threshold_px: f64,
    /// `direct` or `greedy`.
    pub selection_strategy: String,
    pub n_positions: usize,
    pub n_accepted: usize,
    pub n_rejected: usize,
    pub acceptance_rate: f64,
    pub geometry_acceptance_bound: f64,
    pub effective_min_acceptance: f64,
    /// Nearest-neighbour distances among the accepted positions (None with fewer than 2).
    pub spacing_min_px: Option<f64>,
    pub spacing_max_px: Option<f64>,
    pub spacing_mean_px: Option<f64>,
    pub spacing_median_px: Option<f64>,
}

/// Measured overlap of a set of positions (part of the job record format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverlapMetrics {
    pub probe_diameter_px: f64,
    pub neighbour_count: usize,
    /// Mean over images of the mean disc overlap with their K nearest neighbours.
    pub image_overlap: f64,
    /// Gridsize-2 groups: mean over members of the mean overlap with the other members.
    pub group_member_overlap: Option<f64>,
    /// Mean over groups of the mean overlap of their centroid with the
    /// other centroids closer than the probe diameter (0 when none is).
    pub group_group_overlap: Option<f64>,
    pub n_groups: Option<usize>,
}

/// Fraction of a disc of diameter `d_px` covered by an equal disc whose
/// centre is `distance_px` away: `[2R²·acos(d/2R) − (d/2)·√(4R² − d²)] / (πR²)`,
/// 0 from `distance ≥ D`.
pub fn disc_overlap_fraction(distance_px: f64, diameter_px: f64) -> f64 {
    let r = diameter_px / 2.0;
    let d = distance_px.abs();
    if r <= 0.0 || d >= diameter_px {
        return 0.0;
    }
    let area = 2.0 * r * r * (d / (2.0 * r)).acos() - (d / 2.0) * (4.0 * r * r - d * d).sqrt();
    (area / (PI * r * r)).clamp(0.0, 1.0)
}

fn points(positions_px: &Array2<f64>) -> Vec<[f64; 2]> {
    positions_px.outer_iter().map(|p| [p[0], p[1]]).collect()
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// The `k` nearest other points of each point: `(index, distance)`, nearest first.
fn nearest(points: &[[f64; 2]], k: usize) -> Result<Vec<Vec<(usize, f64)>>> {
    if points.len() < 2 || k == 0 {
        return Ok(vec![Vec::new(); points.len()]);
    }
    let tree = ImmutableKdTree::new_from_slice(points)
        .map_err(|e| Error::value("positions", format!("cannot build a k-d tree: {e:?}")))?;
    let want = NonZero::new((k + 1).min(points.len())).expect("at least one");
    Ok(points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut found: Vec<(usize, f64)> = tree
                .query(p)
                .nearest_n::<SquaredEuclidean<f64>>(want)
                .execute()
                .iter()
                .map(|r| (r.item as usize, r.distance.sqrt()))
                .filter(|&(j, _)| j != i)
                .collect();
            found.sort_by(|a, b| a.1.total_cmp(&b.1));
            found.truncate(k);
            found
        })
        .collect())
}

fn check_positions(positions_px: &Array2<f64>) -> Result<()> {
    if positions_px.ncols() != 2 {
        return Err(Error::shape(
            "positions",
            "[n, 2]",
            format!("{:?}", positions_px.shape()),
        ));
    }
    if positions_px.iter().any(|v| !v.is_finite()) {
        return Err(Error::value("positions", "contain a non-finite coordinate"));
    }
    Ok(())
}

/// Nearest-neighbour distance of each point (∞ for a lone point).
fn nn_distances(points: &[[f64; 2]]) -> Result<Vec<f64>> {
    Ok(nearest(points, 1)?
        .into_iter()
        .map(|v| v.first().map_or(f64::INFINITY, |&(_, d)| d))
        .collect())
}

/// Selects the positions at least `spacing_px` apart (see the module docs).
/// Returns the accepted indices (ascending) and the selection record.
pub fn select_min_spacing(
    positions_px: &Array2<f64>,
    spacing_px: f64,
    min_acceptance: f64,
) -> Result<(Vec<usize>, ViewSelection)> {
    check_positions(positions_px)?;
    let pts = points(positions_px);
    let n = pts.len();
    if n == 0 {
        return Err(Error::value("view", "the split has no positions"));
    }
    let nn = nn_distances(&pts)?;
    let direct: Vec<usize> = (0..n).filter(|&i| nn[i] >= spacing_px).collect();
    let (x0, x1, y0, y1) = pts.iter().fold(
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY),
        |(a, b, c, d), p| (a.min(p[0]), b.max(p[0]), c.min(p[1]), d.max(p[1])),
    );
    let area = ((x1 - x0) * (y1 - y0)).max(0.0);
    let disc = n as f64 * PI * (spacing_px / 2.0).powi(2);
    let bound = if disc > 0.0 { (area / disc).min(1.0) } else { 1.0 };
    let floor = min_acceptance.min(bound);
    let (accepted, strategy) = if direct.len() as f64 >= floor * n as f64 && !direct.is_empty() {
        (direct, "direct")
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| pts[a][1].total_cmp(&pts[b][1]).then(pts[a][0].total_cmp(&pts[b][0])));
        let mut kept: Vec<usize> = Vec::new();
        for i in order {
            if kept.iter().all(|&j| dist(pts[i], pts[j]) >= spacing_px) {
                kept.push(i);
            }
        }
        kept.sort_unstable();
        (kept, "greedy")
    };
    let kept_pts: Vec<[f64; 2]> = accepted.iter().map(|&i| pts[i]).collect();
    let mut spacings: Vec<f64> = nn_distances(&kept_pts)?.into_iter().filter(|d| d.is_finite()).collect();
    spacings.sort_by(f64::total_cmp);
    let stat = |f: fn(&[f64]) -> f64| (!spacings.is_empty()).then(|| f(&spacings));
    let selection = ViewSelection {
        spacing_threshold_px: spacing_px,
        selection_strategy: strategy.into(),
        n_positions: n,
        n_accepted: accepted.len(),
        n_rejected: n - accepted.len(),
        acceptance_rate: accepted.len() as f64 / n as f64,
        geometry_acceptance_bound: bound,
        effective_min_acceptance: floor,
        spacing_min_px: stat(|s| s[0]),
        spacing_max_px: stat(|s| s[s.len() - 1]),
        spacing_mean_px: stat(|s| s.iter().sum::<f64>() / s.len() as f64),
        spacing_median_px: stat(|s| {
            let m = s.len() / 2;
            if s.len() % 2 == 1 {
                s[m]
            } else {
                0.5 * (s[m - 1] + s[m])
            }
        }),
    };
    Ok((accepted, selection))
}

/// Errors when a selection keeps fewer than `min_positions` positions or
/// less than its effective acceptance floor.
pub fn check_acceptance(selection: &ViewSelection, min_positions: usize, what: &str) -> Result<()> {
    let s = selection;
    if s.n_accepted < min_positions {
        return Err(Error::value(
            what,
            format!(
                "a spacing of {:.1} px keeps {} of {} positions, fewer than the {min_positions} required \
                 (overlap.min_positions); lower the spacing or raise the overlap fraction",
                s.spacing_threshold_px, s.n_accepted, s.n_positions
            ),
        ));
    }
    if s.acceptance_rate + 1e-12 < s.effective_min_acceptance {
        return Err(Error::value(
            what,
            format!(
                "acceptance {:.3} is below the floor {:.3} (spacing {:.1} px)",
                s.acceptance_rate, s.effective_min_acceptance, s.spacing_threshold_px
            ),
        ));
    }
    Ok(())
}

/// Disc-overlap metrics of positions (and of their groups, when given).
pub fn overlap_metrics(
    positions_px: &Array2<f64>,
    probe_diameter_px: f64,
    neighbour_count: usize,
    groups: Option<&Groups>,
) -> Result<OverlapMetrics> {
    check_positions(positions_px)?;
    let pts = points(positions_px);
    let f = |d: f64| disc_overlap_fraction(d, probe_diameter_px);
    let knn = nearest(&pts, neighbour_count)?;
    let per_image: Vec<f64> = knn
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().map(|&(_, d)| f(d)).sum::<f64>() / v.len() as f64)
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let (member, group_group, n_groups) = match groups {
        Some(g) => {
            let c = g.members();
            let mut per_member = Vec::new();
            if c > 1 {
                for row in g.indices.outer_iter() {
                    for &i in row {
                        let o: f64 = row.iter().filter(|&&j| j != i).map(|&j| f(dist(pts[i], pts[j]))).sum();
                        per_member.push(o / (c - 1) as f64);
                    }
                }
            }
            let centroids: Vec<[f64; 2]> = g.centroids_px.outer_iter().map(|p| [p[0], p[1]]).collect();
            let per_group: Vec<f64> = centroids
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let near: Vec<f64> = centroids
                        .iter()
                        .enumerate()
                        .filter(|&(j, &b)| j != i && dist(a, b) < probe_diameter_px)
                        .map(|(_, &b)| f(dist(a, b)))
                        .collect();
                    mean(&near)
                })
                .collect();
            (
                (c > 1).then(|| mean(&per_member)),
                Some(mean(&per_group)),
                Some(g.n_groups()),
            )
        }
        None => (None, None, None),
    };
    Ok(OverlapMetrics {
        probe_diameter_px,
        neighbour_count,
        image_overlap: mean(&per_image),
        group_member_overlap: member,
        group_group_overlap: group_group,
        n_groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disc_overlap_limits() {
        assert!((disc_overlap_fraction(0.0, 10.0) - 1.0).abs() < 1e-12);
        assert_eq!(disc_overlap_fraction(10.0, 10.0), 0.0);
        assert_eq!(disc_overlap_fraction(25.0, 10.0), 0.0);
        // d = R: 2/3 − √3/(2π)
        let expected = 2.0 / 3.0 - 3f64.sqrt() / (2.0 * PI);
        assert!((disc_overlap_fraction(5.0, 10.0) - expected).abs() < 1e-12);
    }

    #[test]
    fn selection_keeps_positions_apart() {
        // a 10×10 raster with 2 px pitch
        let pos = Array2::from_shape_fn((100, 2), |(i, c)| {
            if c == 0 {
                (i % 10) as f64 * 2.0
            } else {
                (i / 10) as f64 * 2.0
            }
        });
        let (all, s) = select_min_spacing(&pos, 2.0, 0.1).unwrap();
        assert_eq!((all.len(), s.selection_strategy.as_str()), (100, "direct"));
        let (kept, s) = select_min_spacing(&pos, 4.0, 0.1).unwrap();
        assert_eq!(s.selection_strategy, "greedy");
        assert_eq!(kept.len(), 25);
        for (a, &i) in kept.iter().enumerate() {
            for &j in &kept[..a] {
                let d = ((pos[[i, 0]] - pos[[j, 0]]).powi(2) + (pos[[i, 1]] - pos[[j, 1]]).powi(2)).sqrt();
                assert!(d >= 4.0);
            }
        }
        assert_eq!(s.spacing_min_px, Some(4.0));
        check_acceptance(&s, 4, "view").unwrap();
        let (_, far) = select_min_spacing(&pos, 1000.0, 0.1).unwrap();
        assert_eq!(far.n_accepted, 1);
        assert!(check_acceptance(&far, 4, "view").is_err());
    }

    #[test]
    fn overlap_falls_with_spacing() {
        let raster = |pitch: f64| {
            Array2::from_shape_fn((64, 2), |(i, c)| {
                if c == 0 {
                    (i % 8) as f64 * pitch
                } else {
                    (i / 8) as f64 * pitch
                }
            })
        };
        let dense = overlap_metrics(&raster(4.0), 20.0, 4, None).unwrap();
        let sparse = overlap_metrics(&raster(16.0), 20.0, 4, None).unwrap();
        assert!(dense.image_overlap > sparse.image_overlap && sparse.image_overlap > 0.0);
        assert_eq!(
            overlap_metrics(&raster(40.0), 20.0, 4, None).unwrap().image_overlap,
            0.0
        );
    }
}
