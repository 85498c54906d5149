//! The PINN: generator → (overlap constraint) → probe → far field → scale.
//! One set of weights, two entry points: [`Pinn::autoencoder`] (training)
//! and [`Pinn::diffraction_to_obj`] (inference).
use tch::{Device, Kind, Tensor, nn};

use super::config::{ModelConfig, ModelKind};
use super::layers;
use super::network::{Encoder, Head, PinnDecoder};
use crate::error::{Error, Result};

/// Name of the log intensity scale in the weights file.
pub const LOG_SCALE_NAME: &str = "log_intensity_scale";

/// `|φ|` from which [`Pinn::phase_saturation`] counts a phase as
/// saturated: `0.95·π`, where `π·tanh` has 9.75 % of its slope at 0.
pub const PHASE_SATURATION_RAD: f64 = 0.95 * std::f64::consts::PI;

/// What the autoencoder returns.
#[derive(Debug)]
pub struct PinnOutput {
    /// The object seen from the group centroid, `[B, N, N]` complex64.
    pub object: Tensor,
    /// Predicted amplitudes in count units, `exp(log s)·|F(P·O_k)|`, `[B, C, N, N]` f32.
    pub amplitude_scaled: Tensor,
    /// The phase head's output (radians, not wrapped) `[B, C, N, N]` f32.
    pub phase: Tensor,
}

impl PinnOutput {
    /// The squared mean phase of each patch's central `N/2 × N/2` window,
    /// averaged over patches: the loss is blind to a global phase, so
    /// without a gauge the phase can drift into `π·tanh`'s flat ends, where
    /// no detail can be learnt any more.
    pub fn phase_gauge(&self) -> Tensor {
        let n = self.phase.size()[3];
        let (q, h) = (n / 4, n / 2);
        self.phase
            .narrow(2, q, h)
            .narrow(3, q, h)
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float)
            .square()
            .mean(Kind::Float)
    }
}

impl PinnOutput {
    /// Predicted counts (Poisson rates) `[B, C, N, N]`.
    pub fn counts(&self) -> Tensor {
        self.amplitude_scaled.square()
    }
}

/// A physics-informed network. Owns its weights (`VarStore`) and probe.
#[derive(Debug)]
pub struct Pinn {
    cfg: ModelConfig,
    vs: nn::VarStore,
    encoder: Encoder,
    amplitude: PinnDecoder,
    phase: PinnDecoder,
    log_scale: Tensor,
    probe: Tensor,
    /// `probe`, prepared once for the forward model.
    diffraction_probe: layers::DiffractionProbe,
}

impl Pinn {
    /// Builds the network with fresh weights (fixed by `seed`) on `device`;
    /// `probe` is `[N, N]` complex64 (coherent) or `[K, N, N]` (K incoherent
    /// modes, whose intensities the physics layer adds), `intensity_scale`
    /// the dataset's `s`.
    pub fn new(cfg: &ModelConfig, probe: &Tensor, intensity_scale: f64, seed: u64, device: Device) -> Result<Self> {
        cfg.validate()?;
        if cfg.kind != ModelKind::Pinn {
            return Err(Error::config("model.kind", "Pinn::new needs kind = \"pinn\""));
        }
        let n = cfg.n as i64;
        let shape = probe.size();
        if !(shape == [n, n] || (shape.len() == 3 && shape[0] >= 1 && shape[1..] == [n, n])) {
            return Err(Error::shape(
                "probe",
                format!("[{n}, {n}] or [K, {n}, {n}]"),
                format!("{:?}", probe.size()),
            ));
        }
        if !(intensity_scale.is_finite() && intensity_scale > 0.0) {
            return Err(Error::value(
                "intensity scale",
                format!("must be positive, got {intensity_scale}"),
            ));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = cfg.channels() as i64;
        let encoder = Encoder::new(&(&root / "encoder"), cfg, c);
        let amplitude = PinnDecoder::new(&(&root / "amplitude"), cfg, Head::Amplitude(cfg.amp_activation));
        let phase = PinnDecoder::new(&(&root / "phase"), cfg, Head::Phase(cfg.phase_activation));
        let log_scale = root.var(LOG_SCALE_NAME, &[], nn::Init::Const(intensity_scale.ln()));
        let log_scale = if cfg.intensity_scale_trainable {
            log_scale
        } else {
            log_scale.set_requires_grad(false)
        };
        super::init::reinitialise(&vs, seed);
        // one mode given as `[1, N, N]` is the coherent probe `[N, N]`
        let probe = if shape.len() == 3 && shape[0] == 1 {
            probe.squeeze_dim(0)
        } else {
            probe.shallow_clone()
        };
        let probe = probe.to_device(device).to_kind(Kind::ComplexFloat);
        Ok(Pinn {
            cfg: cfg.clone(),
            vs,
            encoder,
            amplitude,
            phase,
            log_scale,
            diffraction_probe: layers::DiffractionProbe::new(&probe),
            probe,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The probe: `[N, N]` (coherent) or `[K, N, N]` with K ≥ 2, complex64.
    pub fn probe(&self) -> &Tensor {
        &self.probe
    }

    /// How many incoherent probe modes the physics layer uses.
    pub fn probe_modes(&self) -> usize {
        self.diffraction_probe.modes() as usize
    }

    /// Current intensity scale `exp(log s)`.
    pub fn intensity_scale(&self) -> f64 {
        self.log_scale.exp().double_value(&[])
    }

    /// Multiplies the intensity scale by `factor` (> 0): weights trained at
    /// one dose, used on data at another.
    pub fn scale_intensity(&self, factor: f64) {
        tch::no_grad(|| {
            let mut v = self.log_scale.shallow_clone();
            let _ = v.g_add_scalar_(factor.ln());
        });
    }

    /// Object patches predicted for each member.
    ///
    /// # Shapes
    /// `x`: `[B, C, N, N]` normalised diffraction amplitude → `[B, C, N, N]` complex64
    pub fn object_patches(&self, x: &Tensor) -> Tensor {
        self.object_patches_and_phase(x).0
    }

    fn object_patches_and_phase(&self, x: &Tensor) -> (Tensor, Tensor) {
        let z = self.encoder.forward(x);
        // under autocast the decoders' outputs are float16 or bfloat16; the
        // physics (object, reassembly, far field) runs in float32
        let a = self.amplitude.forward(&z).to_kind(Kind::Float);
        let phi = self.phase.forward(&z).to_kind(Kind::Float);
        // A·e^{iφ}; A may be negative on a swish border, so no `polar`
        (Tensor::complex(&(&a * phi.cos()), &(&a * phi.sin())), phi)
    }

    /// `x` must be `[B, C, N, N]` for this model's C and N.
    fn check_diffraction(&self, x: &Tensor) -> Result<()> {
        let (c, n) = (self.cfg.channels() as i64, self.cfg.n as i64);
        let s = x.size();
        if s.len() != 4 || s[1..] != [c, n, n] {
            return Err(Error::shape(
                "diffraction input",
                format!("[B, {c}, {n}, {n}]"),
                format!("{s:?}"),
            ));
        }
        Ok(())
    }

    fn check_inputs(&self, x: &Tensor, offsets_px: &Tensor) -> Result<()> {
        self.check_diffraction(x)?;
        let (c, s) = (self.cfg.channels() as i64, x.size());
        if offsets_px.size() != [s[0], c, 2] {
            return Err(Error::shape(
                "offsets",
                format!("[{}, {c}, 2]", s[0]),
                format!("{:?}", offsets_px.size()),
            ));
        }
        Ok(())
    }

    /// The overlap constraint: patches after reassembly and re-extraction,
    /// and the object at the centroid. For gridsize 1 both are the patch.
    fn constrain(&self, patches: &Tensor, offsets_px: &Tensor) -> Result<(Tensor, Tensor)> {
        if self.cfg.channels() == 1 {
            let patches = layers::normalise_unmoved(patches, self.cfg.reassembly_norm);
            let object = patches.select(1, 0);
            return Ok((patches, object));
        }
        let n = self.cfg.n as i64;
        let canvas = layers::reassemble_with(patches, offsets_px, self.cfg.canvas_pad(), self.cfg.reassembly_norm)?;
        let members = match self.cfg.overlap_frame {
            super::config::OverlapFrame::Centroid => layers::extract(&canvas, offsets_px, n)?,
            super::config::OverlapFrame::Members => layers::constrain_in_member_frames(patches, offsets_px)?,
        };
        Ok((members, layers::trim(&canvas, n)))
    }

    /// [`constrain`](Self::constrain)'s object at the centroid alone
    /// (inference skips the re-extraction).
    fn merged_object(&self, patches: &Tensor, offsets_px: &Tensor) -> Result<Tensor> {
        if self.cfg.channels() == 1 {
            return Ok(layers::normalise_unmoved(patches, self.cfg.reassembly_norm).select(1, 0));
        }
        let canvas = layers::reassemble_with(patches, offsets_px, self.cfg.canvas_pad(), self.cfg.reassembly_norm)?;
        Ok(layers::trim(&canvas, self.cfg.n as i64))
    }

    /// The training model.
    ///
    /// # Shapes
    /// - `x`: `[B, C, N, N]` f32 normalised diffraction amplitude
    /// - `offsets_px`: `[B, C, 2]` f32, member − centroid
    pub fn autoencoder(&self, x: &Tensor, offsets_px: &Tensor) -> Result<PinnOutput> {
        self.check_inputs(x, offsets_px)?;
        let (patches, phase) = self.object_patches_and_phase(x);
        let (constrained, object) = self.constrain(&patches, &offsets_px.to_kind(Kind::Float))?;
        let amplitude = layers::diffract_prepared(&constrained, &self.diffraction_probe);
        Ok(PinnOutput {
            object,
            amplitude_scaled: amplitude * self.log_scale.exp(),
            phase,
        })
    }

    /// The fraction of phases in the patches' central `N/2 × N/2` windows
    /// at or beyond [`PHASE_SATURATION_RAD`] in magnitude, where `π·tanh`
    /// keeps under a tenth of its slope. A network with most of its phase
    /// there has collapsed onto one physical phase (±π) and the gradient
    /// cannot bring it back: the reconstruction's phase is flat, however
    /// good the loss (`init::OUTPUT_LAYER_SCALE`, the warm-up). 0 for a
    /// fresh network.
    ///
    /// # Shapes
    /// `x`: `[B, C, N, N]` f32 normalised diffraction amplitude
    pub fn phase_saturation(&self, x: &Tensor) -> Result<f64> {
        self.check_diffraction(x)?;
        if self.cfg.phase_activation == super::config::PhaseActivation::Linear {
            // no flat end: nothing can saturate
            return Ok(0.0);
        }
        let n = self.cfg.n as i64;
        let _guard = tch::no_grad_guard();
        let phi = self.phase.forward(&self.encoder.forward(x));
        let centre = phi.narrow(-2, n / 4, n / 2).narrow(-1, n / 4, n / 2);
        Ok(centre
            .abs()
            .ge(PHASE_SATURATION_RAD)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]))
    }

    /// The inference model: the object at each group centroid.
    ///
    /// # Shapes
    /// `x`: `[B, C, N, N]`, `offsets_px`: `[B, C, 2]` → `[B, N, N]` complex64
    pub fn diffraction_to_obj(&self, x: &Tensor, offsets_px: &Tensor) -> Result<Tensor> {
        self.check_inputs(x, offsets_px)?;
        let patches = self.object_patches(x);
        self.merged_object(&patches, &offsets_px.to_kind(Kind::Float))
    }

    /// The same merged object as [`diffraction_to_obj`](Self::diffraction_to_obj),
    /// seen from each member's position instead of the centroid: the
    /// patches the forward model diffracts in training. For gridsize 1 the
    /// same as `diffraction_to_obj` with a member axis.
    ///
    /// # Shapes
    /// `x`: `[B, C, N, N]`, `offsets_px`: `[B, C, 2]` → `[B, C, N, N]` complex64
    pub fn diffraction_to_member_patches(&self, x: &Tensor, offsets_px: &Tensor) -> Result<Tensor> {
        self.check_inputs(x, offsets_px)?;
        let patches = self.object_patches(x);
        Ok(self.constrain(&patches, &offsets_px.to_kind(Kind::Float))?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(n: i64) -> Tensor {
        crate::physics::disk_probe(n, n as f64 / 4.0, 1.0, Device::Cpu).unwrap()
    }

    #[test]
    fn shapes_for_gridsize_one_and_two() {
        tch::manual_seed(0);
        for g in [1usize, 2] {
            let cfg = ModelConfig {
                n: 32,
                gridsize: g,
                ..ModelConfig::default()
            };
            let m = Pinn::new(&cfg, &probe(32), 10.0, 0, Device::Cpu).unwrap();
            let c = (g * g) as i64;
            let x = Tensor::rand([3, c, 32, 32], (Kind::Float, Device::Cpu));
            let off = Tensor::zeros([3, c, 2], (Kind::Float, Device::Cpu));
            let out = m.autoencoder(&x, &off).unwrap();
            assert_eq!(out.object.size(), [3, 32, 32]);
            assert_eq!(out.amplitude_scaled.size(), [3, c, 32, 32]);
            assert!((m.intensity_scale() - 10.0).abs() < 1e-4);
            assert_eq!(m.diffraction_to_obj(&x, &off).unwrap().size(), [3, 32, 32]);
            // wrong channel count is an error, not a libtorch abort
            let bad = Tensor::rand([3, c + 1, 32, 32], (Kind::Float, Device::Cpu));
            assert!(m.autoencoder(&bad, &off).is_err());
        }
    }
}
