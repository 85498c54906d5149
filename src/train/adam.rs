//! Adam with its state in plain tensors, so a checkpoint holds everything
//! needed to continue exactly where training stopped (libtorch's optimiser
//! state is not reachable through `tch`).
//!
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr·m̂ / (sqrt(v̂) + ε)` with bias-corrected `m̂`, `v̂`;
//! Keras' defaults β1 = 0.9, β2 = 0.999, ε = 1e-7 (PtychoPINN trains in Keras).
//!
//! # One flat buffer per device and dtype
//! A step is a handful of element-wise kernels over all parameters at once,
//! not a dozen per parameter: on a GPU the per-parameter form spent more time
//! launching kernels than running them. At construction the parameters'
//! data are moved into one flat buffer and each parameter becomes a view of
//! its slice (`set_data`, what `p.data = …` does in PyTorch); their gradients
//! become views of a second flat buffer. [`Adam::backward`] writes a loss's
//! gradients into it with one concatenation; `loss.backward()` after
//! [`Adam::zero_grad`] gives the same values, autograd adding into each
//! slice in place. The model's variables are the same tensors as before
//! (a slice keeps its variable's memory layout: a channels-last weight stays
//! channels-last), so saving and loading them is unchanged.
//! Create the optimiser after the model is on its device and dtype.
use tch::{Device, Kind, Tensor, no_grad};

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPSILON: f64 = 1e-7;

/// Parameters of one device and dtype, and their state, in flat buffers.
#[derive(Debug)]
struct Group {
    /// Indices into `Adam::params`, in the order of their slices.
    members: Vec<usize>,
    grad: Tensor,
    param: Tensor,
    m: Tensor,
    v: Tensor,
}

/// Optimiser state for a list of named parameters.
#[derive(Debug)]
pub struct Adam {
    params: Vec<(String, Tensor)>,
    /// Each parameter's `(m, v)`: views of its slices of its group's buffers.
    moments: Vec<(Tensor, Tensor)>,
    groups: Vec<Group>,
    /// Steps taken (for the bias correction).
    pub step: i64,
    pub learning_rate: f64,
}

impl Adam {
    /// `params`: the trainable variables with their names (sorted by name for
    /// a stable checkpoint layout). Each becomes a view of a flat buffer, and
    /// so does its gradient (defined here as zeros if it was not).
    pub fn new(mut params: Vec<(String, Tensor)>, learning_rate: f64) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        define_gradients(&params);
        let mut keys: Vec<(Device, Kind)> = Vec::new();
        for (_, p) in &params {
            if !keys.contains(&(p.device(), p.kind())) {
                keys.push((p.device(), p.kind()));
            }
        }
        let mut moments = Vec::with_capacity(params.len());
        let groups = keys
            .into_iter()
            .map(|key| {
                let indices: Vec<usize> = (0..params.len())
                    .filter(|&i| (params[i].1.device(), params[i].1.kind()) == key)
                    .collect();
                let (group, views) = flatten(&params, &indices);
                moments.extend(indices.into_iter().zip(views));
                group
            })
            .collect();
        moments.sort_by_key(|(i, _)| *i);
        Adam {
            moments: moments.into_iter().map(|(_, mv)| mv).collect(),
            params,
            groups,
            step: 0,
            learning_rate,
        }
    }

    /// Adam over every variable of `vs` that requires a gradient.
    pub fn for_var_store(vs: &tch::nn::VarStore, learning_rate: f64) -> Self {
        let trainable = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        Adam::new(trainable, learning_rate)
    }

    /// Computes the gradients of `loss` with respect to every parameter
    /// straight into the flat gradient buffers, replacing what they held:
    /// no [`zero_grad`](Self::zero_grad) before it. `loss.backward()` after
    /// `zero_grad` gives the same values, but autograd then adds each
    /// parameter's gradient into its slice, one kernel and one backward node
    /// per parameter (45 for the PINN); here they are copied in by one
    /// concatenation per buffer. Each parameter's `grad()` is its slice, as
    /// after `backward()`.
    pub fn backward(&mut self, loss: &Tensor) -> crate::error::Result<()> {
        let inputs: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &inputs, false, false)?;
        no_grad(|| -> crate::error::Result<()> {
            for group in &self.groups {
                let pieces: Vec<Tensor> = group
                    .members
                    .iter()
                    .map(|&i| {
                        let slot = self.params[i].1.grad();
                        let g = &grads[i];
                        let g = if !g.defined() {
                            // a parameter the loss does not reach
                            slot.zeros_like()
                        } else if g.size() == slot.size() && g.stride() == slot.stride() {
                            g.shallow_clone()
                        } else {
                            // another layout than its slice's: into that one first
                            let mut t = slot.empty_like();
                            t.copy_(g);
                            t
                        };
                        in_memory_order(&g)
                    })
                    .collect();
                let _ = Tensor::f_cat_out(&group.grad, &pieces, 0)?;
            }
            Ok(())
        })
    }

    /// Clears the gradients (one kernel per flat buffer).
    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            let _ = g.grad.zero_();
        }
    }

    /// Divides the gradients by `scale` (float16 training's loss scale) and
    /// says whether they are all finite (a host sync per buffer).
    pub fn unscale_gradients(&mut self, scale: f64) -> bool {
        let mut finite = true;
        no_grad(|| {
            for g in &mut self.groups {
                let _ = g.grad.g_mul_scalar_(1.0 / scale);
                finite &= g.grad.isfinite().all().int64_value(&[]) != 0;
            }
        });
        finite
    }

    /// One update from the current gradients.
    pub fn step(&mut self) {
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - BETA1.powi(t);
        let c2 = 1.0 - BETA2.powi(t);
        let lr = self.learning_rate;
        no_grad(|| {
            for g in &mut self.groups {
                let _ = g.m.lerp_(&g.grad, 1.0 - BETA1);
                let _ = g.v.lerp_(&g.grad.square(), 1.0 - BETA2);
                // m̂ / (sqrt(v̂) + ε) = m / (sqrt(v)/sqrt(c2) + ε) / c1
                let mut denominator = g.v.sqrt();
                let _ = denominator.g_div_scalar_(c2.sqrt()).g_add_scalar_(EPSILON);
                let mut update = &g.m / &denominator;
                let _ = update.g_mul_scalar_(lr / c1);
                let _ = g.param.g_sub_(&update);
            }
        });
    }

    /// The state as named tensors (`adam.m.<name>`, `adam.v.<name>`), views
    /// of the flat buffers (a channels-last weight's in its layout).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for ((name, _), (m, v)) in self.params.iter().zip(&self.moments) {
            out.push((format!("adam.m.{name}"), m.shallow_clone()));
            out.push((format!("adam.v.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restores the moments from named tensors; missing names are an error.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), String> {
        let find = |key: &str| tensors.iter().find(|(n, _)| n == key).map(|(_, t)| t);
        for ((name, p), (m, v)) in self.params.iter().zip(&mut self.moments) {
            let (Some(sm), Some(sv)) = (find(&format!("adam.m.{name}")), find(&format!("adam.v.{name}"))) else {
                return Err(format!("optimiser state for `{name}` is missing"));
            };
            if sm.size() != p.size() || sv.size() != p.size() {
                return Err(format!(
                    "optimiser state for `{name}` has shape {:?}, the parameter {:?}",
                    sm.size(),
                    p.size()
                ));
            }
            no_grad(|| {
                m.copy_(sm);
                v.copy_(sv);
            });
        }
        Ok(())
    }
}

/// The slice `[offset, offset + count)` of `flat`, shaped like `like` and
/// in its memory layout: NCHW-contiguous, or channels-last for a
/// convolution's weight kept that way ([`crate::runtime::channels_last`]),
/// whose gradient then comes in the same layout.
fn slice(flat: &Tensor, offset: i64, count: i64, like: &Tensor) -> Tensor {
    let part = flat.narrow(0, offset, count);
    let s = like.size();
    if !like.is_contiguous() && crate::runtime::is_dense_channels_last(like) {
        part.view([s[0], s[2], s[3], s[1]]).permute([0, 3, 1, 2])
    } else {
        part.view(s.as_slice())
    }
}

/// A dense tensor as 1-D in the order of its elements in memory (a view):
/// for a tensor with its slice's strides, the order of that slice.
fn in_memory_order(t: &Tensor) -> Tensor {
    if t.is_contiguous() {
        return t.view([-1]);
    }
    let stride = t.stride();
    let mut dims: Vec<i64> = (0..stride.len() as i64).collect();
    dims.sort_by_key(|&d| std::cmp::Reverse(stride[d as usize]));
    t.permute(dims.as_slice()).view([-1])
}

/// Gives every parameter without a gradient a zero one (one backward pass of
/// `Σ 0·sum(p)`), so that each gradient can be re-pointed at a flat buffer.
fn define_gradients(params: &[(String, Tensor)]) {
    let missing: Vec<&Tensor> = params.iter().map(|(_, p)| p).filter(|p| !p.grad().defined()).collect();
    if missing.is_empty() {
        return;
    }
    tch::with_grad(|| {
        let zero = missing
            .iter()
            .map(|p| p.sum(p.kind()).to_kind(Kind::Double) * 0.0)
            .reduce(|a, b| a + b)
            .expect("at least one parameter");
        zero.backward();
    });
}

/// Moves the parameters `indices` (one device and dtype) and their
/// gradients into flat buffers, leaving each a view of its slice; returns
/// the group and each parameter's views of the moment buffers, in order.
fn flatten(params: &[(String, Tensor)], indices: &[usize]) -> (Group, Vec<(Tensor, Tensor)>) {
    let first = &params[indices[0]].1;
    let (device, kind) = (first.device(), first.kind());
    let mut members = Vec::with_capacity(indices.len());
    let mut total = 0i64;
    for &i in indices {
        let count = params[i].1.numel() as i64;
        members.push((i, total, count));
        total += count;
    }
    let param = Tensor::zeros([total], (kind, device));
    let grad = Tensor::zeros([total], (kind, device));
    no_grad(|| {
        for &(i, offset, count) in &members {
            let p = &params[i].1;
            let mut pv = slice(&param, offset, count, p);
            pv.copy_(p);
            let mut gv = slice(&grad, offset, count, p);
            gv.copy_(&p.grad());
            p.shallow_clone().set_data(&pv);
            p.grad().set_data(&gv);
        }
    });
    let (m, v) = (grad.zeros_like(), grad.zeros_like());
    let views = members
        .iter()
        .map(|&(i, offset, count)| {
            (
                slice(&m, offset, count, &params[i].1),
                slice(&v, offset, count, &params[i].1),
            )
        })
        .collect();
    let members = members.iter().map(|&(i, _, _)| i).collect();
    (
        Group {
            members,
            grad,
            param,
            m,
            v,
        },
        views,
    )
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
    #[test]
    fn backward_into_the_buffers_gives_autograds_gradients_and_replaces_them() {
        // two copies of four parameters: a vector; a channels-last weight;
        // an NCHW weight whose gradient comes back channels-last (a
        // convolution of a channels-last input), so it takes the copy into
        // its slice's layout; and one the loss does not use. One copy gets
        // its gradients from `Adam::backward`, the other from zero_grad +
        // backward(): they must agree bit for bit, in every slot
        tch::manual_seed(11);
        let make = || {
            let a = Tensor::randn([3], (Kind::Float, Device::Cpu));
            let w = crate::runtime::to_channels_last(&Tensor::randn([2, 3, 3, 3], (Kind::Float, Device::Cpu)));
            let u = Tensor::randn([2, 3, 3, 3], (Kind::Float, Device::Cpu));
            let z = Tensor::randn([2], (Kind::Float, Device::Cpu));
            [a, w, u, z]
        };
        let values = make();
        let x = crate::runtime::to_channels_last(&Tensor::randn([1, 3, 5, 5], (Kind::Float, Device::Cpu)));
        let params = || -> Vec<Tensor> { values.iter().map(|v| v.copy().set_requires_grad(true)).collect() };
        let loss_of = |p: &[Tensor]| {
            let conv = |w: &Tensor| x.conv2d(w, None::<&Tensor>, [1, 1], [1, 1], [1, 1], 1);
            (conv(&p[1]) * conv(&p[2])).sum(Kind::Float) + (&p[0] * &p[0]).sum(Kind::Float)
        };
        let named = |p: &[Tensor]| -> Vec<(String, Tensor)> {
            ["a", "w", "u", "z"]
                .iter()
                .zip(p)
                .map(|(n, t)| (n.to_string(), t.shallow_clone()))
                .collect()
        };
        let (mine, theirs) = (params(), params());
        let mut adam = Adam::new(named(&mine), 0.1);
        let mut reference = Adam::new(named(&theirs), 0.1);
        // the gradient of u does come back in another layout than u's
        let probe = theirs[2].copy().set_requires_grad(true);
        let g = Tensor::run_backward(
            &[&loss_of(&[
                theirs[0].shallow_clone(),
                theirs[1].shallow_clone(),
                probe.shallow_clone(),
                theirs[3].shallow_clone(),
            ])],
            &[&probe],
            false,
            false,
        );
        assert_ne!(g[0].stride(), theirs[2].stride());
        // a first pass leaves something to be replaced
        adam.backward(&(loss_of(&mine) * 3.0)).unwrap();
        adam.backward(&loss_of(&mine)).unwrap();
        reference.zero_grad();
        loss_of(&theirs).backward();
        for (i, (m, t)) in mine.iter().zip(&theirs).enumerate() {
            assert!(m.grad().equal(&t.grad()), "parameter {i}");
            assert_eq!(m.grad().stride(), t.grad().stride(), "parameter {i}");
        }
        assert!(mine[3].grad().eq(0.0).all().int64_value(&[]) != 0);
        assert!(mine[1].grad().abs().max().double_value(&[]) > 0.0);
        // and the flat buffers, which the update reads, hold the same
        adam.step();
        reference.step();
        for (m, t) in mine.iter().zip(&theirs) {
            assert!(m.equal(t));
        }
    }

    #[test]
    fn a_channels_last_weight_keeps_its_layout_and_gets_the_same_update() {
        // a convolution's weight kept channels-last, and an NCHW twin with
        // the same values and the same loss: the element-wise update is the
        // same, so the two must stay equal bit for bit; a slice that lost the
        // layout, or mixed up the element order, would show here
        let values = Tensor::randn([3, 4, 2, 5], (Kind::Float, Device::Cpu));
        let cl = crate::runtime::to_channels_last(&values).set_requires_grad(true);
        let twin = values.copy().set_requires_grad(true);
        let cl_strides = cl.stride();
        assert_ne!(cl_strides, twin.stride());
        let target = Tensor::randn([3, 4, 2, 5], (Kind::Float, Device::Cpu));
        let mut opt = Adam::new(
            vec![("cl".into(), cl.shallow_clone()), ("twin".into(), twin.shallow_clone())],
            0.01,
        );
        for _ in 0..3 {
            opt.zero_grad();
            let loss = (&cl - &target).square().sum(Kind::Float) + (&twin - &target).square().sum(Kind::Float);
            loss.backward();
            opt.step();
        }
        assert_eq!(cl.stride(), cl_strides);
        assert_eq!(cl.grad().stride(), cl_strides);
        assert_eq!(opt.state()[0].1.stride(), cl_strides);
        assert!(cl.equal(&twin));
        assert!(!cl.equal(&values), "three steps moved nothing");
    }

    #[test]
    fn updates_parameters_of_several_shapes_and_dtypes_in_their_flat_buffers() {
        // loss = Σ a² + Σ b³ + Σ 3c over three steps, zeroing the gradients in
        // between: a gradient left out of the flat buffer would not move its
        // parameter, and one not zeroed would double at the second step
        let a = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.5f64, 3.0, -1.0, 2.0])
            .view([2, 2])
            .set_requires_grad(true);
        let c = Tensor::from_slice(&[0.25f32, -0.75, 4.0]).set_requires_grad(true);
        let mut opt = Adam::new(
            vec![
                ("b".into(), b.shallow_clone()),
                ("a".into(), a.shallow_clone()),
                ("c".into(), c.shallow_clone()),
            ],
            0.05,
        );
        for _ in 0..3 {
            opt.zero_grad();
            let loss = a.square().sum(Kind::Double)
                + b.pow_tensor_scalar(3).sum(Kind::Double)
                + (&c * 3.0).sum(Kind::Double).to_kind(Kind::Double);
            loss.backward();
            opt.step();
        }
        let by_hand = |x0: &[f64], grad: &dyn Fn(f64) -> f64| -> Vec<f64> {
            let mut x = x0.to_vec();
            let (mut m, mut v) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            for t in 1..=3 {
                for i in 0..x.len() {
                    let g = grad(x[i]);
                    m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
                    v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
                    let mh = m[i] / (1.0 - BETA1.powi(t));
                    let vh = v[i] / (1.0 - BETA2.powi(t));
                    x[i] -= 0.05 * mh / (vh.sqrt() + EPSILON);
                }
            }
            x
        };
        let got = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let close = |got: Vec<f64>, want: Vec<f64>, tol: f64| {
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < tol, "{got:?} vs {want:?}");
            }
        };
        close(got(&a), by_hand(&[1.0, -2.0], &|x| 2.0 * x), 1e-12);
        close(got(&b), by_hand(&[0.5, 3.0, -1.0, 2.0], &|x| 3.0 * x * x), 1e-12);
        close(got(&c), by_hand(&[0.25, -0.75, 4.0], &|_| 3.0), 1e-6);
        assert_eq!(b.size(), [2, 2]);
        // the named state comes back in the parameters' shapes and restores exactly
        let state = opt.state();
        let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["adam.m.a", "adam.v.a", "adam.m.b", "adam.v.b", "adam.m.c", "adam.v.c"]
        );
        assert_eq!(state[2].1.size(), [2, 2]);
        let saved: Vec<(String, Tensor)> = state.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
        let mut other = Adam::new(
            vec![
                ("a".into(), a.detach().copy().set_requires_grad(true)),
                ("b".into(), b.detach().copy().set_requires_grad(true)),
                ("c".into(), c.detach().copy().set_requires_grad(true)),
            ],
            0.05,
        );
        other.load_state(&saved).unwrap();
        for ((n1, t1), (n2, t2)) in other.state().iter().zip(&saved) {
            assert_eq!(n1, n2);
            assert!(t1.equal(t2), "{n1}");
        }
        let wrong: Vec<(String, Tensor)> = saved.iter().map(|(n, t)| (n.clone(), t.reshape([-1]))).collect();
        assert!(other.load_state(&wrong).unwrap_err().contains("shape"));
    }
    #[test]
    fn unscaling_divides_the_gradients_and_reports_an_overflow() {
        let a = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[3.0f32]).set_requires_grad(true);
        let mut opt = Adam::new(
            vec![("a".into(), a.shallow_clone()), ("b".into(), b.shallow_clone())],
            0.1,
        );
        opt.zero_grad();
        ((a.square().sum(Kind::Float) + b.sum(Kind::Float)) * 1024.0).backward();
        assert!(opt.unscale_gradients(1024.0));
        assert_eq!(Vec::<f32>::try_from(a.grad()).unwrap(), [2.0, -4.0]);
        assert_eq!(Vec::<f32>::try_from(b.grad()).unwrap(), [1.0]);
        // an infinite gradient in either parameter is seen
        opt.zero_grad();
        (b.sum(Kind::Float) * f64::from(f32::MAX) * 4.0 + a.sum(Kind::Float)).backward();
        assert!(!opt.unscale_gradients(2.0));
    }
}
