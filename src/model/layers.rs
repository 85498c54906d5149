//! Physics layers between the generator and the loss: the overlap
//! constraint (per-group reassembly and re-extraction), illumination and
//! the far field (DESIGN §3).
use tch::Tensor;

use super::config::ReassemblyNorm;
use crate::error::Result;
use crate::physics::forward::{far_field_intensity_modulated, shift_modulation};
use crate::physics::{
    far_field_amplitude, far_field_intensity, translate_channels, translate_channels_exact, translate_crops,
};

/// Places the `C` patches of each group on a shared `(N + 2·pad)²` canvas at
/// their relative offsets and averages where they overlap (normalised by
/// coverage). Reassembly is per group, never across the batch.
///
/// # Shapes
/// - `patches`: `[B, C, N, N]` complex64
/// - `offsets_px`: `[B, C, 2]` float, `(dx, dy)` = member − centroid
/// - returns `[B, M, M]` complex64 with `M = N + 2·pad`
pub fn reassemble(patches: &Tensor, offsets_px: &Tensor, pad: i64) -> Result<Tensor> {
    reassemble_with(patches, offsets_px, pad, ReassemblyNorm::Coverage)
}

/// [`reassemble`] with the division `norm` says: by the patches' coverage,
/// or PtychoPINN's (each patch's central `N/2` square's coverage + 0.001).
///
/// # Shapes
/// as [`reassemble`]
pub fn reassemble_with(patches: &Tensor, offsets_px: &Tensor, pad: i64, norm: ReassemblyNorm) -> Result<Tensor> {
    // the batch axis is always −1, so a traced graph takes any batch size
    let s = patches.size();
    let (c, n) = (s[1], s[2]);
    let m = n + 2 * pad;
    let flat_offsets = offsets_px.reshape([-1, 2]);
    let ri = patches.reshape([-1, n, n]).view_as_real().permute([0, 3, 1, 2]);
    let ones = match norm {
        ReassemblyNorm::Coverage => ri.narrow(1, 0, 1).ones_like(),
        ReassemblyNorm::CentreSquare => centre_square(n, patches.device()).expand([ri.size()[0], 1, n, n], false),
    };
    // PtychoPINN's division amplifies the coverage's rounding (see
    // `translate_channels_exact`)
    let translate = match norm {
        ReassemblyNorm::Coverage => translate_channels,
        ReassemblyNorm::CentreSquare => translate_channels_exact,
    };
    let (placed, coverage) = if patches.requires_grad() {
        // training: only (re, im) carry a gradient, so the coverage (which
        // does not depend on the patches) moves in a pass of its own and the
        // backward pass samples two channels instead of three
        let moved = translate(&ri.constant_pad_nd([pad, pad, pad, pad]), &flat_offsets)?
            .view([-1, c, 2, m, m])
            .sum_dim_intlist(1, false, None);
        let coverage = translate(&ones.constant_pad_nd([pad, pad, pad, pad]), &flat_offsets)?
            .view([-1, c, m, m])
            .sum_dim_intlist(1, false, None);
        (moved, coverage)
    } else {
        // channels (re, im, 1): the patch and its coverage move in one pass
        let stacked = Tensor::cat(&[&ri, &ones], 1).constant_pad_nd([pad, pad, pad, pad]);
        let moved = translate(&stacked, &flat_offsets)?
            .view([-1, c, 3, m, m])
            .sum_dim_intlist(1, false, None);
        (moved.narrow(1, 0, 2), moved.select(1, 2))
    };
    let placed = placed.permute([0, 2, 3, 1]).contiguous().view_as_complex();
    Ok(match norm {
        // zero where nothing lands; an average of the patches elsewhere
        ReassemblyNorm::Coverage => placed / coverage.clamp_min(1e-3),
        ReassemblyNorm::CentreSquare => placed / (coverage + CENTRE_SQUARE_EPSILON),
    })
}

/// What PtychoPINN adds to the central squares' coverage before dividing.
pub const CENTRE_SQUARE_EPSILON: f64 = 1e-3;

/// 1 in the central `N/2 × N/2` square, 0 outside. # Shapes: `[1, 1, N, N]` f32.
fn centre_square(n: i64, device: tch::Device) -> Tensor {
    let q = n / 4;
    Tensor::ones([1, 1, n / 2, n / 2], (tch::Kind::Float, device)).constant_pad_nd([q, n - n / 2 - q, q, n - n / 2 - q])
}

/// A gridsize-1 patch divided as [`reassemble_with`] divides it, without
/// moving it: for [`ReassemblyNorm::CentreSquare`] the centre by 1.001 and
/// the border by 0.001, for [`ReassemblyNorm::Coverage`] unchanged.
///
/// # Shapes
/// `[B, C, N, N]` complex64 → the same
pub fn normalise_unmoved(patches: &Tensor, norm: ReassemblyNorm) -> Tensor {
    match norm {
        ReassemblyNorm::Coverage => patches.shallow_clone(),
        ReassemblyNorm::CentreSquare => {
            let n = patches.size()[2];
            patches / (centre_square(n, patches.device()) + CENTRE_SQUARE_EPSILON)
        }
    }
}

/// The overlap constraint in each member's own frame: member `k`'s patch
/// becomes `Σ_j T(o_j − o_k)[P_j] / Σ_j T(o_j − o_k)[1]` over its `N×N`
/// window (`T`: the bilinear translation, `o`: the offsets), the average of
/// the group's patches where they overlap, as [`reassemble`] then
/// [`extract`] give it, but with every member's own patch unmoved. Going
/// through a canvas at the centroid interpolates each patch twice when the
/// offsets are fractional (a `[¼, ½, ¼]` blur at half a pixel), which wipes
/// one-pixel detail out of the patches the forward model diffracts; here
/// only the neighbours' contributions are interpolated, once.
///
/// # Shapes
/// - `patches`: `[B, C, N, N]` complex64; `offsets_px`: `[B, C, 2]` `(dx, dy)`
/// - returns `[B, C, N, N]` complex64
pub fn constrain_in_member_frames(patches: &Tensor, offsets_px: &Tensor) -> Result<Tensor> {
    let s = patches.size();
    let (c, n) = (s[1], s[2]);
    let offsets = offsets_px.to_kind(tch::Kind::Float);
    // shifts[b, j, k] = o_j − o_k: patch j seen from member k
    let shifts = (offsets.unsqueeze(2) - offsets.unsqueeze(1)).reshape([-1, c, 2]);
    let ri = patches.reshape([-1, n, n]).view_as_real().permute([0, 3, 1, 2]);
    let stacked = Tensor::cat(&[&ri, &ri.narrow(1, 0, 1).ones_like()], 1);
    // [B·C(j), C(k), 3, N, N] → summed over j → [B, C(k), 3, N, N]
    let seen = translate_crops(&stacked, &shifts, 0, n)?
        .view([-1, c, c, 3, n, n])
        .sum_dim_intlist(1, false, None);
    let coverage = seen.select(2, 2).clamp_min(1e-3).unsqueeze(2);
    let averaged = seen.narrow(2, 0, 2) / coverage;
    Ok(averaged.permute([0, 1, 3, 4, 2]).contiguous().view_as_complex())
}

/// Cuts each member's `N×N` patch back out of its group's canvas.
///
/// # Shapes
/// - `canvas`: `[B, M, M]` complex64; `offsets_px`: `[B, C, 2]` → `[B, C, N, N]`
pub fn extract(canvas: &Tensor, offsets_px: &Tensor, n: i64) -> Result<Tensor> {
    let m = canvas.size()[1];
    let pad = (m - n) / 2;
    // member c's patch is the canvas moved by −offset, cropped at the centre:
    // only the N×N windows are sampled, from the one canvas per group
    let ri = canvas.view_as_real().permute([0, 3, 1, 2]);
    let crops = translate_crops(&ri, &(-offsets_px), pad, n)?;
    Ok(crops.permute([0, 1, 3, 4, 2]).contiguous().view_as_complex())
}

/// The central `N×N` of a canvas: the object seen from the group centroid.
///
/// # Shapes
/// `[B, M, M]` → `[B, N, N]`
pub fn trim(canvas: &Tensor, n: i64) -> Tensor {
    let pad = (canvas.size()[1] - n) / 2;
    canvas.narrow(1, pad, n).narrow(2, pad, n)
}

/// Far-field amplitude of object patches under the probe: one coherent
/// probe `[N, N]`, or K incoherent modes `[K, N, N]` (a partially coherent
/// beam), whose intensities add: `A = sqrt(Σ_k |F(P_k·O)|²)`.
///
/// # Shapes
/// - `patches`: `[B, C, N, N]` complex64; `probe`: `[N, N]` or `[K, N, N]`
///   complex64 → `[B, C, N, N]` f32
pub fn diffract(patches: &Tensor, probe: &Tensor) -> Tensor {
    diffract_prepared(patches, &DiffractionProbe::new(probe))
}

/// A probe prepared once for [`diffract_prepared`]: for an even N it carries
/// the fftshift checkerboard ([`shift_modulation`]), so a training step
/// multiplies the patches by one tensor instead of building the checkerboard
/// and multiplying twice.
#[derive(Debug)]
pub struct DiffractionProbe {
    /// `[N, N]` (one mode) or `[K, N, N]` with K ≥ 2; a single mode given
    /// as `[1, N, N]` is kept as `[N, N]`.
    probe: Tensor,
    /// Whether `probe` carries the checkerboard (even N).
    modulated: bool,
}

impl DiffractionProbe {
    /// # Shapes
    /// `probe`: `[N, N]` or `[K, N, N]` complex
    pub fn new(probe: &Tensor) -> Self {
        let probe = if probe.dim() == 3 && probe.size()[0] == 1 {
            probe.squeeze_dim(0)
        } else {
            probe.shallow_clone()
        };
        let s = probe.size();
        let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
        let modulated = h % 2 == 0 && w % 2 == 0;
        let probe = if modulated {
            &probe * shift_modulation(h, w, probe.device())
        } else {
            probe
        };
        DiffractionProbe { probe, modulated }
    }

    /// How many incoherent modes the probe has.
    pub fn modes(&self) -> i64 {
        if self.probe.dim() == 3 { self.probe.size()[0] } else { 1 }
    }
}

/// [`diffract`] with a prepared probe. With K modes every exit wave is
/// formed K times (`[B, C, K, N, N]`): K times the memory and FFTs of one.
///
/// # Shapes
/// - `patches`: `[B, C, N, N]` complex64 → `[B, C, N, N]` f32
pub fn diffract_prepared(patches: &Tensor, probe: &DiffractionProbe) -> Tensor {
    if probe.modes() > 1 {
        let exit_waves = patches.unsqueeze(2) * &probe.probe;
        let intensity = if probe.modulated {
            far_field_intensity_modulated(&exit_waves)
        } else {
            far_field_intensity(&exit_waves)
        };
        return intensity.sum_dim_intlist(2, false, None).sqrt();
    }
    let exit_waves = patches * &probe.probe;
    if probe.modulated {
        far_field_intensity_modulated(&exit_waves).sqrt()
    } else {
        far_field_amplitude(&exit_waves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn offsets(v: &[f32], b: i64, c: i64) -> Tensor {
        Tensor::from_slice(v).view([b, c, 2])
    }

    #[test]
    fn the_member_frame_constraint_keeps_each_patch_sharp_and_averages_the_overlap() {
        // one group of two copies of the same image 1.5 px apart: each member
        // sees the same average; a member's own pixels are not interpolated
        let n = 12i64;
        tch::manual_seed(4);
        let img = Tensor::randn([n, n], (Kind::ComplexFloat, Device::Cpu));
        let offs = offsets(&[-0.75, 0.0, 0.75, 0.0], 1, 2);
        // member 1 holds the image moved by 1.5 px (any image would do)
        let shifted = crate::physics::translate(&img.unsqueeze(0), &offsets(&[1.5, 0.0], 1, 1).view([1, 2])).unwrap();
        let patches = Tensor::stack(&[img.shallow_clone(), shifted.squeeze_dim(0)], 0).unsqueeze(0);
        let single = Tensor::stack(&[img.shallow_clone()], 0).view([1, 1, n, n]);
        let alone = constrain_in_member_frames(&single, &offsets(&[0.3, -0.2], 1, 1)).unwrap();
        assert!(
            (&alone - &single).abs().max().double_value(&[]) < 1e-5,
            "a lone patch comes back unchanged"
        );
        let out = constrain_in_member_frames(&patches, &offs).unwrap();
        assert_eq!(out.size(), [1, 2, n, n]);
        // member 0's left columns (which member 1 does not reach) are its own, exactly
        let own = out.get(0).get(0).narrow(1, 0, 1);
        assert!((own - img.narrow(1, 0, 1)).abs().max().double_value(&[]) < 1e-5);
        // by hand at an interior pixel: member 0 averages itself with member 1
        // moved by o₁ − o₀ = +1.5 px, i.e. member 1 sampled at x − 1.5 (bilinear)
        let (y, x) = (5i64, 4i64);
        let s1 = patches.get(0).get(1);
        let m1 = (s1.get(y).get(x - 2) + s1.get(y).get(x - 1)) * 0.5;
        let expect = (img.get(y).get(x) + m1) * 0.5;
        let got = out.get(0).get(0).get(y).get(x);
        assert!((got - expect).abs().double_value(&[]) < 1e-5);
    }

    #[test]
    fn training_and_inference_reassemble_the_same_canvas() {
        tch::manual_seed(9);
        let patches = Tensor::randn([2, 4, 16, 16], (Kind::ComplexFloat, Device::Cpu));
        let offs = (Tensor::rand([2, 4, 2], (Kind::Float, Device::Cpu)) - 0.5) * 6.0;
        let inference = reassemble(&patches, &offs, 4).unwrap();
        let leaf = patches.copy().set_requires_grad(true);
        let training = reassemble(&leaf, &offs, 4).unwrap();
        let d = (&training - &inference).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{d}");
        // and the gradient reaches the patches: d/dP Σ|canvas|² is nonzero
        training.abs().square().sum(Kind::Float).backward();
        assert!(leaf.grad().abs().max().double_value(&[]) > 0.0);
    }

    #[test]
    fn identical_patches_reassemble_to_themselves() {
        tch::manual_seed(4);
        // one object seen at four offsets: patches cut from one field
        let field = Tensor::randn([1, 40, 40], (Kind::ComplexFloat, Device::Cpu));
        let offs = offsets(&[-2.0, -3.0, 2.0, -3.0, -2.0, 3.0, 2.0, 3.0], 1, 4);
        // patches of the field around the canvas centre + offset
        let pad = 4;
        let cut = |dx: i64, dy: i64| field.narrow(1, 12 + dy, 16).narrow(2, 12 + dx, 16);
        let patches = Tensor::stack(&[cut(-2, -3), cut(2, -3), cut(-2, 3), cut(2, 3)], 1);
        let canvas = reassemble(&patches, &offs, pad).unwrap();
        // inside the union of the patches the canvas is the field itself
        let expect = field.narrow(1, 12 - pad, 24).narrow(2, 12 - pad, 24);
        let inner = |t: &Tensor| t.narrow(1, 6, 12).narrow(2, 6, 12);
        let d = (inner(&canvas) - inner(&expect)).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{d}");
        // re-extraction returns each patch where it was covered
        let back = extract(&canvas, &offs, 16).unwrap();
        let d = (&back - &patches).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{d}");
    }

    /// `sqrt(Σ_k |DFT(P_k·O)|²)/N` by direct summation (float64), zero
    /// frequency at index `⌊N/2⌋`.
    fn direct_mixed_state(patch: &[(f64, f64)], modes: &[Vec<(f64, f64)>], n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * n];
        for (u, v) in (0..n).flat_map(|u| (0..n).map(move |v| (u, v))) {
            let (fu, fv) = (u as f64 - (n / 2) as f64, v as f64 - (n / 2) as f64);
            for mode in modes {
                let (mut re, mut im) = (0.0, 0.0);
                for (y, x) in (0..n).flat_map(|y| (0..n).map(move |x| (y, x))) {
                    let (pr, pi) = mode[y * n + x];
                    let (or, oi) = patch[y * n + x];
                    let (er, ei) = (pr * or - pi * oi, pr * oi + pi * or);
                    let angle = -2.0 * std::f64::consts::PI * (fu * y as f64 + fv * x as f64) / n as f64;
                    re += er * angle.cos() - ei * angle.sin();
                    im += er * angle.sin() + ei * angle.cos();
                }
                out[u * n + v] += (re * re + im * im) / (n * n) as f64;
            }
        }
        out.iter().map(|v| v.sqrt()).collect()
    }

    #[test]
    fn several_modes_add_their_far_field_intensities() {
        // even N (the checkerboard path) and odd N (fftshift)
        for n in [6usize, 5] {
            tch::manual_seed(n as i64);
            let patch = Tensor::randn([1, 1, n as i64, n as i64], (Kind::ComplexFloat, Device::Cpu));
            let modes = Tensor::randn([3, n as i64, n as i64], (Kind::ComplexFloat, Device::Cpu));
            let pairs = |t: &Tensor| -> Vec<(f64, f64)> {
                let v: Vec<f32> = Vec::try_from(t.view_as_real().reshape([-1])).unwrap();
                v.chunks(2).map(|c| (c[0] as f64, c[1] as f64)).collect()
            };
            let want = direct_mixed_state(
                &pairs(&patch),
                &(0..3).map(|k| pairs(&modes.get(k))).collect::<Vec<_>>(),
                n,
            );
            let got: Vec<f32> = Vec::try_from(diffract(&patch, &modes).reshape([-1])).unwrap();
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert!(d < 1e-4, "N = {n}: {d}");
            // one mode given as [1, N, N] is the coherent probe [N, N]
            let one = diffract(&patch, &modes.narrow(0, 0, 1));
            let coherent = diffract(&patch, &modes.get(0));
            assert_eq!((one - coherent).abs().max().double_value(&[]), 0.0);
        }
    }

    #[test]
    fn a_one_pixel_patch_lands_at_centre_plus_offset() {
        let patch = Tensor::zeros([1, 1, 8, 8], (Kind::ComplexFloat, Device::Cpu));
        let _ = patch.get(0).get(0).get(4).get(4).fill_(1.0); // index (N/2, N/2)
        let canvas = reassemble(&patch, &offsets(&[2.0, 1.0], 1, 1), 3).unwrap();
        // canvas centre M/2 = 7; + (dx, dy) = (2, 1) → column 9, row 8
        let i = canvas.abs().view([-1]).argmax(0, false).int64_value(&[]);
        assert_eq!((i / 14, i % 14), (8, 9));
    }
}
