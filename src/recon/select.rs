//! Choosing, per scan, between the network, the solver and the two together
//! by how well each predicts patterns it did not see.
//!
//! No candidate is best everywhere (docs/quality.md §5): at very low dose a
//! network's prior beats a solver that fits the noise; on an object unlike
//! its training data the network's object is a poor start, and a solver
//! started from it can stay in the wrong basin; in dense scans at moderate
//! dose the solver from a flat start is best. The data can tell which: a
//! random fraction of the patterns is held out, every candidate is built
//! from the rest, and each is scored by how well it explains the held-out
//! patterns ([`crate::recon::iterative::data_error`], the amplitude misfit
//! with the best overall scale). The winner is then rebuilt from every
//! pattern. A candidate that fits the noise of its patterns predicts the
//! others worse; a network that does not know the object does too.
//!
//! Where the scan has no overlap (redundancy below
//! [`SPARSE_REDUNDANCY`](crate::recon::iterative::auto::SPARSE_REDUNDANCY))
//! the held-out patterns illuminate pixels no other pattern saw, which no
//! candidate reconstructed: the test cannot tell them apart. There the
//! choice is the network followed by the solver's sparse settings (which
//! stay near their start): the solvers alone have nothing to work with
//! (docs/quality.md §2), so a reconstruction can only come from the prior.
use std::time::Instant;

use ndarray::Array2;
use num_complex::Complex32;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::infer::{ReconConfig, Reconstruction, device_name};
use super::iterative::auto::{DataStats, SPARSE_REDUNDANCY};
use super::iterative::{
    IterativeConfig, IterativeInit, pattern_misfit, reconstruct_iterative, reconstruct_iterative_from,
};
use crate::bundle::Bundle;
use crate::data::Dataset;
use crate::data::product::canvas_shape;
use crate::error::{Error, Result};

/// How [`ReconConfig::select`] holds patterns out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectConfig {
    /// Fraction of the patterns held out (at least one, and at least two
    /// left to build from).
    pub holdout_fraction: f64,
    /// Seed of the random choice of held-out patterns.
    pub seed: u64,
}

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            holdout_fraction: 0.1,
            seed: 0,
        }
    }
}

impl SelectConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 0.5) {
            return Err(Error::config(
                "select.holdout_fraction",
                format!("must be in (0, 0.5), got {}", self.holdout_fraction),
            ));
        }
        Ok(())
    }
}

/// The candidates, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Candidate {
    /// The network's stitched object.
    Network,
    /// The solver ([`ReconConfig::refine`]) from a flat object.
    Solver,
    /// The solver from the network's object (the hybrid).
    NetworkThenSolver,
}

impl Candidate {
    /// The name in metadata and reports (`network`, `solver`, `network-then-solver`).
    pub fn name(self) -> &'static str {
        match self {
            Candidate::Network => "network",
            Candidate::Solver => "solver",
            Candidate::NetworkThenSolver => "network-then-solver",
        }
    }
}

/// What the choice saw and chose (`_metadata.selection`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionSummary {
    pub config: SelectConfig,
    pub heldout_patterns: usize,
    /// How many patterns measure a typical illuminated pixel of the
    /// patterns the candidates were built from.
    pub redundancy: f64,
    /// Each candidate's misfit to the held-out patterns (`None` where the
    /// scan's redundancy made the test blind and it was not run).
    pub heldout_errors: Vec<(Candidate, Option<f64>)>,
    /// The same candidates' Poisson deviance on the held-out patterns
    /// ([`crate::recon::iterative::Misfit::poisson`]), recorded alongside.
    #[serde(default)]
    pub heldout_deviances: Vec<(Candidate, Option<f64>)>,
    pub chosen: Candidate,
    /// Why, in words.
    pub reason: String,
    /// Building and scoring the candidates (the final rebuild excluded).
    pub seconds: f64,
}

impl SelectionSummary {
    /// Each candidate's held-out misfit and Poisson deviance, in words
    /// (`network 0.0248 (0.13376), …`), or why there are none.
    pub fn scores(&self) -> String {
        let scored: Vec<String> = self
            .heldout_errors
            .iter()
            .zip(&self.heldout_deviances)
            .filter_map(|((c, e), (_, d))| Some(format!("{} {:.4} ({:.5})", c.name(), (*e)?, (*d)?)))
            .collect();
        if scored.is_empty() {
            "not measurable: no overlap".into()
        } else {
            scored.join(", ")
        }
    }
}

/// The patterns held out and the rest, as index lists in scan order.
fn split_indices(n: usize, cfg: &SelectConfig) -> Result<(Vec<usize>, Vec<usize>)> {
    let held = ((n as f64 * cfg.holdout_fraction).round() as usize).max(1);
    if n < held + 2 {
        return Err(Error::value(
            "select",
            format!("{n} patterns are too few to hold {held} out and build from the rest"),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
    let (mut out, mut rest) = (order[..held].to_vec(), order[held..].to_vec());
    out.sort_unstable();
    rest.sort_unstable();
    Ok((out, rest))
}

/// The solver's settings for a run on `device`.
fn solver_on(cfg: &ReconConfig, device: tch::Device) -> Result<IterativeConfig> {
    let solver = cfg.refine.as_ref().ok_or_else(|| {
        Error::config(
            "select",
            "needs `refine`: the solver whose runs are among the candidates",
        )
    })?;
    Ok(IterativeConfig {
        device: device_name(device),
        ..solver.clone()
    })
}

impl Bundle {
    /// [`Bundle::reconstruct`] with [`ReconConfig::select`]: the candidate
    /// that best predicts held-out patterns, rebuilt from all of them (see
    /// the module's documentation). `_metadata.selection` records the
    /// scores and the choice; `source` names the winner as usual.
    ///
    /// Costs the network twice and the solver up to three times.
    pub(crate) fn reconstruct_selected(
        &self,
        ds: &Dataset,
        cfg: &ReconConfig,
        select: &SelectConfig,
    ) -> Result<Reconstruction> {
        select.validate()?;
        ds.validate()?;
        if cfg.adapt.is_some() {
            return Err(Error::config("select", "cannot be combined with `adapt`"));
        }
        let device = self.model.var_store().device();
        let solver = solver_on(cfg, device)?;
        let started = Instant::now();
        let (held_idx, fit_idx) = split_indices(ds.n_images(), select)?;
        let (mut held, mut fit) = (ds.select(&held_idx), ds.select(&fit_idx));
        if ds.object.is_none() {
            // every candidate on the whole scan's canvas, so the held-out
            // positions index the same pixels (only the shape is read)
            let [h, w] = canvas_shape(&ds.positions_px, ds.patch_size());
            fit.object = Some(Array2::from_elem((h, w), Complex32::new(1.0, 0.0)));
            held.object = fit.object.clone();
        }
        let plain = ReconConfig {
            refine: None,
            select: None,
            ..cfg.clone()
        };
        let stats = DataStats::of(&fit)?;
        let score = |object: &Array2<Complex32>| pattern_misfit(&held, object, None, solver.subpixel, device);
        let mut heldout_deviances = Vec::new();
        let (heldout_errors, chosen, reason) = if stats.redundancy < SPARSE_REDUNDANCY {
            (
                vec![
                    (Candidate::Network, None),
                    (Candidate::Solver, None),
                    (Candidate::NetworkThenSolver, None),
                ],
                Candidate::NetworkThenSolver,
                format!(
                    "redundancy {:.2} < {SPARSE_REDUNDANCY}: held-out patterns see pixels no other pattern measured, \
                     so the test is blind; without overlap only the prior reconstructs",
                    stats.redundancy
                ),
            )
        } else {
            let network = self.reconstruct(&fit, &plain)?;
            let start = IterativeInit {
                object: network.object,
                coverage: Some(network.coverage),
                probe: None,
                source: network.metadata.source,
            };
            // the network's object as the solver starts from it: gaps at the covered mean
            let (network_start, _) =
                super::iterative::start_object(&start, [start.object.nrows(), start.object.ncols()])?;
            let flat = reconstruct_iterative(&fit, &solver, &mut |_| {})?.reconstruction;
            let hybrid = reconstruct_iterative_from(&fit, &solver, Some(&start), &mut |_| {})?.reconstruction;
            let scored = [
                (Candidate::Network, score(&network_start)?),
                (Candidate::Solver, score(&flat.object)?),
                (Candidate::NetworkThenSolver, score(&hybrid.object)?),
            ];
            heldout_deviances = scored.iter().map(|&(c, m)| (c, Some(m.poisson))).collect();
            let scored: Vec<(Candidate, f64)> = scored.iter().map(|&(c, m)| (c, m.amplitude)).collect();
            let best = scored
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|c| c.0)
                .expect("three candidates");
            (
                scored.iter().map(|&(c, e)| (c, Some(e))).collect(),
                best,
                format!("the smallest misfit to {} held-out patterns", held_idx.len()),
            )
        };
        let summary = SelectionSummary {
            config: select.clone(),
            heldout_patterns: held_idx.len(),
            redundancy: stats.redundancy,
            heldout_errors,
            heldout_deviances,
            chosen,
            reason,
            seconds: started.elapsed().as_secs_f64(),
        };
        let mut recon = match chosen {
            Candidate::Network => self.reconstruct(ds, &plain)?,
            Candidate::Solver => reconstruct_iterative(ds, &solver, &mut |_| {})?.reconstruction,
            Candidate::NetworkThenSolver => self.reconstruct(
                ds,
                &ReconConfig {
                    select: None,
                    ..cfg.clone()
                },
            )?,
        };
        recon.metadata.selection = Some(summary);
        Ok(recon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_patterns_are_a_seeded_fraction_and_disjoint() {
        let cfg = SelectConfig::default();
        let (held, rest) = split_indices(100, &cfg).unwrap();
        assert_eq!(held.len(), 10);
        assert_eq!(rest.len(), 90);
        let mut all: Vec<usize> = held.iter().chain(&rest).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_indices(100, &cfg).unwrap().0, held, "same seed, same split");
        let other = split_indices(100, &SelectConfig { seed: 1, ..cfg.clone() }).unwrap().0;
        assert_ne!(other, held);
        assert!(split_indices(2, &cfg).is_err(), "one held out leaves one: too few");
        assert_eq!(split_indices(3, &cfg).unwrap().0.len(), 1);
        assert!(
            SelectConfig {
                holdout_fraction: 0.5,
                ..cfg
            }
            .validate()
            .is_err()
        );
    }
}
