//! PtychoPINN's own bundles (`wts.h5.zip` with `manifest.dill`, TensorFlow
//! backend): importing their trained `diffraction_to_obj` into our network.
//!
//! Nothing pickled is ever opened: of the archive only
//! `diffraction_to_obj/model.keras` (JSON graph and HDF5 weights) and
//! `diffraction_to_obj/model.h5` (the attribute `intensity_scale`) are
//! read; `manifest.dill`, `params.dill` and `custom_objects.dill` are
//! checked to be there by name and left unread. The graph is walked from
//! its `obj` layer back to its input, so every convolution is identified by
//! where it sits, not by Keras's generated names.
//!
//! Conventions converted (docs/ptychopinn.md):
//! - kernels `[kh, kw, in, out]` (channels last) → `[out, in, kh, kw]`;
//! - PtychoPINN feeds the network `X · intensity_scale` and divides it back
//!   out, ours takes `X`: the same network input;
//! - its group offsets are `−(member − centroid)`, ours `member − centroid`
//!   (callers negate; the weights do not depend on it);
//! - its reassembly divides by the central squares' coverage + 0.001
//!   ([`ReassemblyNorm::CentreSquare`]) and its border branch ends in swish
//!   ([`BorderActivation::Swish`]); its canvas is `padded_size` wide.
use std::cell::RefCell;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use num_complex::Complex32;
use serde_json::{Value, json};
use tch::{Device, Tensor};

use super::keras::{KerasLayer, KerasModel};
use super::save::{BundleParts, sha256_hex, write_bundle};
use crate::error::{Error, Result};
use crate::model::{
    AmpActivation, BorderActivation, ModelConfig, ModelKind, OverlapFrame, PhaseActivation, Pinn, ReassemblyNorm,
};
use crate::train::TrainedModel;

/// Members of a PtychoPINN bundle.
pub mod members {
    pub const MANIFEST: &str = "manifest.dill";
    pub const KERAS: &str = "diffraction_to_obj/model.keras";
    pub const SCALE: &str = "diffraction_to_obj/model.h5";
}

/// PtychoPINN's default `probe_scale` (its `ModelConfig`).
pub const DEFAULT_PROBE_SCALE: f64 = 4.0;

/// What the import read: our configuration and the weights by our paths.
#[derive(Debug)]
pub struct PtychoPinnModel {
    pub config: ModelConfig,
    /// `(our weight path, tensor)` for every variable but the intensity scale.
    pub weights: Vec<(String, Tensor)>,
    /// `model.h5`'s `intensity_scale`.
    pub intensity_scale: f64,
    /// The width of its reassembly canvas.
    pub padded_size: i64,
    pub keras_version: Option<String>,
    /// sha256 of the archive.
    pub sha256: String,
}

/// Reads a PtychoPINN `wts.h5.zip` (never unpickling anything).
pub fn read_ptychopinn_bundle(path: &Path) -> Result<PtychoPinnModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let names = RefCell::new(Vec::new());
    let members = crate::data::archive::read_members_in(&bytes, path, "PtychoPINN bundle", |n| {
        names.borrow_mut().push(n.to_string());
        n == members::KERAS || n == members::SCALE
    })?;
    let names = names.into_inner();
    if names.iter().any(|n| n == super::manifest::members::MANIFEST) {
        return Err(Error::format(
            path,
            "this is already a ptycho-workbench bundle (manifest.json): load it as it is",
        ));
    }
    for required in [members::MANIFEST, members::KERAS, members::SCALE] {
        if !names.iter().any(|n| n == required) {
            return Err(Error::format(
                path,
                format!("not a PtychoPINN TensorFlow bundle: no member `{required}`"),
            ));
        }
    }
    let member = |name: &str| {
        members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
            .unwrap_or(&[])
    };
    let intensity_scale = read_intensity_scale(member(members::SCALE), path)?;
    let label = PathBuf::from(format!("{}!/{}", path.display(), members::KERAS));
    let keras = KerasModel::read(member(members::KERAS), &label)?;
    let (config, weights, padded_size) = map_network(&keras)?;
    Ok(PtychoPinnModel {
        config,
        weights,
        intensity_scale,
        padded_size,
        keras_version: keras.keras_version.clone(),
        sha256: sha256_hex(&bytes),
    })
}

/// `model.h5`: an HDF5 file whose root attribute `intensity_scale` is `s`.
fn read_intensity_scale(bytes: &[u8], path: &Path) -> Result<f64> {
    let h5 = crate::data::h5util::open_bytes(bytes, members::SCALE, path)?;
    let bad = |why: String| Error::format(path, format!("{}: {why}", members::SCALE));
    let s = crate::data::h5util::read_attr_f64(&h5.file, "intensity_scale", &h5.path)?
        .ok_or_else(|| bad("no attribute `intensity_scale`".into()))?;
    if !(s.is_finite() && s > 0.0) {
        return Err(bad(format!("intensity_scale must be positive, got {s}")));
    }
    Ok(s)
}

/// Walks the graph and maps it onto our network.
/// Our configuration, the weights by our paths, and the canvas width.
type Mapped = (ModelConfig, Vec<(String, Tensor)>, i64);

fn map_network(k: &KerasModel) -> Result<Mapped> {
    let walk = Walk { k };
    if let Some(l) = k.layers().iter().find(|l| l.class_name == "PadReconstructionLayer") {
        return Err(walk.refuse(
            l,
            "object.big = False (one patch per group, no reassembly) is a different network: \
             only object.big = True models can be imported",
        ));
    }
    let reassembly = k
        .layers()
        .iter()
        .find(|l| l.class_name == "ReassemblePatchesLayer")
        .ok_or_else(|| {
            Error::format(
                &k.label,
                "no ReassemblePatchesLayer: not PtychoPINN's diffraction_to_obj",
            )
        })?;
    let obj = walk.one_input(reassembly, 0)?;
    walk.class(obj, "CombineComplexLayer")?;
    if obj.config.get("use_polar").and_then(Value::as_bool) == Some(false) {
        return Err(walk.refuse(
            obj,
            "use_polar = False (the legacy A + iφ combination) is not supported",
        ));
    }
    if obj.inputs.len() != 2 {
        return Err(walk.refuse(obj, "expected two inputs (amplitude, phase)"));
    }
    let amp = walk.decoder(k.layer(&obj.inputs[0])?, true)?;
    let phase = walk.decoder(k.layer(&obj.inputs[1])?, false)?;
    if amp.encoder_end != phase.encoder_end {
        return Err(walk.refuse(obj, "the two decoders do not start from the same encoder output"));
    }
    let (encoder, input) = walk.encoder(k.layer(&amp.encoder_end)?)?;
    let shape = input
        .config
        .get("batch_shape")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let dims: Vec<i64> = shape.iter().skip(1).filter_map(Value::as_i64).collect();
    let [n, n2, c] = dims[..] else {
        return Err(walk.refuse(input, &format!("input shape {shape:?} is not [None, N, N, C]")));
    };
    let gridsize = match c {
        1 => 1,
        4 => 2,
        _ => return Err(walk.refuse(input, &format!("{c} input channels: gridsize must be 1 or 2"))),
    };
    if n != n2 || !(n as u64).is_power_of_two() || n < 32 {
        return Err(walk.refuse(input, &format!("patch shape {n}×{n2} is not a square power of two")));
    }
    let expect_blocks = (n / 8).trailing_zeros() as usize;
    if encoder.len() != expect_blocks || amp.base.len() + 1 != expect_blocks || phase.base.len() + 1 != expect_blocks {
        return Err(walk.refuse(
            input,
            &format!(
                "{} encoder and {}/{} decoder blocks for N = {n}: PtychoPINN's CNN has {expect_blocks} and {}",
                encoder.len(),
                amp.base.len(),
                phase.base.len(),
                expect_blocks - 1
            ),
        ));
    }
    let first_filters = encoder[0].0.1.kernel.shape()[3];
    let nfs = first_filters << (expect_blocks - 1);
    if !nfs.is_multiple_of(128) || !(1..=8).contains(&(nfs / 128)) {
        return Err(walk.refuse(
            k.layer(&encoder[0].0.0)?,
            &format!(
                "{first_filters} filters: not n_filters_scale·{} for a scale in 1..=8",
                128 >> (expect_blocks - 1)
            ),
        ));
    }
    let config = ModelConfig {
        kind: ModelKind::Pinn,
        n: n as usize,
        gridsize,
        n_filters_scale: nfs / 128,
        amp_activation: amp.amp_activation.unwrap_or(AmpActivation::Sigmoid),
        phase_activation: PhaseActivation::PiTanh,
        border_branch: true,
        border_activation: BorderActivation::Swish,
        bottleneck_mixer: false,
        overlap_frame: OverlapFrame::Centroid,
        reassembly_norm: ReassemblyNorm::CentreSquare,
        max_offset_px: 0.0,
        // its log-scale variable is not tracked by Keras 3: never trained
        intensity_scale_trainable: false,
    };
    let padded_size = reassembly
        .config
        .get("padded_size")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let pad = (padded_size - n) / 2;
    if padded_size < n + 2 || (padded_size - n) % 2 != 0 {
        return Err(walk.refuse(
            reassembly,
            &format!("padded_size {padded_size}: expected N + an even margin of at least 2"),
        ));
    }
    let config = ModelConfig {
        max_offset_px: (pad - 1) as f64,
        ..config
    };
    config.validate()?;
    let mut weights = Vec::new();
    let mut push = |path: String, conv: &Conv| {
        weights.push((format!("{path}.weight"), conv.kernel_nchw()));
        weights.push((format!("{path}.bias"), tensor(&conv.bias)));
    };
    for (i, (a, b)) in encoder.iter().enumerate() {
        push(format!("encoder.block{}.conv_a", i + 1), &a.1);
        push(format!("encoder.block{}.conv_b", i + 1), &b.1);
    }
    for (head, d) in [("amplitude", &amp), ("phase", &phase)] {
        for (j, (a, b)) in d.base.iter().enumerate() {
            push(format!("{head}.base.block{}.conv_a", j + 1), &a.1);
            push(format!("{head}.base.block{}.conv_b", j + 1), &b.1);
        }
        push(format!("{head}.centre"), &d.centre.1);
        push(format!("{head}.border.conv_a"), &d.border.0.1);
        push(format!("{head}.border.conv_b"), &d.border.1.1);
        push(format!("{head}.border.out"), &d.border_out.1);
    }
    check_against_network(&config, &weights, k)?;
    Ok((config, weights, padded_size))
}

/// Every variable of our network (but the intensity scale) is given once,
/// with its shape.
fn check_against_network(cfg: &ModelConfig, weights: &[(String, Tensor)], k: &KerasModel) -> Result<()> {
    let probe = Tensor::ones([cfg.n as i64, cfg.n as i64], (tch::Kind::ComplexFloat, Device::Cpu));
    let net = Pinn::new(cfg, &probe, 1.0, 0, Device::Cpu)?;
    let ours = net.var_store().variables();
    for (name, t) in weights {
        let want = ours.get(name).ok_or_else(|| {
            Error::format(
                &k.label,
                format!("mapped a weight to `{name}`, which our network does not have"),
            )
        })?;
        if want.size() != t.size() {
            return Err(Error::format(
                &k.label,
                format!(
                    "`{name}`: PtychoPINN's weight is {:?}, ours {:?}",
                    t.size(),
                    want.size()
                ),
            ));
        }
    }
    for name in ours.keys() {
        if name != crate::model::pinn::LOG_SCALE_NAME && !weights.iter().any(|(n, _)| n == name) {
            return Err(Error::format(
                &k.label,
                format!("nothing in the Keras model maps to our `{name}`"),
            ));
        }
    }
    Ok(())
}

fn tensor(a: &ArrayD<f32>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let values: Vec<f32> = a.iter().copied().collect();
    Tensor::from_slice(&values).reshape(shape.as_slice())
}

/// A 3×3 convolution's variables.
#[derive(Debug)]
struct Conv {
    /// `[3, 3, in, out]`.
    kernel: ArrayD<f32>,
    bias: ArrayD<f32>,
}

impl Conv {
    fn kernel_nchw(&self) -> Tensor {
        tensor(&self.kernel).permute([3, 2, 0, 1]).contiguous()
    }
}

/// A convolution with the name of its Keras layer.
type Named = (String, Conv);

/// What a decoder branch maps onto.
#[derive(Debug)]
struct Decoder {
    base: Vec<(Named, Named)>,
    centre: Named,
    border: (Named, Named),
    border_out: Named,
    amp_activation: Option<AmpActivation>,
    /// The encoder's last pooling layer.
    encoder_end: String,
}

struct Walk<'a> {
    k: &'a KerasModel,
}

impl<'a> Walk<'a> {
    fn refuse(&self, l: &KerasLayer, why: &str) -> Error {
        Error::format(
            &self.k.label,
            format!("cannot import layer `{}` ({}): {why}", l.name, l.class_name),
        )
    }

    fn class(&self, l: &KerasLayer, class: &str) -> Result<()> {
        if l.class_name == class {
            Ok(())
        } else {
            Err(self.refuse(l, &format!("expected a {class} here (PtychoPINN's CNN)")))
        }
    }

    /// Input `i` of `l`.
    fn one_input(&self, l: &KerasLayer, i: usize) -> Result<&'a KerasLayer> {
        let name = l
            .inputs
            .get(i)
            .ok_or_else(|| self.refuse(l, &format!("has no input #{i}")))?;
        self.k.layer(name)
    }

    /// The single input of `l`, which must be of class `class`.
    fn input_of(&self, l: &KerasLayer, class: &str) -> Result<&'a KerasLayer> {
        if l.inputs.len() != 1 {
            return Err(self.refuse(l, &format!("expected one input, found {}", l.inputs.len())));
        }
        let up = self.k.layer(&l.inputs[0])?;
        self.class(up, class)?;
        Ok(up)
    }

    /// A 3×3 "same" convolution with bias and the given activation.
    fn conv(&self, l: &KerasLayer, activation: &str) -> Result<Named> {
        self.class(l, "Conv2D")?;
        let c = &l.config;
        let is = |key: &str, want: Value| c.get(key).is_none_or(|v| *v == want);
        let checks = [
            ("kernel_size", json!([3, 3])),
            ("strides", json!([1, 1])),
            ("padding", json!("same")),
            ("dilation_rate", json!([1, 1])),
            ("groups", json!(1)),
            ("use_bias", json!(true)),
            ("data_format", json!("channels_last")),
            ("activation", json!(activation)),
        ];
        for (key, want) in checks {
            if !is(key, want.clone()) {
                return Err(self.refuse(l, &format!("{key} is {}, expected {want}", c[key])));
            }
        }
        let vars = self.k.weights(&l.name);
        let [kernel, bias] = vars else {
            return Err(self.refuse(
                l,
                &format!("expected a kernel and a bias, found {} variables", vars.len()),
            ));
        };
        let ks = kernel.shape();
        if ks.len() != 4 || ks[..2] != [3, 3] || bias.shape() != [ks[3]] {
            return Err(self.refuse(
                l,
                &format!(
                    "kernel {:?} and bias {:?} are not [3, 3, in, out] and [out]",
                    ks,
                    bias.shape()
                ),
            ));
        }
        Ok((
            l.name.clone(),
            Conv {
                kernel: kernel.clone(),
                bias: bias.clone(),
            },
        ))
    }

    /// conv_a → conv_b (both ReLU) ending at `b`: `(a, b)` and what feeds `a`.
    fn double_conv(&self, b: &KerasLayer) -> Result<((Named, Named), &'a KerasLayer)> {
        let conv_b = self.conv(b, "relu")?;
        let a = self.input_of(b, "Conv2D")?;
        let conv_a = self.conv(a, "relu")?;
        if a.inputs.len() != 1 {
            return Err(self.refuse(a, "expected one input"));
        }
        Ok(((conv_a, conv_b), self.k.layer(&a.inputs[0])?))
    }

    fn pool_or_upsample(&self, l: &KerasLayer, class: &str) -> Result<()> {
        self.class(l, class)?;
        let key = if class == "MaxPooling2D" { "pool_size" } else { "size" };
        if l.config.get(key) != Some(&json!([2, 2])) {
            return Err(self.refuse(l, &format!("{key} must be [2, 2]")));
        }
        if class == "UpSampling2D" && l.config.get("interpolation").is_some_and(|v| v != "nearest") {
            return Err(self.refuse(l, "only nearest-neighbour upsampling is PtychoPINN's"));
        }
        Ok(())
    }

    /// The `GetItem` slice `[..., start:stop]` of the channels.
    fn channel_slice(&self, l: &KerasLayer) -> Result<(Option<i64>, Option<i64>)> {
        self.class(l, "GetItem")?;
        let slice = l
            .args
            .get(1)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|v| v.get("class_name").and_then(Value::as_str) == Some("__slice__"))
            })
            .ok_or_else(|| self.refuse(l, "expected a channel slice `[..., a:b]`"))?;
        let field = |k: &str| slice.pointer(&format!("/config/{k}")).and_then(Value::as_i64);
        Ok((field("start"), field("stop")))
    }

    /// One decoder, from the `Add` of its centre and border branches.
    fn decoder(&self, add: &KerasLayer, amplitude: bool) -> Result<Decoder> {
        self.class(add, "Add")?;
        let inputs: Vec<&KerasLayer> = add.inputs.iter().map(|n| self.k.layer(n)).collect::<Result<_>>()?;
        let padded = inputs
            .iter()
            .find(|l| l.class_name == "ZeroPadding2D")
            .ok_or_else(|| self.refuse(add, "no ZeroPadding2D input (the central branch)"))?;
        let multiply = inputs.iter().find(|l| l.class_name == "Multiply").ok_or_else(|| {
            self.refuse(
                add,
                "no Multiply input: models without the border branch (probe.big = False) are not supported",
            )
        })?;
        // central branch: conv → activation → zero pad N/4
        let act = self.input_of(padded, "ActivationLayer")?;
        let name = act.config.get("activation_name").and_then(Value::as_str).unwrap_or("");
        let scale = act.config.get("scale").and_then(Value::as_f64).unwrap_or(1.0);
        let amp_activation = if amplitude {
            Some(match name {
                "sigmoid" => AmpActivation::Sigmoid,
                "swish" => AmpActivation::Swish,
                "softplus" => AmpActivation::Softplus,
                "relu" => AmpActivation::Relu,
                other => return Err(self.refuse(act, &format!("amplitude activation `{other}` is not one of ours"))),
            })
        } else {
            if name != "tanh" || (scale - std::f64::consts::PI).abs() > 1e-6 {
                return Err(self.refuse(act, &format!("phase activation {scale}·{name}, expected π·tanh")));
            }
            None
        };
        let centre_layer = self.input_of(act, "Conv2D")?;
        let centre = self.conv(centre_layer, "linear")?;
        let centre_slice = self.input_of(centre_layer, "GetItem")?;
        if self.channel_slice(centre_slice)? != (None, Some(-4)) {
            return Err(self.refuse(centre_slice, "the central branch must take all but the last 4 channels"));
        }
        let up = self.input_of(centre_slice, "UpSampling2D")?;
        // border branch: slice → double conv → upsample → conv → swish, × border mask
        let swish = multiply
            .inputs
            .iter()
            .map(|n| self.k.layer(n))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .find(|l| l.class_name != "CenterMaskLayer")
            .ok_or_else(|| self.refuse(multiply, "no border branch input"))?;
        if !matches!(swish.class_name.as_str(), "Silu" | "Swish") {
            return Err(self.refuse(swish, "the border branch must end in swish"));
        }
        let out_layer = self.input_of(swish, "Conv2D")?;
        let border_out = self.conv(out_layer, "linear")?;
        let border_up = self.input_of(out_layer, "UpSampling2D")?;
        self.pool_or_upsample(border_up, "UpSampling2D")?;
        let b = self.input_of(border_up, "Conv2D")?;
        let (border, slice) = self.double_conv(b)?;
        if self.channel_slice(slice)? != (Some(-4), None) {
            return Err(self.refuse(slice, "the border branch must take the last 4 channels"));
        }
        if slice.inputs.first() != Some(&up.name) {
            return Err(self.refuse(slice, "the two branches must share the base's output"));
        }
        // base: (double conv → upsample)* back to the encoder's last pooling
        let (base, below) = self.blocks(
            up,
            "UpSampling2D",
            "MaxPooling2D",
            "an UpSampling2D or the encoder's MaxPooling2D",
        )?;
        Ok(Decoder {
            base,
            centre,
            border,
            border_out,
            amp_activation,
            encoder_end: below.name.clone(),
        })
    }

    /// The encoder's blocks from its last pooling layer, and the model input.
    fn encoder(&self, end: &'a KerasLayer) -> Result<(Vec<(Named, Named)>, &'a KerasLayer)> {
        let (blocks, below) = self.blocks(
            end,
            "MaxPooling2D",
            "IntensityScaler",
            "a MaxPooling2D or the IntensityScaler",
        )?;
        Ok((blocks, self.input_of(below, "InputLayer")?))
    }

    /// A chain of blocks, each a double convolution followed by a `step`
    /// layer (pooling or upsampling), walked back from its last `step` at
    /// `end` until the layer feeding the first block, which must be a
    /// `stop` (`expected` names both in the error otherwise): the blocks in
    /// input-to-output order, and that layer.
    fn blocks(
        &self,
        end: &'a KerasLayer,
        step: &str,
        stop: &str,
        expected: &str,
    ) -> Result<(Vec<(Named, Named)>, &'a KerasLayer)> {
        let mut blocks = Vec::new();
        let mut at = end;
        loop {
            self.pool_or_upsample(at, step)?;
            let b = self.input_of(at, "Conv2D")?;
            let (pair, below) = self.double_conv(b)?;
            blocks.push(pair);
            if below.class_name == step {
                at = below;
            } else if below.class_name == stop {
                blocks.reverse();
                return Ok((blocks, below));
            } else {
                return Err(self.refuse(below, &format!("expected {expected}")));
            }
        }
    }
}

/// The probe for an imported model: a dataset's `probeGuess` (first mode),
/// normalised as PtychoPINN normalises it when it sets its probe:
/// `P / (probe_scale · mean |P|)` over all N² pixels (no probe mask, its
/// default).
pub fn ptychopinn_probe(probe: &ndarray::Array2<Complex32>, probe_scale: f64) -> Result<ndarray::Array2<Complex32>> {
    if !(probe_scale.is_finite() && probe_scale > 0.0) {
        return Err(Error::value(
            "probe scale",
            format!("must be positive, got {probe_scale}"),
        ));
    }
    let mean = probe.iter().map(|p| p.norm() as f64).sum::<f64>() / probe.len().max(1) as f64;
    if !(mean.is_finite() && mean > 0.0) {
        return Err(Error::value("probe", "is zero everywhere (or not finite)"));
    }
    let k = (1.0 / (probe_scale * mean)) as f32;
    Ok(probe.mapv(|p| p * k))
}

/// Options of [`import_ptychopinn`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The dataset whose `probeGuess` the model's physics uses (PtychoPINN
    /// keeps its probe only in a pickle, which is never opened).
    pub probe_dataset: PathBuf,
    /// PtychoPINN's `probe_scale` the model was trained with.
    pub probe_scale: f64,
}

/// Reads a PtychoPINN bundle and writes one of ours to `out` (a bundle
/// path, usually `…/wts.h5.zip`).
pub fn import_ptychopinn(source: &Path, opts: &ImportOptions, out: &Path) -> Result<PathBuf> {
    let imported = read_ptychopinn_bundle(source)?;
    let ds = crate::data::read_dataset(&opts.probe_dataset)?;
    if ds.patch_size() != imported.config.n {
        return Err(Error::value(
            "probe dataset",
            format!(
                "{} has N = {}, the model N = {}",
                opts.probe_dataset.display(),
                ds.patch_size(),
                imported.config.n
            ),
        ));
    }
    let probe = ptychopinn_probe(&ds.probe, opts.probe_scale)?;
    let model = pinn_from(&imported, &probe)?;
    let input_scale = crate::model::input_scale(ds.diffraction.view())?;
    let source_info = json!({
        "tool": "PtychoPINN",
        "backend": "tensorflow",
        "file": source.file_name().map(|f| f.to_string_lossy().into_owned()),
        "sha256": imported.sha256,
        "keras_version": imported.keras_version,
        "padded_size": imported.padded_size,
        "read": [members::KERAS, members::SCALE],
        "not_read": "every pickled member (manifest.dill, params.dill, custom_objects.dill)",
        "probe": {
            "dataset": opts.probe_dataset.file_name().map(|f| f.to_string_lossy().into_owned()),
            "probe_scale": opts.probe_scale,
            "normalisation": "P / (probe_scale · mean|P|)",
        },
        "conventions": "kernels [kh, kw, in, out] → [out, in, kh, kw]; offsets are member − centroid here, \
                        −(member − centroid) in PtychoPINN; reassembly divides by the central squares' coverage + 0.001",
    });
    write_bundle(
        &BundleParts {
            model: &model,
            probe: &probe.into_dyn(),
            intensity_scale: imported.intensity_scale,
            input_scale,
            train_config: json!({ "imported": "PtychoPINN (no training here)" }),
            data: json!({ "intensity_scale": imported.intensity_scale }),
            history_csv: String::new(),
            source: Some(source_info),
        },
        out,
    )
}

/// Our network holding the imported weights.
pub fn pinn_from(imported: &PtychoPinnModel, probe: &ndarray::Array2<Complex32>) -> Result<TrainedModel> {
    let probe = crate::array::c64_to_tensor(&probe.clone().into_dyn(), Device::Cpu);
    let mut net = Pinn::new(&imported.config, &probe, imported.intensity_scale, 0, Device::Cpu)?;
    let vars = net.var_store_mut().variables();
    tch::no_grad(|| {
        for (name, t) in &imported.weights {
            // keeps the variable's own memory layout (channels-last or not)
            vars[name].shallow_clone().copy_(t);
        }
    });
    Ok(TrainedModel::Pinn(Box::new(net)))
}
