//! Two interleaved halves of a scan, for the half-set FRC
//! ([`crate::metrics::half_set`]): reconstruct each half on its own and
//! correlate the two objects.
use crate::data::Dataset;

/// The patterns at even and at odd indices, in scan order: `(even, odd)`.
///
/// Interleaving, not splitting by position: consecutive positions of a
/// raster (or spiral) scan are neighbours, so alternate positions cover the
/// same field of view at twice the spacing along the scan, and both halves
/// measure every part of the object with about half the dose. Each half's
/// reconstruction then differs from the other's by its noise alone (and by
/// what its lower overlap costs), which is what the half-set FRC measures.
/// A spatial split ([`Dataset::split`]) would give two different fields.
/// Both keep the probe and metadata, with a note in
/// `metadata.data_transformations`; with fewer than 2 patterns the odd half
/// is empty.
pub fn interleaved_halves(ds: &Dataset) -> (Dataset, Dataset) {
    let n = ds.n_images();
    let (even, odd): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| i % 2 == 0);
    let half = |idx: &[usize], parity: &str| {
        let mut d = ds.select(idx);
        d.metadata.data_transformations.push(format!(
            "interleaved half: the {} patterns at {parity} indices of {n} (scan order)",
            idx.len()
        ));
        d
    };
    (half(&even, "even"), half(&odd, "odd"))
}
