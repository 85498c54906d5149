//! `ModelConfig`: everything that fixes a network's structure. Saved
//! resolved in every bundle; weights are loaded into the structure it builds.
use serde::{Deserialize, Serialize};

use crate::data::SUPPORTED_N;
use crate::error::{Error, Result};

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Physics-informed: trained through the forward model on diffraction alone.
    Pinn,
    /// PtychoNN-style baseline: trained on ground-truth patches.
    Supervised,
}

/// Activation of the amplitude head's central branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AmpActivation {
    Sigmoid,
    Swish,
    Softplus,
    Relu,
}

/// Activations of the decoders' border branch (outside the central N/2 square).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BorderActivation {
    /// swish for amplitude and phase (PtychoPINN). A negative swish amplitude
    /// is a phase of π, which can drag the centre's `π·tanh` into saturation.
    Swish,
    /// The centre's activations: `amp_activation` and `π·tanh`.
    Centre,
}

/// Activation of the phase head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseActivation {
    /// `π·tanh` (PtychoPINN): bounded to (−π, π). The loss cannot see a
    /// global phase, so a patch's phase can drift into tanh's flat ends,
    /// where its gradient vanishes and no detail is learnt any more.
    PiTanh,
    /// The convolution's output as is: `e^{iφ}` wraps it, so there is no
    /// end to saturate at and every phase keeps its full gradient.
    Linear,
}

/// What bundles written before [`PhaseActivation`] existed used.
fn phase_activation_before_choice() -> PhaseActivation {
    PhaseActivation::PiTanh
}

/// Where gridsize-2 training applies the overlap constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverlapFrame {
    /// PtychoPINN: the patches are averaged on a canvas at the group
    /// centroid and each member's patch is cut back out of it; fractional
    /// offsets interpolate every patch twice (a blur of one-pixel detail).
    Centroid,
    /// The average is formed in each member's own frame
    /// ([`super::layers::constrain_in_member_frames`]): a member's own
    /// patch is never interpolated, its neighbours once.
    Members,
}

/// What the overlap constraint divides the summed patches by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReassemblyNorm {
    /// How many patches cover each pixel (ours): an average wherever a
    /// patch lands.
    #[default]
    Coverage,
    /// PtychoPINN's: the coverage of each patch's central `N/2 × N/2`
    /// square, plus 0.001. The centre is divided by about 1.001 and pixels
    /// that only patch borders reach are multiplied by 1000, also for
    /// gridsize 1; its border branch learns outputs a thousand times
    /// smaller than the object's. Models imported from PtychoPINN use it so
    /// that their weights mean what they meant there.
    CentreSquare,
}

impl ReassemblyNorm {
    fn is_coverage(&self) -> bool {
        *self == ReassemblyNorm::Coverage
    }
}

/// What bundles written before [`OverlapFrame`] existed used.
fn overlap_frame_before_choice() -> OverlapFrame {
    OverlapFrame::Centroid
}

/// What bundles written before [`BorderActivation`] existed used.
fn border_activation_before_choice() -> BorderActivation {
    BorderActivation::Swish
}

/// Structure of a network (PtychoPINN's defaults where it has them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Patch size N (32, 64, 128).
    pub n: usize,
    /// 1 or 2: the network sees `C = gridsize²` patterns per group.
    pub gridsize: usize,
    /// Multiplies every filter count (PtychoPINN `n_filters_scale`, default 2).
    pub n_filters_scale: usize,
    pub amp_activation: AmpActivation,
    /// Activation of the phase head. Configurations without the field
    /// (older bundles) mean `π·tanh`.
    #[serde(default = "phase_activation_before_choice")]
    pub phase_activation: PhaseActivation,
    /// Predict the patch border (outside the central N/2 square) with its own
    /// branch (PtychoPINN `probe.big`, default true).
    pub border_branch: bool,
    /// Activations of the border branch. Ours: the centre's (PtychoPINN:
    /// swish). Configurations without the field (older bundles) mean swish.
    #[serde(default = "border_activation_before_choice")]
    pub border_activation: BorderActivation,
    /// A residual token-mixing MLP across the encoder's 8×8 bottleneck
    /// (ours; PtychoPINN has none): every position of the code sees every
    /// other, where the convolutions mix only neighbourhoods. Off in older
    /// bundles.
    #[serde(default)]
    pub bottleneck_mixer: bool,
    /// Where the overlap constraint is applied (gridsize 2). Configurations
    /// without the field (older bundles) mean the centroid.
    #[serde(default = "overlap_frame_before_choice")]
    pub overlap_frame: OverlapFrame,
    /// What the overlap constraint divides by. Not written when it is
    /// [`ReassemblyNorm::Coverage`], so configurations saved before it
    /// existed compare equal.
    #[serde(default, skip_serializing_if = "ReassemblyNorm::is_coverage")]
    pub reassembly_norm: ReassemblyNorm,
    /// Largest |relative offset| in a group the overlap constraint's canvas
    /// holds; the canvas is `N + 2·ceil(max_offset_px)` wide.
    pub max_offset_px: f64,
    /// Train the intensity scale (log-parameterised) with the network.
    pub intensity_scale_trainable: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::Pinn,
            n: 64,
            gridsize: 1,
            n_filters_scale: 2,
            amp_activation: AmpActivation::Sigmoid,
            phase_activation: PhaseActivation::PiTanh,
            border_branch: true,
            border_activation: BorderActivation::Centre,
            overlap_frame: OverlapFrame::Centroid,
            reassembly_norm: ReassemblyNorm::Coverage,
            bottleneck_mixer: false,
            max_offset_px: 16.0,
            intensity_scale_trainable: true,
        }
    }
}

impl ModelConfig {
    /// Patterns per group `C`.
    pub fn channels(&self) -> usize {
        self.gridsize * self.gridsize
    }

    /// Padding of the overlap canvas on each side.
    pub fn canvas_pad(&self) -> i64 {
        self.max_offset_px.ceil() as i64 + 1
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !SUPPORTED_N.contains(&self.n) {
            return Err(Error::config(
                "model.n",
                format!("must be one of {SUPPORTED_N:?}, got {}", self.n),
            ));
        }
        if !(self.gridsize == 1 || self.gridsize == 2) {
            return Err(Error::config(
                "model.gridsize",
                format!("must be 1 or 2, got {}", self.gridsize),
            ));
        }
        if self.kind == ModelKind::Supervised && self.gridsize != 1 {
            return Err(Error::config(
                "model.gridsize",
                "the supervised baseline sees single patterns: use gridsize 1 (each position is one sample)",
            ));
        }
        if !(1..=8).contains(&self.n_filters_scale) {
            return Err(Error::config(
                "model.n_filters_scale",
                format!("must be in 1..=8, got {}", self.n_filters_scale),
            ));
        }
        if self.reassembly_norm == ReassemblyNorm::CentreSquare && self.overlap_frame != OverlapFrame::Centroid {
            return Err(Error::config(
                "model.reassembly_norm",
                "\"centre-square\" (PtychoPINN's) needs overlap_frame = \"centroid\"",
            ));
        }
        if !(self.max_offset_px.is_finite() && self.max_offset_px >= 0.0 && self.max_offset_px <= self.n as f64) {
            return Err(Error::config(
                "model.max_offset_px",
                format!("must be in [0, N = {}], got {}", self.n, self.max_offset_px),
            ));
        }
        Ok(())
    }
}
