//! The supervised baseline (PtychoNN-style): the same encoder, amplitude and
//! phase decoders with linear outputs, trained with L1 against ground-truth
//! patches. It sees single patterns (groups are flattened for it).
use tch::{Device, Kind, Tensor, nn};

use super::config::{ModelConfig, ModelKind};
use super::network::{Encoder, PlainDecoder};
use crate::error::{Error, Result};

/// A supervised network. Owns its weights.
#[derive(Debug)]
pub struct Supervised {
    cfg: ModelConfig,
    vs: nn::VarStore,
    encoder: Encoder,
    amplitude: PlainDecoder,
    phase: PlainDecoder,
}

impl Supervised {
    /// Builds the network with fresh weights (fixed by `seed`) on `device`.
    pub fn new(cfg: &ModelConfig, seed: u64, device: Device) -> Result<Self> {
        cfg.validate()?;
        if cfg.kind != ModelKind::Supervised {
            return Err(Error::config(
                "model.kind",
                "Supervised::new needs kind = \"supervised\"",
            ));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = Encoder::new(&(&root / "encoder"), cfg, 1);
        let amplitude = PlainDecoder::new(&(&root / "amplitude"), cfg);
        let phase = PlainDecoder::new(&(&root / "phase"), cfg);
        super::init::reinitialise(&vs, seed);
        Ok(Supervised {
            cfg: cfg.clone(),
            vs,
            encoder,
            amplitude,
            phase,
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

    /// Amplitude and phase.
    ///
    /// # Shapes
    /// `x`: `[B, 1, N, N]` normalised amplitude → two `[B, N, N]` f32
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = self.cfg.n as i64;
        let s = x.size();
        if s.len() != 4 || s[1..] != [1, n, n] {
            return Err(Error::shape(
                "diffraction input",
                format!("[B, 1, {n}, {n}]"),
                format!("{s:?}"),
            ));
        }
        let z = self.encoder.forward(x);
        // float32 also under autocast (the decoders' outputs are then float16
        // or bfloat16), for the losses and the complex object
        Ok((
            self.amplitude.forward(&z).squeeze_dim(1).to_kind(Kind::Float),
            self.phase.forward(&z).squeeze_dim(1).to_kind(Kind::Float),
        ))
    }

    /// The object patch `A·e^{iφ}`. # Shapes: `[B, 1, N, N]` → `[B, N, N]` complex64.
    pub fn diffraction_to_obj(&self, x: &Tensor) -> Result<Tensor> {
        let (a, phi) = self.forward(x)?;
        Ok(Tensor::complex(&(&a * phi.cos()), &(&a * phi.sin())).to_kind(Kind::ComplexFloat))
    }
}
