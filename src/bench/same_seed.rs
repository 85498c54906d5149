//! The same training steps on the CPU and on another device, from the same
//! seed: the first check of a GPU machine (do the devices agree?).
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::Result;
use crate::model::loss::poisson_nll;
use crate::model::{ModelConfig, Pinn};
use crate::train::adam::Adam;

/// Losses of the same steps on two devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SameSeed {
    pub device: String,
    pub gridsize: usize,
    pub cpu_losses: Vec<f64>,
    pub device_losses: Vec<f64>,
    /// `max |a − b| / |a|` over the steps.
    pub max_relative_difference: f64,
}

/// `steps` Adam steps of the gridsize-`gridsize` PINN (N = 64, batch 8) on
/// the CPU and on `device`, with the same initial weights (our seeded
/// initialisation does not depend on the device) and the same random
/// inputs (drawn on the CPU, then copied).
pub fn same_seed_losses(device: Device, gridsize: usize, steps: usize) -> Result<SameSeed> {
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
    let run = |d: Device| -> Result<Vec<f64>> {
        let model = Pinn::new(&cfg, &probe.to_device(d), 30.0, 5, d)?;
        let mut adam = Adam::for_var_store(model.var_store(), 1e-3);
        let (x, offsets, counts) = (x.to_device(d), offsets.to_device(d), counts.to_device(d));
        let mut losses = Vec::with_capacity(steps);
        for _ in 0..steps {
            adam.zero_grad();
            let out = model.autoencoder(&x, &offsets)?;
            let loss = poisson_nll(&out.counts(), &counts);
            loss.backward();
            adam.step();
            losses.push(loss.double_value(&[]));
        }
        Ok(losses)
    };
    let cpu_losses = run(Device::Cpu)?;
    let device_losses = run(device)?;
    let max_relative_difference = cpu_losses
        .iter()
        .zip(&device_losses)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1e-30))
        .fold(0f64, f64::max);
    Ok(SameSeed {
        device: format!("{device:?}"),
        gridsize,
        cpu_losses,
        device_losses,
        max_relative_difference,
    })
}
