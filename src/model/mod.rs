//! Networks and the physics layers they train through: the PINN
//! (`autoencoder` / `diffraction_to_obj`), the supervised baseline, losses.
//! No file IO and no printing here.
pub mod config;
pub mod init;
pub mod input;
pub mod layers;
pub mod loss;
pub mod network;
pub mod pinn;
pub mod supervised;

pub use config::{
    AmpActivation, BorderActivation, ModelConfig, ModelKind, OverlapFrame, PhaseActivation, ReassemblyNorm,
};
pub use input::input_scale;
pub use loss::LossWeights;
pub use pinn::{Pinn, PinnOutput};
pub use supervised::Supervised;
