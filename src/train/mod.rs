//! Training: `Trainer` (Adam, plateau schedule, early stopping, checkpoints,
//! resume), the training tensors, and the loss history.
pub mod adam;
pub mod config;
pub mod data;
pub mod history;
pub mod progress;
pub mod scaler;
pub mod trainer;

pub use config::{LrSchedule, Precision, TrainConfig};
pub use data::TrainingData;
pub use history::{EpochRecord, History, LineObserver, SilentObserver, TrainObserver};
pub use progress::{ProgressBarObserver, terminal_observer};
pub use trainer::{InitWeights, PHASE_SATURATION_WARNING, StopReason, TrainOutcome, TrainedModel, Trainer};
