//! Weights: initialisation from our own seeded RNG, and loading named
//! tensors into a model.
//!
//! Initialisation uses our own seeded RNG, so a model's starting
//! point depends on its seed only (not on libtorch's global generator, which
//! other code may draw from at the same time).
//!
//! Weights are He-uniform, `±sqrt(6/fan_in)` (variance `2/fan_in`, which
//! keeps the signal's variance through ReLU layers), and biases start at
//! zero. libtorch's default (`±1/sqrt(fan_in)` for weights *and* biases)
//! shrinks the signal by ~6× in variance per layer, so after the eleven
//! convolutions of the N = 64 network the output is set by the biases and
//! hardly depends on the input: the PINN then settles on one blob for every
//! pattern. Parameters are visited in name order, each from its own ChaCha8
//! stream.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use tch::{Kind, Tensor, nn};

use crate::error::{Error, Result};

/// How much smaller the output convolutions' weights start than He's bound.
///
/// With He's bound the fresh PINN's phase pre-activations have a standard
/// deviation of about 1.5, and a third of the phase sits in `π·tanh`'s flat
/// ends. A random phase scatters light far outside the probe's cone, so the
/// first Adam steps flatten the phase the quickest way there is: by pushing
/// every pixel into saturation at ±π (the same physical phase), where no
/// gradient ever returns. Measured on the quickstart data (gridsize 2,
/// `examples/phase_histogram.rs`): 99 % of the centre phase sat within
/// 0.5 rad of ±π after 2 steps at lr 1e-3, 92 % after 20 steps at lr 1e-4,
/// and the network could only learn the amplitude. Starting near phase 0 and amplitude `sigmoid(0)` keeps both
/// heads in their linear range.
pub const OUTPUT_LAYER_SCALE: f64 = 0.1;

/// The last convolution of a head (centre, border and plain decoders'
/// outputs), whose output goes straight into the head's activation.
fn is_output_layer(name: &str) -> bool {
    name.ends_with(".centre.weight") || name.ends_with(".out.weight")
}

/// Re-draws every variable whose name ends in `weight` or `bias`.
pub fn reinitialise(vs: &nn::VarStore, seed: u64) {
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    tch::no_grad(|| {
        for (stream, name) in names.iter().enumerate() {
            let t = &vars[*name];
            let fan_in = if name.ends_with("weight") {
                let s = t.size();
                s[1..].iter().product::<i64>()
            } else if name.ends_with("bias") {
                let _ = t.shallow_clone().zero_();
                continue;
            } else {
                continue;
            };
            let mut bound = (6.0 / fan_in.max(1) as f64).sqrt();
            if is_output_layer(name) {
                bound *= OUTPUT_LAYER_SCALE;
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream as u64);
            let values: Vec<f32> = (0..t.numel()).map(|_| rng.random_range(-bound..bound) as f32).collect();
            let src = Tensor::from_slice(&values)
                .view(t.size().as_slice())
                .to_kind(Kind::Float)
                .to_device(t.device());
            let mut dst = t.shallow_clone();
            dst.copy_(&src);
        }
    });
}

/// Copies `lookup(name)` into every variable of `vs`; a missing name or a
/// shape that differs is an error naming `path` and the variable (`what`
/// says which kind of file it is: "bundle", "checkpoint").
pub fn load_variables(
    vs: &nn::VarStore,
    lookup: impl Fn(&str) -> Option<Tensor>,
    path: &Path,
    what: &str,
) -> Result<()> {
    tch::no_grad(|| {
        for (name, var) in vs.variables() {
            let src = lookup(&name)
                .ok_or_else(|| Error::format(path, format!("the {what} lacks `{name}` (a file of another model?)")))?;
            if src.size() != var.size() {
                return Err(Error::format(
                    path,
                    format!(
                        "`{name}` is {:?} in the {what}, the model needs {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            let mut v = var.shallow_clone();
            v.copy_(&src);
        }
        Ok(())
    })
}
