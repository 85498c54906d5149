//! Phase-consistent stitching: a network's loss cannot see a patch's
//! constant phase, so neighbouring predictions may disagree by one; plain
//! averaging then adds vectors that partly cancel (lower amplitude, blurred
//! phase). Each group's crops get the constant phase that agrees best with
//! its neighbours where they overlap: Gauss-Seidel sweeps of phase
//! synchronisation, each turning one group at a time by the phase of
//! `Σ conj(crop)·(sum of the others)` over its footprint, in raster order
//! of the groups and back (news travels along the whole scan in one sweep,
//! where simultaneous updates need as many sweeps as the scan is long).
//! Runs on the host: the crops are copied there once per reconstruction.
use num_complex::{Complex32, Complex64};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Unit factors `e^{iθ_g}` (one per crop, equal within a group) that
/// bring the crops' constant phases into agreement where they overlap; the
/// global phase (which nothing fixes) is chosen so the factors average to
/// a real positive number. Footprints are the crops at their positions
/// rounded to whole pixels (the phase of an overlap sum hardly depends on
/// a fraction of a pixel); pixels off the `[H, W]` canvas are ignored.
///
/// # Shapes
/// - `crops`: `[B, M, M]` complex64; `positions_px`: `[B, 2]` f64 `(x, y)`,
///   each crop's centre (pixel `(M/2, M/2)`) as in `stitch::accumulate`
/// - `groups`: `[B]` i64 group index of each crop, in `0..n_groups`
/// - returns `[B]` complex64 on the crops' device
pub fn phase_factors(
    crops: &Tensor,
    positions_px: &Tensor,
    groups: &Tensor,
    n_groups: i64,
    h: i64,
    w: i64,
    sweeps: usize,
) -> Result<Tensor> {
    let s = crops.size();
    if s.len() != 3 || s[1] != s[2] {
        return Err(Error::shape("crops", "[B, M, M]", format!("{s:?}")));
    }
    let (b, m) = (s[0] as usize, s[1] as usize);
    if positions_px.size() != [b as i64, 2] || groups.size() != [b as i64] {
        return Err(Error::shape(
            "positions and groups",
            format!("[{b}, 2] and [{b}]"),
            format!("{:?} and {:?}", positions_px.size(), groups.size()),
        ));
    }
    let group: Vec<i64> = Vec::try_from(groups.to_device(Device::Cpu).to_kind(Kind::Int64))?;
    if let Some(g) = group.iter().find(|g| !(0..n_groups).contains(*g)) {
        return Err(Error::value(
            "groups",
            format!("indices must be in 0..{n_groups}, got {g}"),
        ));
    }
    let index = footprints(positions_px, m as i64, h, w)?;
    let values: Vec<Complex32> = crate::array::tensor_to_c64(&crops.reshape([-1]))?.into_iter().collect();
    let n_groups = n_groups as usize;
    // the crops of each group, and the groups in raster order of a member
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (k, &g) in group.iter().enumerate() {
        members[g as usize].push(k);
    }
    let mut order: Vec<usize> = (0..n_groups).filter(|&g| !members[g].is_empty()).collect();
    order.sort_by_key(|&g| index[members[g][0] * m * m + (m / 2) * m + m / 2]);
    let mut factor = vec![Complex64::new(1.0, 0.0); n_groups];
    let off_canvas = (h * w) as usize;
    let mut canvas = vec![Complex64::new(0.0, 0.0); off_canvas + 1];
    for (k, &g) in group.iter().enumerate() {
        add_crop(&mut canvas, &index, &values, k, m, factor[g as usize]);
    }
    for sweep in 0..sweeps {
        let forward = sweep % 2 == 0;
        for i in 0..order.len() {
            let g = if forward { order[i] } else { order[order.len() - 1 - i] };
            // the others' sum: the canvas without this group
            for &k in &members[g] {
                add_crop(&mut canvas, &index, &values, k, m, -factor[g]);
            }
            let mut agreement = Complex64::new(0.0, 0.0);
            for &k in &members[g] {
                for p in 0..m * m {
                    let q = index[k * m * m + p];
                    if q != off_canvas {
                        let v = values[k * m * m + p];
                        agreement += Complex64::new(v.re as f64, -v.im as f64) * canvas[q];
                    }
                }
            }
            if agreement.norm() > 0.0 {
                factor[g] = agreement / agreement.norm();
            }
            for &k in &members[g] {
                add_crop(&mut canvas, &index, &values, k, m, factor[g]);
            }
        }
    }
    let mean: Complex64 = factor.iter().sum();
    let gauge = if mean.norm() > 0.0 {
        mean.conj() / mean.norm()
    } else {
        Complex64::new(1.0, 0.0)
    };
    let out: Vec<Complex32> = group
        .iter()
        .map(|&g| {
            let f = factor[g as usize] * gauge;
            Complex32::new(f.re as f32, f.im as f32)
        })
        .collect();
    Ok(crate::array::c64_to_tensor(&ndarray::Array1::from(out), crops.device()))
}

/// `canvas[footprint of crop k] += factor · crop k`.
fn add_crop(canvas: &mut [Complex64], index: &[usize], values: &[Complex32], k: usize, m: usize, factor: Complex64) {
    for p in 0..m * m {
        let v = values[k * m * m + p];
        canvas[index[k * m * m + p]] += factor * Complex64::new(v.re as f64, v.im as f64);
    }
}

/// Flat canvas indices of every crop pixel at its rounded position
/// (`h·w` for pixels off the canvas), `B·M·M` of them in crop order.
fn footprints(positions_px: &Tensor, m: i64, h: i64, w: i64) -> Result<Vec<usize>> {
    let pos: Vec<f64> = Vec::try_from(positions_px.to_device(Device::Cpu).to_kind(Kind::Double).reshape([-1]))?;
    if let Some(v) = pos.iter().find(|v| !v.is_finite()) {
        return Err(Error::value("positions", format!("contain {v}")));
    }
    let mut out = Vec::with_capacity(pos.len() / 2 * (m * m) as usize);
    for p in pos.chunks(2) {
        let (x0, y0) = (p[0].round() as i64 - m / 2, p[1].round() as i64 - m / 2);
        for i in 0..m {
            for j in 0..m {
                let (y, x) = (y0 + i, x0 + j);
                out.push(if (0..h).contains(&y) && (0..w).contains(&x) {
                    (y * w + x) as usize
                } else {
                    (h * w) as usize
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_offsets_on_overlapping_copies_are_undone() {
        // crops of one smooth complex image at overlapping positions, each
        // turned by a random constant phase; groups of two share theirs
        let (h, w, m) = (40i64, 60i64, 12i64);
        let image = |y: i64, x: i64| {
            Complex32::from_polar(1.0 + 0.3 * ((x as f32) / 7.0).sin(), 0.4 * ((y + x) as f32 / 9.0).cos())
        };
        let mut pos = Vec::new();
        for y in (8..34).step_by(5) {
            for x in (8..54).step_by(5) {
                pos.push([x as f64, y as f64]);
            }
        }
        let b = pos.len() as i64;
        let groups: Vec<i64> = (0..b).map(|k| k / 2).collect();
        let n_groups = (b + 1) / 2;
        let offsets: Vec<f32> = (0..n_groups).map(|g| ((g * 37 % 11) as f32 - 5.0) * 0.5).collect();
        let mut data = Vec::new();
        for (k, p) in pos.iter().enumerate() {
            let turn = Complex32::from_polar(1.0, offsets[groups[k] as usize]);
            for i in 0..m {
                for j in 0..m {
                    data.push(image(p[1] as i64 - m / 2 + i, p[0] as i64 - m / 2 + j) * turn);
                }
            }
        }
        let crops = crate::array::c64_to_tensor(
            &ndarray::Array3::from_shape_vec((b as usize, m as usize, m as usize), data).unwrap(),
            Device::Cpu,
        );
        let flat: Vec<f64> = pos.iter().flatten().copied().collect();
        let positions = Tensor::from_slice(&flat).view([b, 2]);
        let groups = Tensor::from_slice(&groups);
        // offsets spread over ±2.5 rad; the sweeps undo them (the smooth
        // twists across the scan go slowest), a hundred to a hundredth
        let f = phase_factors(&crops, &positions, &groups, n_groups, h, w, 100).unwrap();
        let close = phase_factors(&crops, &positions, &groups, n_groups, h, w, 300).unwrap();
        // every group's factor undoes its offset up to one common phase
        for (factors, tolerance) in [(&f, 0.01), (&close, 1e-3)] {
            let got: Vec<f64> = Vec::try_from(factors.angle().to_kind(Kind::Double)).unwrap();
            let common = got[0] + offsets[0] as f64;
            for (k, g) in got.iter().enumerate() {
                let want = common - offsets[k / 2] as f64;
                let d = (g - want + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI;
                assert!(d.abs() < tolerance, "crop {k}: {g} vs {want}");
            }
        }
        // members of a group share a factor; the factors average to a positive real
        assert!((f.get(0) - f.get(1)).abs().double_value(&[]) < 1e-6);
        let mean = f.mean(Kind::ComplexFloat);
        assert!(mean.angle().double_value(&[]).abs() < 1e-5);
        // bad inputs are refused
        assert!(phase_factors(&crops, &positions, &groups, 2, h, w, 1).is_err());
        assert!(phase_factors(&crops.narrow(1, 0, 5), &positions, &groups, n_groups, h, w, 1).is_err());
    }
}
