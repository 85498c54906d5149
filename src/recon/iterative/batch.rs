//! What every solver does with a mini-batch: gather patches, propagate, and
//! scatter-add object updates back; plus the normalisers they share.
use num_complex::Complex32;
use tch::{Device, Kind, Tensor};

use crate::array::{host_values, host_values_mut};

/// The solver's unknowns, on the device.
pub(crate) struct State {
    /// Object on the padded grid, flat `[padded_h·padded_w]` complex64.
    pub object: Tensor,
    /// Probe modes times the checkerboard `(−1)^(i+j)`, `[K, N, N]`
    /// complex64 (K incoherent modes; K = 1 for a coherent probe), so that
    /// `FFT2_ortho(probe·patch)` has its zero frequency at `(N/2, N/2)` like
    /// the measured amplitudes (`physics::forward::shift_modulation`).
    pub probe: Tensor,
}

/// One mini-batch of positions.
pub(crate) struct Batch {
    /// Flat object indices of every window pixel `[B·N·N]` i64.
    pub index: Tensor,
    /// Measured amplitudes `[B, N, N]` f32; −1 marks a pixel that is not
    /// fitted (a detector defect, a saturated count) when `masked`.
    pub amplitude: Tensor,
    /// Whether `amplitude` holds masked (−1) pixels.
    pub masked: bool,
    pub size: i64,
    /// Sub-pixel remainders `[B, 2]` f32 `(δy, δx)` of the positions after
    /// rounding to the windows: the probe is shifted by them
    /// ([`shifted_probes`]). `None`: whole-pixel positions.
    pub shifts: Option<Tensor>,
}

impl Batch {
    /// `values` (`[B, N, N]`) where the batch's pixels are fitted, `fill`
    /// where they are masked.
    pub fn where_fitted(&self, values: Tensor, fill: f64) -> Tensor {
        if self.masked {
            let fill = Tensor::full([1], fill, (values.kind(), values.device()));
            values.where_self(&self.amplitude.ge(0.0), &fill)
        } else {
            values
        }
    }
}

/// `e^{−2πi(f_y·δy + f_x·δx)}` for each shift `[B, 2]` `(δy, δx)` with the
/// frequencies of a modulated field's spectrum: the solver's probe carries
/// the checkerboard `(−1)^(i+j)`, which moves frequency `f_k` to index
/// `k + N/2`, so index `k` holds `f = (k − N/2)/N`.
///
/// # Shapes
/// `shifts`: `[B, 2]` f32 → `[B, N, N]` complex64
fn shift_ramps(shifts: &Tensor, n: i64) -> Tensor {
    let device = shifts.device();
    let f = (Tensor::arange(n, (Kind::Float, device)) - (n / 2) as f64) / n as f64;
    let dy = shifts.select(1, 0).view([-1, 1, 1]);
    let dx = shifts.select(1, 1).view([-1, 1, 1]);
    let angle = (f.view([1, n, 1]) * dy + f.view([1, 1, n]) * dx) * (-2.0 * std::f64::consts::PI);
    Tensor::polar(&angle.ones_like(), &angle)
}

/// The solver's (modulated) probe modes moved by each shift `(δy, δx)`, a
/// Fourier shift: `out(r) = P(r − δ)`. Position `x = round(x) + δ` sees the
/// exit wave `P(r)·O(r + δ)` in its whole-pixel window, whose far-field
/// magnitude is that of `P(r − δ)·O(r)`.
///
/// # Shapes
/// `probe`: `[K, N, N]` complex64, `shifts`: `[B, 2]` → `[B, K, N, N]`
pub(crate) fn shifted_probes(probe: &Tensor, shifts: &Tensor) -> Tensor {
    let n = probe.size()[1];
    let spectrum = probe.fft_fft2(None::<&[i64]>, [-2, -1], "ortho").unsqueeze(0);
    (spectrum * shift_ramps(shifts, n).unsqueeze(1)).fft_ifft2(None::<&[i64]>, [-2, -1], "ortho")
}

/// `Σ_b values_b(r + δ_b)`: each position's term moved back by its shift
/// (the adjoint of [`shifted_probes`]) and summed, one inverse FFT.
///
/// # Shapes
/// `values`: `[B, N, N]` or `[B, K, N, N]` complex64, `shifts`: `[B, 2]` →
/// `[N, N]` or `[K, N, N]`
pub(crate) fn unshifted_sum(values: &Tensor, shifts: &Tensor) -> Tensor {
    let n = values.size()[values.dim() - 1];
    let mut ramps = shift_ramps(shifts, n).conj_physical();
    if values.dim() == 4 {
        ramps = ramps.unsqueeze(1);
    }
    let spectra = values.fft_fft2(None::<&[i64]>, [-2, -1], "ortho") * ramps;
    spectra
        .sum_dim_intlist(0, false, None::<Kind>)
        .fft_ifft2(None::<&[i64]>, [-2, -1], "ortho")
}

/// `Σ_b values_b`, moved back by each position's shift when there are shifts.
///
/// # Shapes
/// `values`: `[B, N, N]` or `[B, K, N, N]` complex64 → `[N, N]` or `[K, N, N]`
pub(crate) fn probe_frame_sum(values: &Tensor, batch: &Batch) -> Tensor {
    match &batch.shifts {
        None => values.sum_dim_intlist(0, false, None::<Kind>),
        Some(s) => unshifted_sum(values, s),
    }
}

/// `Σ_b |O_b|²` in the probe's frame (real, floored at 0: a Fourier shift
/// of a positive image rings slightly).
///
/// # Shapes
/// `patches`: `[B, N, N]` complex64 → `[N, N]` f32
pub(crate) fn probe_frame_power(patches: &Tensor, batch: &Batch) -> Tensor {
    let power = modulus(patches).square();
    match &batch.shifts {
        None => power.sum_dim_intlist(0, false, None::<Kind>),
        Some(s) => unshifted_sum(&Tensor::complex(&power, &power.zeros_like()), s)
            .real()
            .clamp_min(0.0),
    }
}

/// The forward model evaluated on a batch, with K incoherent probe modes:
/// the far-field amplitude is `sqrt(Σ_k |FFT(P_k·O_b)|²)`.
pub(crate) struct Forward {
    /// The probe modes each position sees: `[K, N, N]` for whole-pixel
    /// positions, else `[B, K, N, N]` ([`shifted_probes`]).
    pub probes: Tensor,
    /// Object patches `[B, N, N]` complex64.
    pub patches: Tensor,
    /// Exit waves `probe_k·patches` `[B, K, N, N]` complex64.
    pub exit_waves: Tensor,
    /// `FFT2_ortho(exit_waves)` `[B, K, N, N]` complex64.
    pub spectrum: Tensor,
    /// `sqrt(Σ_k |spectrum_k|²)` `[B, N, N]` f32.
    pub amplitude: Tensor,
}

impl Forward {
    pub fn new(state: &State, batch: &Batch) -> Forward {
        let n = state.probe.size()[1];
        let patches = state.object.index_select(0, &batch.index).view([batch.size, n, n]);
        let probes = match &batch.shifts {
            None => state.probe.shallow_clone(),
            Some(s) => shifted_probes(&state.probe, s),
        };
        let exit_waves = patches.unsqueeze(1) * &probes;
        let spectrum = exit_waves.fft_fft2(None::<&[i64]>, [-2, -1], "ortho");
        let amplitude = if spectrum.size()[1] == 1 {
            modulus(&spectrum.squeeze_dim(1))
        } else {
            mode_power(&spectrum).sqrt()
        };
        Forward {
            probes,
            patches,
            exit_waves,
            spectrum,
            amplitude,
        }
    }

    /// `Σ (|Ψ̂| − A)²` over the batch's fitted pixels, a 0-d f64 tensor
    /// (stays on the device).
    pub fn amplitude_error(&self, batch: &Batch) -> Tensor {
        batch
            .where_fitted((&self.amplitude - &batch.amplitude).square(), 0.0)
            .sum(Kind::Double)
    }

    /// `A/|Ψ̂|` where the batch is fitted, 1 (no change) where it is masked.
    pub fn modulus_ratio(&self, batch: &Batch) -> Tensor {
        batch.where_fitted(&batch.amplitude / self.amplitude.clamp_min(1e-30), 1.0)
    }

    /// `IFFT2_ortho(spectrum_k·ratio) − exit_waves_k`: the exit-wave change
    /// of every mode that moves the far field to `spectrum·ratio` (`ratio`
    /// real, `[B, N, N]`); `[B, K, N, N]`.
    pub fn exit_wave_change(&self, ratio: &Tensor) -> Tensor {
        let target = scale_complex(&self.spectrum, &ratio.unsqueeze(1)).fft_ifft2(None::<&[i64]>, [-2, -1], "ortho");
        target - &self.exit_waves
    }

    /// `Σ_k conj(P_k)·values_k`: an exit-wave quantity `[B, K, N, N]` taken
    /// to the object, `[B, N, N]`.
    pub fn to_object(&self, values: &Tensor) -> Tensor {
        sum_modes(&(values * self.probes.conj_physical()))
    }

    /// `Σ_k |P_k|²` as each position sees it: `[N, N]`, or `[B, N, N]` with
    /// sub-pixel shifts.
    pub fn probe_power(&self) -> Tensor {
        mode_power(&self.probes)
    }
}

/// `Σ_k |z_k|²` over the mode axis (third from last) of `[K, N, N]` or
/// `[B, K, N, N]` fields (probe modes, their far fields).
pub(crate) fn mode_power(z: &Tensor) -> Tensor {
    let axis = z.dim() as i64 - 3;
    if z.size()[axis as usize] == 1 {
        modulus(&z.squeeze_dim(axis)).square()
    } else {
        power(z).sum_dim_intlist(axis, false, None::<Kind>)
    }
}

/// The sum over the mode axis (1) of `[B, K, N, N]`: `[B, N, N]` (a view
/// when K = 1).
pub(crate) fn sum_modes(values: &Tensor) -> Tensor {
    if values.size()[1] == 1 {
        values.squeeze_dim(1)
    } else {
        values.sum_dim_intlist(1, false, None::<Kind>)
    }
}

/// `|z|²` (real), one pass over the real view.
pub(crate) fn power(z: &Tensor) -> Tensor {
    z.view_as_real().square().sum_dim_intlist(-1, false, None::<Kind>)
}

/// What a solver step returns.
pub(crate) struct Step {
    /// `Σ (|Ψ̂| − A)²` over the batch's fitted pixels (0-d f64, on the device).
    pub error: Tensor,
    /// Each position's estimated shift `[B, 2]` `(δx, δy)` px (f32, on the
    /// device), when position correction asked for it.
    pub shift: Option<Tensor>,
}

/// `|z|` in two passes over the real view (libtorch's complex `abs` is
/// several times slower).
pub(crate) fn modulus(z: &Tensor) -> Tensor {
    let ri = z.view_as_real();
    let im = ri.select(-1, 1);
    let mut out = ri.select(-1, 0).square();
    let _ = out.addcmul_(&im, &im);
    out.sqrt_()
}

/// complex `z` times real `r` of the same shape, without promoting `r`.
pub(crate) fn scale_complex(z: &Tensor, r: &Tensor) -> Tensor {
    (z.view_as_real() * r.unsqueeze(-1)).view_as_complex()
}

/// `Σ_b Re(conj(a_b)·b_b)` over whole tensors, a 0-d f32 tensor.
pub(crate) fn real_inner(a: &Tensor, b: &Tensor) -> Tensor {
    (a.view_as_real() * b.view_as_real()).sum(Kind::Float)
}

/// `Σ |z|²`, a 0-d f32 tensor.
pub(crate) fn norm_sqr(z: &Tensor) -> Tensor {
    z.view_as_real().square().sum(Kind::Float)
}

/// Scatter-adds `values` (`[B, N, N]`, complex or real) at the batch's window
/// pixels onto a flat grid of `len` pixels.
pub(crate) fn scatter(values: &Tensor, batch: &Batch, len: i64) -> Tensor {
    Tensor::zeros([len], (values.kind(), values.device())).index_add(0, &batch.index, &values.reshape([-1]))
}

/// The normaliser `(1 − w)·s + w·max s` of an illumination map `s`.
pub(crate) fn normaliser(s: &Tensor, max_weight: f64) -> Tensor {
    s * (1.0 - max_weight) + s.max() * max_weight
}

/// The object's illumination by the batch, `Σ_b Σ_k |P_k,b|²` at each grid
/// pixel (each position's probe modes shifted by its sub-pixel remainder, if
/// any); `probe` is `[K, N, N]`.
pub(crate) fn illumination(probe: &Tensor, batch: &Batch, len: i64) -> Tensor {
    let n = probe.size()[1];
    let p2 = match &batch.shifts {
        None => mode_power(probe).unsqueeze(0).expand([batch.size, n, n], false),
        Some(s) => mode_power(&shifted_probes(probe, s)),
    };
    scatter(&p2, batch, len)
}

/// Sums over a batch's windows on the padded grid, in two grids that stay
/// zero between batches: a batch adds into the pixels it covers, reads them
/// back and clears them, so it costs `O(B·N²)` whatever the object's size
/// (fresh full-grid sums and a full-grid normaliser cost `O(grid)` per batch,
/// which dominates on large objects). On the CPU this is one host loop over
/// the window pixels (libtorch's indexed adds, gathers and fills cost more
/// per pixel than the dense element-wise ops they replace); elsewhere it is
/// `index_add_` / `index_select` / `index_fill_`. Both give the full-grid
/// formula's values bit for bit on the CPU (the sums are taken in the
/// same order, the normaliser with the same float32 operations).
pub(crate) struct WindowSums {
    /// `Σ_b values_b` `[len]` complex64.
    values: Tensor,
    /// `S = Σ_b |P|²` `[len]` f32.
    illumination: Tensor,
}

impl WindowSums {
    pub fn new(len: i64, device: Device) -> WindowSums {
        WindowSums {
            values: Tensor::zeros([len], (Kind::ComplexFloat, device)),
            illumination: Tensor::zeros([len], (Kind::Float, device)),
        }
    }

    /// The preconditioned object direction at every window pixel of the
    /// batch, `factor·Σ_b values_b / ((1 − w)·S + w·max S)` with
    /// `S = Σ_b |P|²`, both sums taken over the batch's windows at each grid
    /// pixel. Overlapping windows read the same sums. Outside the windows the
    /// direction is zero (`Σ values = 0` there), which is why it is only
    /// formed inside them; `max S` over the windows is `max S` over the grid.
    ///
    /// # Shapes
    /// `values`: `[B, N, N]` complex64; `p2`: the probe power `Σ_k |P_k|²`,
    /// `[N, N]` or `[B, N, N]` f32 (one per position); returns `[B, N, N]`
    /// complex64.
    pub fn direction(&mut self, values: &Tensor, p2: &Tensor, batch: &Batch, max_weight: f64, factor: f64) -> Tensor {
        if self.values.device() == Device::Cpu {
            self.direction_on_host(&values.contiguous(), &p2.contiguous(), batch, max_weight, factor)
        } else {
            self.direction_with_tensors(values, p2, batch, max_weight, factor)
        }
    }

    /// [`WindowSums::direction`] with libtorch's indexed ops (any device).
    fn direction_with_tensors(
        &mut self,
        values: &Tensor,
        p2: &Tensor,
        batch: &Batch,
        max_weight: f64,
        factor: f64,
    ) -> Tensor {
        let shape = values.size();
        let power = if p2.dim() == 3 {
            p2.reshape([-1])
        } else {
            p2.unsqueeze(0).expand(&shape, false).reshape([-1])
        };
        let _ = self.illumination.index_add_(0, &batch.index, &power);
        let _ = self.values.index_add_(0, &batch.index, &values.reshape([-1]));
        let s = self.illumination.index_select(0, &batch.index);
        let sum = self.values.index_select(0, &batch.index);
        let _ = self.illumination.index_fill_(0, &batch.index, 0.0);
        let _ = self.values.index_fill_(0, &batch.index, 0.0);
        scale_complex(&sum, &(normaliser(&s, max_weight).reciprocal() * factor)).view(shape.as_slice())
    }

    /// [`WindowSums::direction`] as host loops over contiguous CPU tensors,
    /// with the tensor path's float32 operations in its order: sums in
    /// index order, `S·(1 − w) + max S·w`, its reciprocal, times `factor`,
    /// times the sum's real and imaginary parts.
    fn direction_on_host(
        &mut self,
        values: &Tensor,
        p2: &Tensor,
        batch: &Batch,
        max_weight: f64,
        factor: f64,
    ) -> Tensor {
        let mut out = Tensor::empty(values.size(), (Kind::ComplexFloat, Device::Cpu));
        let index: &[i64] = host_values(&batch.index).expect("the batch's indices are a contiguous CPU i64 tensor");
        let values: &[Complex32] = host_values(values).expect("contiguous CPU complex64 values");
        let p2: &[f32] = host_values(p2).expect("contiguous CPU f32 probe power");
        assert_eq!(index.len(), values.len(), "one index per value");
        // one probe for all (cycled) or one per position (as long as the values)
        assert!(
            values.len().is_multiple_of(p2.len()),
            "probe power per window or per position"
        );
        // SAFETY: the two grids are this struct's own (never viewed or shared)
        // and `out` was just created; nothing else touches their storage.
        let (sum, s, out_values) = unsafe {
            (
                host_values_mut::<Complex32>(&mut self.values).expect("complex64 grid"),
                host_values_mut::<f32>(&mut self.illumination).expect("f32 grid"),
                host_values_mut::<Complex32>(&mut out).expect("fresh complex64 tensor"),
            )
        };
        for ((&i, &v), &p) in index.iter().zip(values).zip(p2.iter().cycle()) {
            let i = i as usize;
            sum[i] += v;
            s[i] += p;
        }
        // NaN propagates, as in libtorch's max
        let max_s = index.iter().map(|&i| s[i as usize]).fold(f32::NEG_INFINITY, |m, v| {
            if m.is_nan() || v.is_nan() { f32::NAN } else { m.max(v) }
        });
        let (keep, bright, factor) = ((1.0 - max_weight) as f32, max_s * max_weight as f32, factor as f32);
        for (o, &i) in out_values.iter_mut().zip(index) {
            let i = i as usize;
            let scale = (1.0 / (s[i] * keep + bright)) * factor;
            *o = Complex32::new(sum[i].re * scale, sum[i].im * scale);
        }
        for &i in index {
            sum[i as usize] = Complex32::new(0.0, 0.0);
            s[i as usize] = 0.0;
        }
        out
    }
}

/// Writes `patches + step` (`[B, N, N]` complex64) back at the batch's
/// windows: the object becomes `O + step` there and is untouched elsewhere.
/// Windows that overlap carry the same values (the same old pixel plus the
/// same summed step), so the order of the writes does not matter.
pub(crate) fn add_at_windows(state: &mut State, batch: &Batch, patches: &Tensor, step: &Tensor) {
    let updated = (patches + step).reshape([-1]);
    let on_host = state.object.device() == Device::Cpu;
    write_at_windows(&mut state.object, &batch.index, &updated, on_host);
}

/// `object[index[k]] = values[k]`: a host loop on the CPU (`on_host`), else
/// `index_put_`.
fn write_at_windows(object: &mut Tensor, index: &Tensor, values: &Tensor, on_host: bool) {
    if on_host {
        let index: &[i64] = host_values(index).expect("the batch's indices are a contiguous CPU i64 tensor");
        let values: &[Complex32] = host_values(values).expect("contiguous CPU complex64 values");
        assert_eq!(index.len(), values.len(), "one index per value");
        // SAFETY: the solver's object is never viewed or shared while it runs
        // (the patches are gathered copies).
        let object = unsafe { host_values_mut::<Complex32>(object) }.expect("contiguous complex64 object");
        for (&i, &v) in index.iter().zip(values) {
            object[i as usize] = v;
        }
    } else {
        let _ = object.index_put_(&[Some(index)], values, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two overlapping 2×2 windows and one apart on a 4×5 grid.
    fn batch() -> Batch {
        let starts = [0i64, 6, 13];
        let index: Vec<i64> = starts.iter().flat_map(|s| [*s, s + 1, s + 5, s + 6]).collect();
        Batch {
            index: Tensor::from_slice(&index),
            amplitude: Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu)),
            masked: false,
            size: 3,
            shifts: None,
        }
    }

    fn complex(re: &[f32], im: &[f32], shape: &[i64]) -> Tensor {
        Tensor::complex(&Tensor::from_slice(re), &Tensor::from_slice(im)).view(shape)
    }

    #[test]
    fn the_window_direction_is_the_full_grid_formula_read_at_the_windows_and_leaves_the_sums_zero() {
        let b = batch();
        let len = 20;
        let probe = complex(&[1.0, 0.5, -0.25, 2.0], &[0.0, 0.5, 1.0, -1.0], &[2, 2]);
        let re: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let im: Vec<f32> = (0..12).map(|i| (i as f32 * 0.73).cos()).collect();
        let values = complex(&re, &im, &[3, 2, 2]);
        let (w, factor) = (0.3, 0.8);
        // dense: Σ values and S on the whole grid, normalised everywhere, read at the windows
        let s = illumination(&probe.unsqueeze(0), &b, len);
        let dense = scale_complex(&scatter(&values, &b, len), &(normaliser(&s, w).reciprocal() * factor))
            .index_select(0, &b.index)
            .view([3, 2, 2]);
        let p2 = modulus(&probe).square();
        for host in [true, false] {
            let mut sums = WindowSums::new(len, Device::Cpu);
            for _ in 0..2 {
                // the second call sees grids the first one cleared
                let got = if host {
                    sums.direction_on_host(&values, &p2, &b, w, factor)
                } else {
                    sums.direction_with_tensors(&values, &p2, &b, w, factor)
                };
                assert_eq!(got.size(), [3, 2, 2]);
                assert!(got.equal(&dense), "host {host}: {got} vs {dense}");
                assert_eq!(sums.values.abs().max().double_value(&[]), 0.0);
                assert_eq!(sums.illumination.abs().max().double_value(&[]), 0.0);
            }
        }
        // by hand at grid pixel 6, where windows 0 and 1 overlap: |P|² = [1, 0.5, 1.0625, 5],
        // S(6) = 5 + 1 = 6 is also max S, so the normaliser is 6 there
        let expected = (values.reshape([-1]).get(3) + values.reshape([-1]).get(4)) * (factor / 6.0);
        for flat in [3, 4] {
            let got = dense.reshape([-1]).get(flat);
            assert!((got - &expected).abs().double_value(&[]) < 1e-6);
        }
    }

    #[test]
    fn adding_at_windows_changes_only_the_windows() {
        let b = batch();
        let object = complex(&(0..20).map(|i| i as f32).collect::<Vec<_>>(), &[0.5; 20], &[20]);
        let patches = object.index_select(0, &b.index).view([3, 2, 2]);
        // the same step at both copies of the shared pixel, as `direction` gives
        let step = Tensor::ones([3, 2, 2], (Kind::ComplexFloat, Device::Cpu));
        let mut state = State {
            object: object.copy(),
            probe: Tensor::ones([1, 2, 2], (Kind::ComplexFloat, Device::Cpu)),
        };
        add_at_windows(&mut state, &b, &patches, &step);
        let mut with_tensors = object.copy();
        write_at_windows(&mut with_tensors, &b.index, &(&patches + &step).reshape([-1]), false);
        assert!(with_tensors.equal(&state.object));
        let expected = object.index_add(
            0,
            &b.index.unique_dim(0, true, false, false).0,
            &Tensor::ones([11], (Kind::ComplexFloat, Device::Cpu)),
        );
        assert!(state.object.equal(&expected), "{}", state.object);
    }
}
