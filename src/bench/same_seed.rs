//! The same training steps on the CPU and on another device, from the same
//! seed: the first check of a GPU machine (do the devices agree?).
//!
//! Training a few steps on random data is chaotic (Adam's first step moves
//! every weight by about ±lr whatever the size of its gradient, so a sign
//! flip in a tiny gradient changes the next loss), so the check compares
//! what should agree to float32 rounding: the first loss and the first
//! gradient. A CUDA device runs three times: with cuDNN off (plain float32
//! kernels, the strict comparison), with cuDNN and TF32 off (cuDNN's own
//! float32 algorithms), and with libtorch's defaults (cuDNN, whose
//! convolutions use TF32 on Ampere and later GPUs); the last two are
//! reported only, and tell cuDNN's algorithms apart from TF32.
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::loss::poisson_nll;
use crate::model::{ModelConfig, Pinn};
use crate::train::adam::Adam;

/// Largest relative difference of the first loss in the strict run.
pub const FIRST_LOSS_TOLERANCE: f64 = 1e-4;
/// Largest `‖g_device − g_cpu‖ / ‖g_cpu‖` of the first gradient in the strict run.
pub const GRADIENT_TOLERANCE: f64 = 1e-3;

/// The CPU against one device run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SameSeedRun {
    /// Whether cuDNN was enabled on the device (always false on the CPU).
    pub cudnn: bool,
    /// Whether cuDNN's convolutions could use TF32 (false without cuDNN).
    #[serde(default)]
    pub tf32: bool,
    pub device_losses: Vec<f64>,
    /// `|l_device − l_cpu| / |l_cpu|` at the first step.
    pub first_loss_relative_difference: f64,
    /// `‖g_device − g_cpu‖ / ‖g_cpu‖` over all weights at the first step.
    pub gradient_relative_difference: f64,
    /// `max |l_device − l_cpu| / |l_cpu|` over the steps (grows with the chaos above).
    pub max_loss_relative_difference: f64,
}

/// Losses and first gradients of the same steps on two devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SameSeed {
    pub device: String,
    pub gridsize: usize,
    pub learning_rate: f64,
    pub cpu_losses: Vec<f64>,
    /// The strict run (cuDNN off) first; on CUDA then cuDNN with TF32 off,
    /// and libtorch's defaults (cuDNN with TF32).
    pub runs: Vec<SameSeedRun>,
}

impl SameSeed {
    /// An error when the strict run's first loss or gradient differ from the
    /// CPU's by more than [`FIRST_LOSS_TOLERANCE`] or [`GRADIENT_TOLERANCE`].
    pub fn check(&self) -> Result<()> {
        let strict = &self.runs[0];
        if strict.first_loss_relative_difference > FIRST_LOSS_TOLERANCE
            || strict.gradient_relative_difference > GRADIENT_TOLERANCE
        {
            return Err(Error::value(
                "same-seed check",
                format!(
                    "{} (cuDNN off) differs from the CPU: first loss by {:.2e} (limit {FIRST_LOSS_TOLERANCE:.0e}), \
                     first gradient by {:.2e} (limit {GRADIENT_TOLERANCE:.0e})",
                    self.device, strict.first_loss_relative_difference, strict.gradient_relative_difference
                ),
            ));
        }
        Ok(())
    }
}

/// `steps` Adam steps (learning rate 1e-4) of the gridsize-`gridsize` PINN
/// (N = 64, batch 8) on the CPU and on `device`, with the same initial weights
/// (our seeded initialisation does not depend on the device) and the same
/// random inputs (drawn on the CPU, then copied).
pub fn same_seed_losses(device: Device, gridsize: usize, steps: usize) -> Result<SameSeed> {
    let learning_rate = 1e-4;
    let cfg = ModelConfig {
        gridsize,
        ..ModelConfig::default()
    };
    let (n, c, bs) = (cfg.n as i64, cfg.channels() as i64, 8i64);
    tch::manual_seed(11);
    let x = Tensor::rand([bs, c, n, n], (Kind::Float, Device::Cpu)) * 4.0;
    let offsets = (Tensor::rand([bs, c, 2], (Kind::Float, Device::Cpu)) - 0.5) * 8.0;
    let counts = (Tensor::rand([bs, c, n, n], (Kind::Float, Device::Cpu)) * 50.0).round();
    let probe = crate::physics::disk_probe(n, n as f64 / 4.0, 0.0, Device::Cpu)?;
    // (losses, first gradient flattened in name order, as float64 on the CPU)
    let run = |d: Device| -> Result<(Vec<f64>, Tensor)> {
        let model = Pinn::new(&cfg, &probe.to_device(d), 30.0, 5, d)?;
        let mut adam = Adam::for_var_store(model.var_store(), learning_rate);
        let (x, offsets, counts) = (x.to_device(d), offsets.to_device(d), counts.to_device(d));
        let mut losses = Vec::with_capacity(steps);
        let mut first_gradient = None;
        for _ in 0..steps.max(1) {
            let out = model.autoencoder(&x, &offsets)?;
            let loss = poisson_nll(&out.counts(), &counts);
            adam.backward(&loss)?;
            if first_gradient.is_none() {
                let mut named: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
                named.sort_by(|a, b| a.0.cmp(&b.0));
                let grads: Vec<Tensor> = named
                    .iter()
                    .filter(|(_, t)| t.requires_grad())
                    .map(|(_, t)| t.grad().to_device(Device::Cpu).to_kind(Kind::Double).reshape([-1]))
                    .collect();
                first_gradient = Some(Tensor::cat(&grads, 0));
            }
            adam.step();
            losses.push(loss.double_value(&[]));
        }
        Ok((losses, first_gradient.expect("at least one step")))
    };
    let (cpu_losses, cpu_gradient) = run(Device::Cpu)?;
    let compare = |cudnn: bool, tf32: bool| -> Result<SameSeedRun> {
        let (device_losses, gradient) = run(device)?;
        let relative = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-30);
        let gradient_relative_difference =
            (&gradient - &cpu_gradient).norm().double_value(&[]) / cpu_gradient.norm().double_value(&[]).max(1e-300);
        Ok(SameSeedRun {
            cudnn,
            tf32,
            first_loss_relative_difference: relative(cpu_losses[0], device_losses[0]),
            gradient_relative_difference,
            max_loss_relative_difference: cpu_losses
                .iter()
                .zip(&device_losses)
                .map(|(a, b)| relative(*a, *b))
                .fold(0f64, f64::max),
            device_losses,
        })
    };
    let mut runs = Vec::new();
    if device.is_cuda() {
        let before = tch::Cuda::user_enabled_cudnn();
        let tf32_before = crate::runtime::cudnn_tf32()?;
        tch::Cuda::set_user_enabled_cudnn(false);
        let strict = compare(false, false);
        tch::Cuda::set_user_enabled_cudnn(true);
        crate::runtime::set_cudnn_tf32(false)?;
        let no_tf32 = compare(true, false);
        crate::runtime::set_cudnn_tf32(true)?;
        let defaults = compare(true, true);
        tch::Cuda::set_user_enabled_cudnn(before);
        crate::runtime::set_cudnn_tf32(tf32_before)?;
        runs.push(strict?);
        runs.push(no_tf32?);
        runs.push(defaults?);
    } else {
        runs.push(compare(false, false)?);
    }
    Ok(SameSeed {
        device: format!("{device:?}"),
        gridsize,
        learning_rate,
        cpu_losses,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_against_itself_agrees_exactly_and_the_check_catches_a_gap() {
        let mut r = same_seed_losses(Device::Cpu, 1, 2).unwrap();
        assert_eq!(r.cpu_losses.len(), 2);
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].device_losses, r.cpu_losses);
        assert_eq!(r.runs[0].gradient_relative_difference, 0.0);
        assert!(r.cpu_losses.iter().all(|l| l.is_finite() && *l > 0.0));
        r.check().unwrap();
        r.runs[0].gradient_relative_difference = 2.0 * GRADIENT_TOLERANCE;
        assert!(r.check().unwrap_err().to_string().contains("first gradient"));
    }
}
