//! What the network sees: diffraction amplitudes normalised per dataset.
use ndarray::ArrayView3;

use crate::error::{Error, Result};

/// PtychoPINN's `X_full` factor: `sqrt((N/2)² / mean_k Σ X_k²)`, which makes the
/// mean pattern energy `(N/2)²` whatever the dose or probe scale. Summed in
/// f64, patterns in order.
///
/// # Shapes
/// `diffraction`: `[n, N, N]` amplitude
pub fn input_scale(diffraction: ArrayView3<'_, f32>) -> Result<f64> {
    let s = diffraction.shape();
    let (count, n) = (s[0], s[1]);
    if count == 0 {
        return Err(Error::value("diffraction", "no patterns to normalise"));
    }
    let energy = diffraction.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / count as f64;
    if !(energy.is_finite() && energy > 0.0) {
        return Err(Error::value(
            "diffraction",
            format!("mean pattern energy must be positive, got {energy}"),
        ));
    }
    Ok(((n as f64 / 2.0).powi(2) / energy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn normalised_energy_is_n_half_squared() {
        let d = Array3::from_shape_fn((3, 8, 8), |(k, i, j)| ((k + i * j) % 5) as f32 * 0.1);
        let s = input_scale(d.view()).unwrap();
        let e: f64 = d.iter().map(|&x| (x as f64 * s).powi(2)).sum::<f64>() / 3.0;
        assert!((e - 16.0).abs() < 1e-9, "{e}");
        assert!(input_scale(Array3::<f32>::zeros((2, 8, 8)).view()).is_err());
    }
}
