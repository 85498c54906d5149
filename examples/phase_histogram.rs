//! Where a PINN's phase sits: the histogram of the predicted patches' phase
//! (centre N/2 square and border) on the first patterns of a dataset, and the
//! spread within each patch. A phase piled up at ±π means `π·tanh` is
//! saturated and the phase head has stopped learning.
//!
//! `cargo run --release --example phase_histogram -- BUNDLE|fresh DATA.npz`
//! (`fresh`: an untrained gridsize-2 network, seed 0).
use std::path::Path;

use ptycho_workbench::array::f32_to_tensor;
use ptycho_workbench::bundle::Bundle;
use ptycho_workbench::data::read_dataset;
use ptycho_workbench::model::network::border_mask;
use ptycho_workbench::model::{ModelConfig, Pinn, input_scale};
use ptycho_workbench::train::TrainedModel;
use tch::{Device, Kind, Tensor};

fn histogram(t: &Tensor) -> anyhow::Result<Vec<i64>> {
    let pi = std::f64::consts::PI;
    let counts = t.clamp(-pi, pi).histc(12);
    Ok(Vec::<f64>::try_from(counts.to_kind(Kind::Double))?
        .into_iter()
        .map(|v| v as i64)
        .collect())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, which, data] = args.as_slice() else {
        anyhow::bail!("usage: phase_histogram BUNDLE|fresh DATA.npz");
    };
    let ds = read_dataset(Path::new(data))?;
    let bundle;
    let fresh;
    let model: &Pinn = if which == "fresh" {
        let cfg = ModelConfig {
            gridsize: 2,
            n: ds.patch_size(),
            ..ModelConfig::default()
        };
        fresh = Pinn::new(&cfg, &ds.probe_tensor(Device::Cpu), 8.0, 0, Device::Cpu)?;
        &fresh
    } else {
        bundle = Bundle::load(Path::new(which), Device::Cpu)?;
        match &bundle.model {
            TrainedModel::Pinn(m) => m,
            TrainedModel::Supervised(_) => anyhow::bail!("{which} holds a supervised model, not a PINN"),
        }
    };
    let (c, n) = (model.config().channels() as i64, model.config().n as i64);
    let groups = (ds.n_images() as i64 / c).min(32);
    let x = f32_to_tensor(&ds.diffraction, Device::Cpu).narrow(0, 0, groups * c) * input_scale(ds.diffraction.view())?;
    let _guard = tch::no_grad_guard();
    let phase = model.object_patches(&x.view([groups, c, n, n])).angle();
    let centre = phase.narrow(2, n / 4, n / 2).narrow(3, n / 4, n / 2);
    let border = phase.masked_select(&border_mask(n, Device::Cpu).to_kind(Kind::Bool));
    println!("12 bins between each part's min and max phase (clamped to ±π):");
    for (name, part) in [("centre", &centre), ("border", &border)] {
        let (lo, hi) = (part.min().double_value(&[]), part.max().double_value(&[]));
        println!("{name:7} {lo:+.2}..{hi:+.2} rad: {:?}", histogram(part)?);
    }
    let spread = centre.reshape([groups * c, -1]).std_dim(1, false, false);
    println!(
        "phase spread within a patch's centre: median {:.3} rad",
        spread.median().double_value(&[])
    );
    println!(
        "phase saturation (as train_result.json records it): {:.3}",
        model.phase_saturation(&x.view([groups, c, n, n]))?
    );
    Ok(())
}
