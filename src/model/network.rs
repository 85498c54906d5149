//! The convolutional generator: a shared encoder and two decoders
//! (amplitude, phase), PtychoPINN's "U-Net-like" CNN without skip
//! connections (ptychopinn.md §2.2).
//!
//! Every layer sits on an explicit literal path: the parameter names are a
//! file format (`weights.safetensors`), pinned by a snapshot test.
use std::f64::consts::PI;

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::{AmpActivation, BorderActivation, ModelConfig, PhaseActivation};
use crate::runtime::{is_dense_channels_last, to_channels_last};

/// Border channels handed to the border branch (PtychoPINN's `c_outer`).
const BORDER_CHANNELS: i64 = 4;

/// A 3×3 convolution, "same" padding. With [`crate::runtime::channels_last`]
/// on, its weight `[out, in, 3, 3]` is channels-last in memory, as the
/// activations are: a convolution otherwise copies its weight into their
/// layout every forward and backward pass (two copies per convolution per
/// step, on a GPU two kernel launches each).
fn conv3(p: nn::Path, cin: i64, cout: i64) -> nn::Conv2D {
    let conv = nn::conv2d(
        p,
        cin,
        cout,
        3,
        nn::ConvConfig {
            padding: 1,
            ..Default::default()
        },
    );
    if crate::runtime::channels_last() {
        // the variable store holds the same tensor: `set_data` re-points it
        tch::no_grad(|| conv.ws.shallow_clone().set_data(&to_channels_last(&conv.ws)));
    }
    conv
}

/// Conv3×3 + ReLU, twice.
#[derive(Debug)]
struct DoubleConv {
    a: nn::Conv2D,
    b: nn::Conv2D,
}

impl DoubleConv {
    fn new(p: &nn::Path, cin: i64, cout: i64) -> Self {
        DoubleConv {
            a: conv3(p / "conv_a", cin, cout),
            b: conv3(p / "conv_b", cout, cout),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.b.forward(&self.a.forward(&channels_last(x)).relu()).relu()
    }
}

/// `x` (`[B, C, H, W]`) with channels-last strides when
/// [`crate::runtime::channels_last`] is on: one copy for a tensor in
/// another layout (the network's input, a slice of the channels), and
/// nothing at all, not even a view in the autograd graph, for one already
/// channels-last (the convolutions, pooling and upsampling keep the layout).
/// On a GPU at small batches a training step is bound by the host's work
/// per operator, and the views cost two operators and two backward nodes
/// per block.
fn channels_last(x: &Tensor) -> Tensor {
    if crate::runtime::channels_last() && !is_dense_channels_last(x) {
        to_channels_last(x)
    } else {
        x.shallow_clone()
    }
}

fn log2(v: usize) -> usize {
    v.trailing_zeros() as usize
}

/// Encoder: `log2(N/8)` blocks of double conv + 2×2 max-pool, ending at
/// 8×8 with `nfs·128` channels; optionally (`ModelConfig::bottleneck_mixer`)
/// a residual token-mixing MLP across those 64 positions.
#[derive(Debug)]
pub struct Encoder {
    blocks: Vec<DoubleConv>,
    mixer: Option<(nn::Linear, nn::Linear)>,
}

/// Positions of the 8×8 bottleneck.
const BOTTLENECK: i64 = 64;
/// Hidden width of the bottleneck's token-mixing MLP.
const MIXER_HIDDEN: i64 = 256;

impl Encoder {
    /// # Shapes
    /// input `[B, c_in, N, N]` → `[B, nfs·128, 8, 8]`
    pub fn new(p: &nn::Path, cfg: &ModelConfig, c_in: i64) -> Self {
        let nfs = cfg.n_filters_scale as i64;
        let count = log2(cfg.n / 8);
        let mut blocks = Vec::with_capacity(count);
        let mut cin = c_in;
        for i in 0..count {
            let f = (nfs * 128) >> (count - 1 - i);
            blocks.push(DoubleConv::new(&(p / format!("block{}", i + 1)), cin, f));
            cin = f;
        }
        let mixer = cfg.bottleneck_mixer.then(|| {
            let m = p / "mixer";
            (
                nn::linear(&m / "a", BOTTLENECK, MIXER_HIDDEN, Default::default()),
                nn::linear(&m / "b", MIXER_HIDDEN, BOTTLENECK, Default::default()),
            )
        });
        Encoder { blocks, mixer }
    }

    /// # Shapes
    /// `[B, c_in, N, N]` → `[B, nfs·128, 8, 8]`
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let z = self
            .blocks
            .iter()
            .fold(x.shallow_clone(), |h, b| b.forward(&h).max_pool2d_default(2));
        match &self.mixer {
            None => z,
            Some((a, b)) => {
                // every channel mixes its 64 positions (a global receptive
                // field; the convolutions see only neighbourhoods)
                let s = z.size();
                let tokens = z.reshape([s[0], s[1], BOTTLENECK]);
                let mixed = b.forward(&a.forward(&tokens).gelu("none"));
                z + mixed.reshape(s.as_slice())
            }
        }
    }
}

/// Double conv + nearest 2× upsampling, `count` times; filters halve each time
/// and end at `last_filters`.
#[derive(Debug)]
struct UpStack {
    blocks: Vec<DoubleConv>,
}

impl UpStack {
    fn new(p: &nn::Path, cin: i64, count: usize, last_filters: i64) -> Self {
        let mut blocks = Vec::with_capacity(count);
        let mut c = cin;
        for j in 0..count {
            let f = last_filters << (count - 1 - j);
            blocks.push(DoubleConv::new(&(p / format!("block{}", j + 1)), c, f));
            c = f;
        }
        UpStack { blocks }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.blocks.iter().fold(x.shallow_clone(), |h, b| {
            let y = b.forward(&h);
            let s = y.size();
            y.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None)
        })
    }
}

/// Which head a decoder is.
#[derive(Debug, Clone, Copy)]
pub enum Head {
    Amplitude(AmpActivation),
    Phase(PhaseActivation),
}

/// A PINN decoder: base up-blocks to N/2, then the central branch (conv →
/// activation → zero-pad N/4) plus, optionally, the border branch
/// (up-block → conv → swish → border mask).
#[derive(Debug)]
pub struct PinnDecoder {
    base: UpStack,
    centre: nn::Conv2D,
    /// The border branch and its mask ([`border_mask`], made once on the
    /// weights' device rather than every step).
    border: Option<(DoubleConv, nn::Conv2D, Tensor)>,
    border_activation: BorderActivation,
    head: Head,
    n: i64,
}

impl PinnDecoder {
    /// # Shapes
    /// `[B, nfs·128, 8, 8]` → `[B, C, N, N]`
    pub fn new(p: &nn::Path, cfg: &ModelConfig, head: Head) -> Self {
        let nfs = cfg.n_filters_scale as i64;
        let n = cfg.n as i64;
        let c_out = cfg.channels() as i64;
        let base_out = nfs * 32;
        let base = UpStack::new(&(p / "base"), nfs * 128, log2(cfg.n / 16), base_out);
        let centre = conv3(p / "centre", base_out - BORDER_CHANNELS, c_out);
        let border = cfg.border_branch.then(|| {
            let f = nfs * 2048 / n;
            (
                DoubleConv::new(&(p / "border"), BORDER_CHANNELS, f),
                conv3(p / "border" / "out", f, c_out),
                border_mask(n, p.device()),
            )
        });
        PinnDecoder {
            base,
            centre,
            border,
            border_activation: cfg.border_activation,
            head,
            n,
        }
    }

    /// The output is contiguous (NCHW) whatever the activations' layout.
    pub fn forward(&self, z: &Tensor) -> Tensor {
        self.forward_any_layout(z).contiguous()
    }

    fn forward_any_layout(&self, z: &Tensor) -> Tensor {
        let h = self.base.forward(z);
        let ch = h.size()[1];
        let centre = self.activate(&self.centre.forward(&h.narrow(1, 0, ch - BORDER_CHANNELS)));
        let q = self.n / 4;
        let out = centre.constant_pad_nd([q, q, q, q]);
        match &self.border {
            None => out,
            Some((up, conv, mask)) => {
                let b = up.forward(&h.narrow(1, ch - BORDER_CHANNELS, BORDER_CHANNELS));
                let s = b.size();
                let b = b.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None);
                let b = conv.forward(&b);
                let b = match self.border_activation {
                    BorderActivation::Swish => b.silu(),
                    BorderActivation::Centre => self.activate(&b),
                };
                out + b * mask
            }
        }
    }
}

impl PinnDecoder {
    /// The head's activation of the central branch.
    fn activate(&self, x: &Tensor) -> Tensor {
        match self.head {
            Head::Amplitude(AmpActivation::Sigmoid) => x.sigmoid(),
            Head::Amplitude(AmpActivation::Swish) => x.silu(),
            Head::Amplitude(AmpActivation::Softplus) => x.softplus(),
            Head::Amplitude(AmpActivation::Relu) => x.relu(),
            Head::Phase(PhaseActivation::PiTanh) => x.tanh() * PI,
            Head::Phase(PhaseActivation::Linear) => x.shallow_clone(),
        }
    }
}

/// 1 outside the central N/2 × N/2 square, 0 inside. # Shapes: `[N, N]` f32.
pub fn border_mask(n: i64, device: tch::Device) -> Tensor {
    let inner = Tensor::ones([n / 2, n / 2], (Kind::Float, device)).constant_pad_nd([n / 4, n / 4, n / 4, n / 4]);
    1.0 - inner
}

/// A plain decoder for the supervised baseline: up-blocks from 8×8 back to
/// N×N, then a linear 3×3 conv to one channel.
#[derive(Debug)]
pub struct PlainDecoder {
    up: UpStack,
    out: nn::Conv2D,
}

impl PlainDecoder {
    /// # Shapes
    /// `[B, nfs·128, 8, 8]` → `[B, 1, N, N]`
    pub fn new(p: &nn::Path, cfg: &ModelConfig) -> Self {
        let nfs = cfg.n_filters_scale as i64;
        let up = UpStack::new(&(p / "base"), nfs * 128, log2(cfg.n / 8), nfs * 32);
        PlainDecoder {
            up,
            out: conv3(p / "out", nfs * 32, 1),
        }
    }

    /// The output is contiguous (NCHW) whatever the activations' layout.
    pub fn forward(&self, z: &Tensor) -> Tensor {
        self.out.forward(&self.up.forward(z)).contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_weights_layout_in_memory_does_not_change_the_outputs() {
        // the PINN with its convolutions' weights channels-last (the
        // default) and the same weights made NCHW-contiguous: the same
        // outputs up to float rounding (the convolutions may pick other
        // algorithms), and for a gradient too, in both gridsizes
        for gridsize in [1usize, 2] {
            let c = (gridsize * gridsize) as i64;
            let cfg = ModelConfig {
                n: 32,
                gridsize,
                ..ModelConfig::default()
            };
            let probe = crate::physics::disk_probe(32, 8.0, 0.0, Device::Cpu).unwrap();
            let model = crate::model::Pinn::new(&cfg, &probe, 10.0, 1, Device::Cpu).unwrap();
            tch::manual_seed(5);
            let x = Tensor::rand([3, c, 32, 32], (Kind::Float, Device::Cpu));
            let offsets = (Tensor::rand([3, c, 2], (Kind::Float, Device::Cpu)) - 0.5) * 4.0;
            let run = || {
                let out = model.autoencoder(&x, &offsets).unwrap();
                let loss = out.counts().sum(Kind::Float);
                let w = model.var_store().variables()["encoder.block2.conv_a.weight"].shallow_clone();
                let grad = Tensor::run_backward(&[&loss], &[&w], false, false).pop().unwrap();
                (out.amplitude_scaled.detach(), grad)
            };
            let weights: Vec<Tensor> = model
                .var_store()
                .variables()
                .into_iter()
                .filter(|(name, _)| name.ends_with("weight"))
                .map(|(_, t)| t)
                .collect();
            if crate::runtime::channels_last() {
                assert!(weights.iter().all(is_dense_channels_last));
                assert!(weights.iter().any(|w| !w.is_contiguous()));
            }
            let (amplitude_a, grad_a) = run();
            tch::no_grad(|| {
                for w in &weights {
                    w.shallow_clone().set_data(&w.contiguous());
                }
            });
            assert!(weights.iter().all(Tensor::is_contiguous));
            let (amplitude_b, grad_b) = run();
            let relative =
                |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]);
            assert!(relative(&amplitude_a, &amplitude_b) < 1e-5, "gridsize {gridsize}");
            assert!(relative(&grad_a, &grad_b) < 1e-4, "gridsize {gridsize}");
            assert!(grad_b.abs().max().double_value(&[]) > 0.0);
        }
    }

    #[test]
    fn the_bottleneck_mixer_gives_the_code_a_global_receptive_field() {
        // N = 32: two conv blocks reach about 16 px, so a pixel in one corner
        // of the pattern cannot move the code at the opposite corner, unless
        // the mixer spreads it across the 8×8 positions
        for mixer in [false, true] {
            let cfg = ModelConfig {
                n: 32,
                n_filters_scale: 1,
                bottleneck_mixer: mixer,
                ..ModelConfig::default()
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let enc = Encoder::new(&(vs.root() / "encoder"), &cfg, 1);
            crate::model::init::reinitialise(&vs, 3);
            let x = Tensor::rand([1, 1, 32, 32], (Kind::Float, Device::Cpu));
            let y = x.copy();
            let _ = y.get(0).get(0).get(0).get(0).fill_(50.0);
            let (a, b) = tch::no_grad(|| (enc.forward(&x), enc.forward(&y)));
            assert_eq!(a.size(), [1, 128, 8, 8]);
            let far = (a.get(0).narrow(1, 7, 1).narrow(2, 7, 1) - b.get(0).narrow(1, 7, 1).narrow(2, 7, 1))
                .abs()
                .max()
                .double_value(&[]);
            if mixer {
                assert!(far > 1e-4, "the mixer should reach the far corner ({far})");
            } else {
                assert_eq!(far, 0.0, "convolutions alone reach only a neighbourhood");
            }
        }
    }

    #[test]
    fn channels_last_copies_only_what_is_not_channels_last_already() {
        let x = Tensor::rand([2, 6, 5, 4], (Kind::Float, Device::Cpu));
        assert!(!is_dense_channels_last(&x));
        let cl = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert_eq!(cl.stride(), [120, 1, 24, 6]);
        assert!(is_dense_channels_last(&cl));
        // a slice of the channels is channels-last but not dense
        let part = cl.narrow(1, 0, 4);
        assert!(!is_dense_channels_last(&part));
        // one channel: both layouts are the same memory order
        assert!(is_dense_channels_last(&x.narrow(1, 0, 1).contiguous()));
        if !crate::runtime::channels_last() {
            return;
        }
        let y = channels_last(&x);
        assert_eq!(y.stride(), [120, 1, 24, 6]);
        assert!(y.equal(&x));
        let same = channels_last(&cl);
        assert_eq!(same.data_ptr(), cl.data_ptr());
        assert_eq!(same.stride(), cl.stride());
        let dense = channels_last(&part);
        assert_eq!(dense.stride(), [80, 1, 16, 4]);
        assert!(dense.equal(&part));
    }
}
