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
            let bound = (6.0 / fan_in.max(1) as f64).sqrt();
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
