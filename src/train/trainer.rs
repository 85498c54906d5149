//! The training loop: Adam, reduce-on-plateau or a cosine schedule, early stopping, a validation
//! split, seeded shuffling, a checkpoint every epoch and exact resume.
//!
//! Batches stay on the device; the only host syncs are once per epoch (the
//! epoch's losses, which also catch NaN/Inf).
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::adam::Adam;
use super::config::{LrSchedule, TrainConfig};
use super::data::TrainingData;
use super::history::{EpochRecord, History, TrainObserver};
use super::scaler::LossScaler;
use crate::array::c64_to_tensor;
use crate::data::Dataset;
use crate::data::atomic::write_via_temp_path;
use crate::error::{Error, Result};
use crate::grouping::GroupingConfig;
use crate::model::loss::{mae, poisson_nll, total_variation};
use crate::model::{ModelConfig, ModelKind, Pinn, Supervised};

/// A trained network of either kind.
#[derive(Debug)]
pub enum TrainedModel {
    Pinn(Box<Pinn>),
    Supervised(Box<Supervised>),
}

impl TrainedModel {
    pub fn var_store(&self) -> &tch::nn::VarStore {
        match self {
            TrainedModel::Pinn(m) => m.var_store(),
            TrainedModel::Supervised(m) => m.var_store(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            TrainedModel::Pinn(m) => m.config(),
            TrainedModel::Supervised(m) => m.config(),
        }
    }
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EpochsDone,
    EarlyStopping,
}

/// The result of [`Trainer::fit`].
#[derive(Debug)]
pub struct TrainOutcome {
    pub model: TrainedModel,
    pub history: History,
    pub stop: StopReason,
    /// `X` normalisation used for the network input.
    pub input_scale: f64,
    /// PINNs: [`Pinn::phase_saturation`] of the trained network on up to 64
    /// validation groups (training groups without a validation split).
    pub phase_saturation: Option<f64>,
}

/// A trained PINN whose [`TrainOutcome::phase_saturation`] exceeds this is
/// reported as collapsed (`ptycho train` warns).
pub const PHASE_SATURATION_WARNING: f64 = 0.5;

/// Weights a run starts from instead of a fresh initialisation: fine-tuning
/// a trained network on new data (`ptycho train --init-bundle`, `ptycho
/// infer --adapt`). The physics loss needs no ground truth, so a PINN can
/// be fine-tuned on the very scan it is about to reconstruct.
#[derive(Debug)]
pub struct InitWeights {
    /// Every variable of the model, by its weight path.
    pub variables: Vec<(String, Tensor)>,
    /// Where they came from (errors name it).
    pub source: PathBuf,
    /// The intensity scale `s` of the data the weights were trained on:
    /// the PINN's learnt scale is multiplied by `s_new / s_old` for data at
    /// another dose (the network's input is normalised per dataset, its
    /// output scale is not). `None`: kept as is.
    pub data_intensity_scale: Option<f64>,
}

impl InitWeights {
    /// The weights of a loaded bundle (copied to the host).
    pub fn from_bundle(bundle: &crate::bundle::Bundle) -> InitWeights {
        InitWeights {
            variables: bundle
                .model
                .var_store()
                .variables()
                .into_iter()
                .map(|(n, t)| (n, t.detach().to_device(Device::Cpu)))
                .collect(),
            source: bundle.path.clone(),
            data_intensity_scale: bundle.manifest.data.get("intensity_scale").and_then(|v| v.as_f64()),
        }
    }
}

/// Trains one model on one dataset.
#[derive(Debug, Clone)]
pub struct Trainer {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub device: Device,
    /// Where `checkpoint.safetensors` is written every epoch (and read on resume).
    pub checkpoint_dir: Option<PathBuf>,
    pub resume: bool,
    /// Start from these weights (fine-tuning); `None`: fresh, seeded weights.
    /// A checkpoint being resumed wins over them.
    pub init: Option<std::rc::Rc<InitWeights>>,
}

/// File name of the per-epoch checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Scheduler and stopping state, saved in checkpoints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LoopState {
    epochs_done: usize,
    learning_rate: f64,
    best_val: f64,
    plateau_wait: usize,
    best_train: f64,
    stop_wait: usize,
    adam_step: i64,
    history: History,
    stopped: bool,
    /// fp16 only (absent in checkpoints of fp32 runs and of older versions).
    #[serde(default)]
    loss_scaler: Option<LossScaler>,
}

impl Trainer {
    pub fn new(model: ModelConfig, train: TrainConfig, device: Device) -> Self {
        Trainer {
            model,
            train,
            device,
            checkpoint_dir: None,
            resume: false,
            init: None,
        }
    }

    /// Trains on `ds`, reporting each epoch to `observer`.
    pub fn fit(&self, ds: &Dataset, observer: &mut dyn TrainObserver) -> Result<TrainOutcome> {
        crate::runtime::keep_freed_memory();
        crate::runtime::tune_cudnn(self.device);
        self.model.validate()?;
        self.train.validate()?;
        self.train.precision.check(self.device)?;
        self.train.precision.apply(self.device)?;
        let data = TrainingData::new(ds, &self.model, &self.train.grouping, self.device)?;
        let model = match self.model.kind {
            ModelKind::Pinn => TrainedModel::Pinn(Box::new(Pinn::new(
                &self.model,
                // every mode: a partially coherent beam's intensities add
                &c64_to_tensor(&ds.probe_modes(), self.device),
                data.intensity_scale,
                self.train.seed,
                self.device,
            )?)),
            ModelKind::Supervised => {
                TrainedModel::Supervised(Box::new(Supervised::new(&self.model, self.train.seed, self.device)?))
            }
        };
        if let Some(init) = &self.init {
            crate::model::init::load_variables(
                model.var_store(),
                |name| {
                    init.variables
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| t.to_device(self.device))
                },
                &init.source,
                "bundle",
            )?;
            if let (TrainedModel::Pinn(m), Some(old)) = (&model, init.data_intensity_scale)
                && old.is_finite()
                && old > 0.0
            {
                m.scale_intensity(data.intensity_scale / old);
            }
        }
        let mut adam = Adam::for_var_store(model.var_store(), self.train.learning_rate);
        let (train_idx, val_idx) = split(data.len(), self.train.validation_fraction, self.train.seed);
        let mut state = LoopState {
            epochs_done: 0,
            learning_rate: self.train.learning_rate,
            best_val: f64::INFINITY,
            plateau_wait: 0,
            best_train: f64::INFINITY,
            stop_wait: 0,
            adam_step: 0,
            history: History::default(),
            stopped: false,
            loss_scaler: self.train.precision.loss_scale().then(LossScaler::default),
        };
        let checkpoint = self.checkpoint_dir.as_ref().map(|d| d.join(CHECKPOINT_FILE));
        if let (true, Some(path)) = (self.resume, &checkpoint)
            && path.exists()
        {
            state = load_checkpoint(path, &model, &mut adam)?;
            // a run resumed in another precision starts or drops the loss scale
            state.loss_scaler = if self.train.precision.loss_scale() {
                state.loss_scaler.or(Some(LossScaler::default()))
            } else {
                None
            };
        }
        adam.step = state.adam_step;
        let total_steps = (train_idx.len().div_ceil(self.train.batch_size) * self.train.epochs) as i64;
        // on the device once, for every epoch's validation
        let val_on_device = Tensor::from_slice(&val_idx).to_device(self.device);
        while state.epochs_done < self.train.epochs && !state.stopped {
            let started = Instant::now();
            let epoch = state.epochs_done + 1;
            adam.learning_rate = state.learning_rate;
            let order = shuffled(&train_idx, self.train.seed, epoch as u64);
            // the epoch's order goes to the device once and each batch is a
            // slice of it: a copy from host memory to a GPU waits for the
            // work queued before it, so one per batch would stop the host
            // from running ahead of the device every step
            let order_on_device = Tensor::from_slice(&order).to_device(self.device);
            let mut sum = Tensor::zeros([], (Kind::Double, self.device));
            let mut batches = 0;
            for (b, chunk) in order.chunks(self.train.batch_size).enumerate() {
                let idx = order_on_device.narrow(0, (b * self.train.batch_size) as i64, chunk.len() as i64);
                adam.learning_rate = match self.train.scheduled_learning_rate(adam.step, total_steps) {
                    Some(lr) => lr,
                    None => state.learning_rate * self.train.warmup_factor(adam.step),
                };
                let loss = self.batch_loss(&model, &data, &idx)?;
                match &mut state.loss_scaler {
                    None => {
                        adam.backward(&loss)?;
                        adam.step();
                    }
                    Some(scaler) => {
                        adam.backward(&(&loss * scaler.scale))?;
                        let finite = adam.unscale_gradients(scaler.scale);
                        if finite {
                            adam.step();
                        }
                        scaler.update(finite);
                    }
                }
                sum += loss.detach().to_kind(Kind::Double);
                batches += 1;
            }
            let train_loss = sum.double_value(&[]) / batches.max(1) as f64;
            if !train_loss.is_finite() {
                return Err(Error::value(
                    "training",
                    format!(
                        "the loss became {train_loss} in epoch {epoch}; stopped (the last good checkpoint, if any, \
                         is kept). Lower the learning rate or check the data for extreme values"
                    ),
                ));
            }
            let val_loss = if val_idx.is_empty() {
                None
            } else {
                let _guard = tch::no_grad_guard();
                let mut s = Tensor::zeros([], (Kind::Double, self.device));
                let size = self.train.batch_size.max(64);
                for (b, chunk) in val_idx.chunks(size).enumerate() {
                    let idx = val_on_device.narrow(0, (b * size) as i64, chunk.len() as i64);
                    s += self.batch_loss(&model, &data, &idx)?.to_kind(Kind::Double) * chunk.len() as f64;
                }
                Some(s.double_value(&[]) / val_idx.len() as f64)
            };
            if self.train.lr_schedule != LrSchedule::Plateau {
                state.learning_rate = adam.learning_rate;
            }
            let record = EpochRecord {
                epoch,
                train_loss,
                val_loss,
                learning_rate: state.learning_rate,
                seconds: started.elapsed().as_secs_f64(),
            };
            self.schedule(&mut state, train_loss, val_loss);
            state.history.epochs.push(record.clone());
            state.epochs_done = epoch;
            state.adam_step = adam.step;
            if let Some(path) = &checkpoint {
                save_checkpoint(path, &model, &adam, &state)?;
            }
            observer.on_epoch(&record, self.train.epochs);
        }
        let phase_saturation = match &model {
            TrainedModel::Pinn(m) => {
                let pick: Vec<i64> = if val_idx.is_empty() { &train_idx } else { &val_idx }
                    .iter()
                    .take(64)
                    .copied()
                    .collect();
                let idx = Tensor::from_slice(&pick).to_device(self.device);
                Some(m.phase_saturation(&data.x.index_select(0, &idx))?)
            }
            TrainedModel::Supervised(_) => None,
        };
        Ok(TrainOutcome {
            phase_saturation,
            model,
            history: state.history,
            stop: if state.stopped {
                StopReason::EarlyStopping
            } else {
                StopReason::EpochsDone
            },
            input_scale: data.input_scale,
        })
    }

    /// The mean loss of a trained model on another dataset (grouped and
    /// normalised as for training), without gradients.
    pub fn evaluate(&self, model: &TrainedModel, ds: &Dataset) -> Result<f64> {
        // every position of the held-out set, whatever the training subsample
        let grouping = GroupingConfig {
            n_groups: None,
            ..self.train.grouping.clone()
        };
        let data = TrainingData::new(ds, model.config(), &grouping, self.device)?;
        let _guard = tch::no_grad_guard();
        let all: Vec<i64> = (0..data.len() as i64).collect();
        let mut sum = Tensor::zeros([], (Kind::Double, self.device));
        for chunk in all.chunks(self.train.batch_size.max(64)) {
            let idx = Tensor::from_slice(chunk).to_device(self.device);
            sum += self.batch_loss(model, &data, &idx)?.to_kind(Kind::Double) * chunk.len() as f64;
        }
        Ok(sum.double_value(&[]) / data.len() as f64)
    }

    /// Reduce-on-plateau on the validation loss (training loss without a
    /// split), early stopping on the training loss (as Keras' callbacks).
    fn schedule(&self, s: &mut LoopState, train_loss: f64, val_loss: Option<f64>) {
        let monitored = val_loss.unwrap_or(train_loss);
        if monitored < s.best_val {
            s.best_val = monitored;
            s.plateau_wait = 0;
        } else {
            s.plateau_wait += 1;
            if self.train.lr_schedule == LrSchedule::Plateau && s.plateau_wait >= self.train.plateau_patience {
                s.learning_rate = (s.learning_rate * self.train.plateau_factor).max(self.train.min_learning_rate);
                s.plateau_wait = 0;
            }
        }
        if train_loss < s.best_train {
            s.best_train = train_loss;
            s.stop_wait = 0;
        } else {
            s.stop_wait += 1;
            if s.stop_wait >= self.train.early_stopping_patience {
                s.stopped = true;
            }
        }
    }

    /// The batch's loss, float32 (the forward pass under autocast when the
    /// precision says so).
    fn batch_loss(&self, model: &TrainedModel, data: &TrainingData, idx: &Tensor) -> Result<Tensor> {
        let loss = self
            .train
            .precision
            .run(self.device, || self.batch_loss_in_autocast(model, data, idx))??;
        Ok(loss.to_kind(Kind::Float))
    }

    /// The weighted loss of one batch of groups.
    fn batch_loss_in_autocast(&self, model: &TrainedModel, data: &TrainingData, idx: &Tensor) -> Result<Tensor> {
        let x = data.x.index_select(0, idx);
        match model {
            TrainedModel::Pinn(m) => {
                let out = m.autoencoder(&x, &data.offsets.index_select(0, idx))?;
                let w = &self.train.loss;
                let counts = data.counts.index_select(0, idx);
                let mut loss = poisson_nll(&out.counts(), &counts) * w.poisson_nll;
                if w.amplitude_mae > 0.0 {
                    loss += mae(&out.amplitude_scaled, &counts.sqrt()) * w.amplitude_mae;
                }
                if w.total_variation > 0.0 {
                    loss += total_variation(&out.object) * w.total_variation;
                }
                if w.phase_gauge > 0.0 {
                    loss += out.phase_gauge() * w.phase_gauge;
                }
                Ok(loss)
            }
            TrainedModel::Supervised(m) => {
                let truth = data
                    .truth
                    .as_ref()
                    .expect("supervised data has truth")
                    .index_select(0, idx);
                let (a, phi) = m.forward(&x)?;
                Ok(mae(&a, &truth.abs()) + mae(&phi, &truth.angle()))
            }
        }
    }
}

/// Validation indices: the first `ceil(fraction·n)` of a seeded permutation
/// (none when `fraction` is 0 or there are fewer than 2 groups).
fn split(n: usize, fraction: f64, seed: u64) -> (Vec<i64>, Vec<i64>) {
    let mut all: Vec<i64> = (0..n as i64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(100);
    all.shuffle(&mut rng);
    let k = if fraction > 0.0 && n >= 2 {
        ((fraction * n as f64).ceil() as usize).min(n - 1)
    } else {
        0
    };
    let val = all[..k].to_vec();
    let mut train = all[k..].to_vec();
    train.sort_unstable();
    (train, val)
}

/// The order of epoch `epoch`: depends on the seed and the epoch only, so a
/// resumed run shuffles as an uninterrupted one.
fn shuffled(train: &[i64], seed: u64, epoch: u64) -> Vec<i64> {
    let mut v = train.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1000 + epoch);
    v.shuffle(&mut rng);
    v
}

const STATE_KEY: &str = "trainer.state_json";

fn save_checkpoint(path: &Path, model: &TrainedModel, adam: &Adam, state: &LoopState) -> Result<()> {
    let json = serde_json::to_vec(state).expect("state serialises");
    let mut tensors: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
    tensors.extend(adam.state());
    tensors.push((STATE_KEY.to_string(), Tensor::from_slice(&json)));
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        // NCHW order in the file whatever the layout in memory
        .map(|(n, t)| (n, t.to_device(Device::Cpu).contiguous()))
        .collect();
    write_via_temp_path(path, |tmp| {
        Tensor::write_safetensors(&tensors, tmp)
            .map_err(|e| Error::format(path, format!("cannot write checkpoint: {e}")))
    })
}

fn load_checkpoint(path: &Path, model: &TrainedModel, adam: &mut Adam) -> Result<LoopState> {
    let tensors =
        Tensor::read_safetensors(path).map_err(|e| Error::format(path, format!("unreadable checkpoint: {e}")))?;
    let find = |k: &str| tensors.iter().find(|(n, _)| n == k).map(|(_, t)| t);
    let json = find(STATE_KEY).ok_or_else(|| Error::format(path, "checkpoint has no training state"))?;
    let bytes = Vec::<u8>::try_from(json)?;
    let state: LoopState = serde_json::from_slice(&bytes)
        .map_err(|e| Error::format(path, format!("checkpoint state is unreadable: {e}")))?;
    crate::model::init::load_variables(
        model.var_store(),
        |name| find(name).map(Tensor::shallow_clone),
        path,
        "checkpoint",
    )?;
    adam.load_state(&tensors).map_err(|e| Error::format(path, e))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_state_round_trips_every_float_exactly() {
        // serde_json's default parser may land one ulp off (this loss did,
        // and a resumed history differed from the uninterrupted one)
        let v = -221.733_604_431_152_34_f64;
        let state = LoopState {
            epochs_done: 1,
            learning_rate: 1e-3 / 3.0,
            best_val: v,
            plateau_wait: 0,
            best_train: v.next_up(),
            stop_wait: 0,
            adam_step: 7,
            history: History::default(),
            stopped: false,
            loss_scaler: Some(LossScaler {
                scale: 8192.0,
                good_steps: 12,
                skipped_steps: 3,
            }),
        };
        let json = serde_json::to_vec(&state).unwrap();
        let back: LoopState = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.loss_scaler, state.loss_scaler);
        // a checkpoint written before the loss scale existed still reads
        let mut old: serde_json::Value = serde_json::from_slice(&json).unwrap();
        old.as_object_mut().unwrap().remove("loss_scaler");
        let older: LoopState = serde_json::from_value(old).unwrap();
        assert_eq!(older.loss_scaler, None);
        assert_eq!(back.best_val.to_bits(), v.to_bits());
        assert_eq!(back.best_train.to_bits(), v.next_up().to_bits());
        assert_eq!(back.learning_rate.to_bits(), (1e-3f64 / 3.0).to_bits());
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let (t, v) = split(100, 0.05, 3);
        assert_eq!((t.len(), v.len()), (95, 5));
        assert!(v.iter().all(|i| !t.contains(i)));
        assert_eq!(split(100, 0.05, 3), (t, v));
        assert_eq!(split(1, 0.05, 3).1.len(), 0);
    }

    #[test]
    fn epoch_order_depends_on_seed_and_epoch_only() {
        let t: Vec<i64> = (0..50).collect();
        assert_eq!(shuffled(&t, 1, 2), shuffled(&t, 1, 2));
        assert_ne!(shuffled(&t, 1, 2), shuffled(&t, 1, 3));
    }
}
