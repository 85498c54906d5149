//! Adam with its state in plain tensors, so a checkpoint holds everything
//! needed to continue exactly where training stopped (libtorch's optimiser
//! state is not reachable through `tch`).
//!
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr·m̂ / (sqrt(v̂) + ε)` with bias-corrected `m̂`, `v̂`;
//! Keras' defaults β1 = 0.9, β2 = 0.999, ε = 1e-7 (PtychoPINN trains in Keras).
use tch::{Tensor, no_grad};

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPSILON: f64 = 1e-7;

/// Optimiser state for a list of named parameters.
#[derive(Debug)]
pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken (for the bias correction).
    pub step: i64,
    pub learning_rate: f64,
}

impl Adam {
    /// `params`: the trainable variables with their names (sorted by name for
    /// a stable checkpoint layout).
    pub fn new(mut params: Vec<(String, Tensor)>, learning_rate: f64) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam {
            params,
            m,
            v,
            step: 0,
            learning_rate,
        }
    }

    /// Adam over every variable of `vs` that requires a gradient.
    pub fn for_var_store(vs: &tch::nn::VarStore, learning_rate: f64) -> Self {
        let trainable = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        Adam::new(trainable, learning_rate)
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// One update from the current gradients.
    pub fn step(&mut self) {
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - BETA1.powi(t);
        let c2 = 1.0 - BETA2.powi(t);
        let lr = self.learning_rate;
        no_grad(|| {
            for (((_, p), m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(BETA1).g_add_(&(&g * (1.0 - BETA1)));
                let _ = v.g_mul_scalar_(BETA2).g_add_(&(g.square() * (1.0 - BETA2)));
                let update = (&*m / c1) / ((&*v / c2).sqrt() + EPSILON) * lr;
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&update);
            }
        });
    }

    /// The state as named tensors (`adam.m.<name>`, `adam.v.<name>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (((name, _), m), v) in self.params.iter().zip(&self.m).zip(&self.v) {
            out.push((format!("adam.m.{name}"), m.shallow_clone()));
            out.push((format!("adam.v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restores the moments from named tensors; missing names are an error.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), String> {
        let find = |key: &str| tensors.iter().find(|(n, _)| n == key).map(|(_, t)| t);
        for (((name, _), m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
            let (Some(sm), Some(sv)) = (find(&format!("adam.m.{name}")), find(&format!("adam.v.{name}"))) else {
                return Err(format!("optimiser state for `{name}` is missing"));
            };
            no_grad(|| {
                m.copy_(sm);
                v.copy_(sv);
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn matches_the_update_rule_by_hand() {
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Adam::new(vec![("p".into(), p.shallow_clone())], 0.1);
        // loss = Σ p² → g = 2p
        for _ in 0..2 {
            opt.zero_grad();
            p.square().sum(Kind::Double).backward();
            opt.step();
        }
        // by hand: step 1 moves each by −lr·sign(g) (m̂/sqrt(v̂) = ±1 up to ε)
        let mut x = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            for i in 0..2 {
                let g = 2.0 * x[i];
                m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
                v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
                let mh = m[i] / (1.0 - BETA1.powi(t));
                let vh = v[i] / (1.0 - BETA2.powi(t));
                x[i] -= 0.1 * mh / (vh.sqrt() + EPSILON);
            }
        }
        for (i, want) in x.iter().enumerate() {
            assert!((p.double_value(&[i as i64]) - want).abs() < 1e-12);
        }
    }
}
