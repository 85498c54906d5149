//! Stitching against an independent numpy reference (the loop of
//! `benches/reference_stitch.py`), including crops that leave the canvas.
mod common;

use std::process::Command;

use common::*;
use ptycho_workbench::array::{tensor_to_c64, tensor_to_f32};
use ptycho_workbench::data::npy;
use ptycho_workbench::recon::stitch::{Scatter, accumulate, accumulate_with, average};
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

#[test]
fn stitching_matches_the_numpy_loop_also_at_the_canvas_edges() -> TestResult {
    init();
    let (b, n, crop, h, w) = (60usize, 32i64, 12i64, 70i64, 90i64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut pos: Vec<f64> = (0..b)
        .flat_map(|_| [rng.random_range(0.0..w as f64), rng.random_range(0.0..h as f64)])
        .collect();
    // partly outside on each side, entirely outside, and integer positions
    pos[..10].copy_from_slice(&[-3.5, 20.2, 88.7, 30.0, 40.0, -4.25, 50.5, 72.0, 300.0, 10.0]);
    pos[10..14].copy_from_slice(&[20.0, 30.0, 21.0, 30.0]);
    tch::manual_seed(2);
    let patches = Tensor::randn([b as i64, n, n], (Kind::ComplexFloat, Device::Cpu));
    let positions = Tensor::from_slice(&pos).view([b as i64, 2]);

    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.npz");
    let p = tensor_to_c64(&patches)?;
    let members = [
        ("patches", npy::encode(p.shape(), p.as_slice().unwrap())),
        ("positions", npy::encode(&[b, 2], &pos)),
    ];
    let bytes = npy::write_npz(std::io::Cursor::new(Vec::new()), &members)?.into_inner();
    std::fs::write(&input, bytes)?;
    let output = dir.path().join("out.npz");
    let status = Command::new(python())
        .arg(fixture("stitch/stitch_reference.py"))
        .arg(&input)
        .arg(&output)
        .args([crop.to_string(), h.to_string(), w.to_string()])
        .status()?;
    assert!(status.success());
    let total = complex(&npz_member(&output, "total"));
    let coverage = f64s(&npz_member(&output, "coverage"));
    // both scatter methods (the GPU's tensor ops and the CPU's host loop)
    for method in [Scatter::Tensor, Scatter::Host, Scatter::Auto] {
        let (sum, cov) = accumulate_with(&patches, &positions, crop, h, w, method)?;
        let ours_sum = tensor_to_c64(&sum)?;
        let ours_cov = tensor_to_f32(&cov)?;
        assert_eq!(ours_sum.shape(), [h as usize, w as usize]);
        let d_sum = ours_sum
            .iter()
            .zip(&total)
            .map(|(a, b)| (a - b).norm())
            .fold(0f32, f32::max);
        let d_cov = ours_cov
            .iter()
            .zip(&coverage)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0f64, f64::max);
        assert!(d_sum < 1e-4, "{method:?}: sum differs by {d_sum}");
        assert!(d_cov < 1e-5, "{method:?}: coverage differs by {d_cov}");
    }
    // the host loop reads a strided view of the patches as it reads a copy
    let wide = Tensor::zeros([b as i64, n + 3, n + 5], (Kind::ComplexFloat, Device::Cpu));
    wide.narrow(1, 1, n).narrow(2, 4, n).copy_(&patches);
    let view = wide.narrow(1, 1, n).narrow(2, 4, n);
    assert!(!view.is_contiguous());
    let (sum, cov) = accumulate_with(&view, &positions, crop, h, w, Scatter::Host)?;
    let (copy_sum, copy_cov) = accumulate_with(&patches, &positions, crop, h, w, Scatter::Host)?;
    assert!(sum.equal(&copy_sum) && cov.equal(&copy_cov));
    // the average, zero where nothing landed, as numpy's np.where division
    let object = complex(&npz_member(&output, "object"));
    let ours = tensor_to_c64(&average(&sum, &cov)?)?;
    let d_obj = ours
        .iter()
        .zip(&object)
        .map(|(a, b)| (a - b).norm())
        .fold(0f32, f32::max);
    assert!(d_obj < 1e-4, "average differs by {d_obj}");
    let uncovered = coverage.iter().filter(|&&c| c <= 1e-6).count();
    assert!(uncovered > 100, "the canvas has uncovered pixels: {uncovered}");
    assert!(average(&sum, &cov.narrow(0, 0, 10)).is_err(), "mismatched shapes");
    // the crops that stay inside put their full weight on the canvas
    assert!(coverage.iter().sum::<f64>() > 40.0 * (crop * crop) as f64);
    Ok(())
}

#[test]
fn stitching_refuses_bad_positions() {
    let patches = Tensor::zeros([2, 16, 16], (Kind::ComplexFloat, Device::Cpu));
    let nan = Tensor::from_slice(&[1.0f64, 2.0, f64::NAN, 3.0]).view([2, 2]);
    assert!(
        accumulate(&patches, &nan, 8, 20, 20)
            .unwrap_err()
            .to_string()
            .contains("not finite")
    );
    let short = Tensor::from_slice(&[1.0f64, 2.0]).view([1, 2]);
    assert!(accumulate(&patches, &short, 8, 20, 20).is_err());
    let ok = Tensor::from_slice(&[8.0f64, 8.0, 9.0, 9.0]).view([2, 2]);
    assert!(accumulate(&patches, &ok, 7, 20, 20).is_err(), "odd crop");
}
