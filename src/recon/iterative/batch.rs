//! What every solver does with a mini-batch: gather patches, propagate, and
//! scatter-add object updates back; plus the normalisers they share.
use tch::{Kind, Tensor};

/// The solver's unknowns, on the device.
pub(crate) struct State {
    /// Object on the padded grid, flat `[padded_h·padded_w]` complex64.
    pub object: Tensor,
    /// Probe times the checkerboard `(−1)^(i+j)` `[N, N]` complex64, so that
    /// `FFT2_ortho(probe·patch)` has its zero frequency at `(N/2, N/2)` like
    /// the measured amplitudes (`physics::forward::shift_modulation`).
    pub probe: Tensor,
}

/// One mini-batch of positions.
pub(crate) struct Batch {
    /// Flat object indices of every window pixel `[B·N·N]` i64.
    pub index: Tensor,
    /// Measured amplitudes `[B, N, N]` f32.
    pub amplitude: Tensor,
    pub size: i64,
}

/// The forward model evaluated on a batch.
pub(crate) struct Forward {
    /// Object patches `[B, N, N]` complex64.
    pub patches: Tensor,
    /// Exit waves `probe·patches` `[B, N, N]` complex64.
    pub exit_waves: Tensor,
    /// `FFT2_ortho(exit_waves)` `[B, N, N]` complex64.
    pub spectrum: Tensor,
    /// `|spectrum|` `[B, N, N]` f32.
    pub amplitude: Tensor,
}

impl Forward {
    pub fn new(state: &State, batch: &Batch) -> Forward {
        let n = state.probe.size()[0];
        let patches = state.object.index_select(0, &batch.index).view([batch.size, n, n]);
        let exit_waves = &patches * &state.probe;
        let spectrum = exit_waves.fft_fft2(None::<&[i64]>, [-2, -1], "ortho");
        let amplitude = modulus(&spectrum);
        Forward {
            patches,
            exit_waves,
            spectrum,
            amplitude,
        }
    }

    /// `Σ (|Ψ̂| − A)²` over the batch, a 0-d f64 tensor (stays on the device).
    pub fn amplitude_error(&self, batch: &Batch) -> Tensor {
        (&self.amplitude - &batch.amplitude).square().sum(Kind::Double)
    }

    /// `IFFT2_ortho(spectrum·ratio) − exit_waves`: the exit-wave change that
    /// moves the far field to `spectrum·ratio` (`ratio` real, `[B, N, N]`).
    pub fn exit_wave_change(&self, ratio: &Tensor) -> Tensor {
        let target = scale_complex(&self.spectrum, ratio).fft_ifft2(None::<&[i64]>, [-2, -1], "ortho");
        target - &self.exit_waves
    }
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

/// The object's illumination by the batch, `Σ_b |P|²` at each grid pixel.
pub(crate) fn illumination(probe: &Tensor, batch: &Batch, len: i64) -> Tensor {
    let n = probe.size()[0];
    let p2 = modulus(probe).square();
    scatter(&p2.unsqueeze(0).expand([batch.size, n, n], false), batch, len)
}
