//! Writing `wts.h5.zip`: weights (safetensors), probe, history, TorchScript,
//! and a manifest with the checksum of every member. Atomic: a failure
//! leaves the previous bundle, if any, untouched.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use super::manifest::{self, BundleManifestV1, TorchScriptInfo, members};
use crate::array::tensor_to_c64;
use crate::data::Dataset;
use crate::data::atomic::write_atomic;
use crate::data::npy;
use crate::error::{Error, Result};
use crate::model::{ModelConfig, Pinn, Supervised};
use crate::train::{TrainConfig, TrainOutcome, TrainedModel};

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn safetensors_bytes(vs: &tch::nn::VarStore) -> Result<Vec<u8>> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        // NCHW order in the file whatever the layout in memory
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("weights.safetensors");
    Tensor::write_safetensors(&vars, &path)?;
    std::fs::read(&path).map_err(|e| Error::io(&path, e))
}

/// A CPU copy of the model with frozen weights (for tracing).
fn cpu_copy(model: &TrainedModel) -> Result<TrainedModel> {
    let cfg: &ModelConfig = model.config();
    let mut copy = match model {
        TrainedModel::Pinn(m) => TrainedModel::Pinn(Box::new(Pinn::new(
            cfg,
            &m.probe().to_device(Device::Cpu),
            m.intensity_scale(),
            0,
            Device::Cpu,
        )?)),
        TrainedModel::Supervised(_) => TrainedModel::Supervised(Box::new(Supervised::new(cfg, 0, Device::Cpu)?)),
    };
    let vs = match &mut copy {
        TrainedModel::Pinn(m) => m.var_store_mut(),
        TrainedModel::Supervised(m) => m.var_store_mut(),
    };
    vs.copy(model.var_store())?;
    vs.freeze();
    Ok(copy)
}

/// TorchScript of `diffraction_to_obj`, traced on CPU at batch 2 (valid for
/// any batch size). Inputs `(x [B, C, N, N] f32, offsets [B, C, 2] f32)`,
/// output `[B, N, N]` complex64.
pub fn torchscript_bytes(model: &TrainedModel) -> Result<Vec<u8>> {
    let copy = cpu_copy(model)?;
    let cfg = copy.config();
    let (c, n) = (cfg.channels() as i64, cfg.n as i64);
    let x = Tensor::rand([2, c, n, n], (Kind::Float, Device::Cpu));
    let offsets = Tensor::zeros([2, c, 2], (Kind::Float, Device::Cpu));
    let mut failure = None;
    let module = tch::CModule::create_by_tracing("DiffractionToObj", "forward", &[x, offsets], &mut |inputs| {
        let out = match &copy {
            TrainedModel::Pinn(m) => m.diffraction_to_obj(&inputs[0], &inputs[1]),
            TrainedModel::Supervised(m) => m.diffraction_to_obj(&inputs[0]),
        };
        match out {
            Ok(t) => vec![t],
            Err(e) => {
                failure = Some(e);
                vec![inputs[0].shallow_clone()]
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let path = dir.path().join("model.ts");
    module.save(&path)?;
    std::fs::read(&path).map_err(|e| Error::io(&path, e))
}

/// Everything a bundle records besides the weights.
#[derive(Debug, Clone)]
pub struct BundleInputs<'a> {
    pub outcome: &'a TrainOutcome,
    pub train_config: &'a TrainConfig,
    pub dataset: &'a Dataset,
}

/// Writes `dir/wts.h5.zip` and returns its path.
pub fn save_bundle(inputs: &BundleInputs<'_>, dir: &Path) -> Result<PathBuf> {
    let outcome = inputs.outcome;
    let model = &outcome.model;
    let ds = inputs.dataset;
    // the probe the model was trained with: `[N, N]`, or `[K, N, N]` for K
    // incoherent modes (a supervised model keeps the dataset's first mode)
    let probe = match model {
        TrainedModel::Pinn(m) => tensor_to_c64(&m.probe().to_device(Device::Cpu))?,
        TrainedModel::Supervised(_) => ds.probe.clone().into_dyn(),
    };
    let intensity_scale = match model {
        TrainedModel::Pinn(m) => m.intensity_scale(),
        TrainedModel::Supervised(_) => ds.metadata.intensity_scale.unwrap_or(1.0),
    };
    write_bundle(
        &BundleParts {
            model,
            probe: &probe,
            intensity_scale,
            input_scale: outcome.input_scale,
            train_config: serde_json::to_value(inputs.train_config.resolved_for(model.config()))
                .expect("config serialises"),
            data: serde_json::to_value(ds.summary()).expect("summary serialises"),
            history_csv: outcome.history.to_csv(),
            source: None,
        },
        &dir.join(manifest::BUNDLE_FILE),
    )
}

/// Everything a bundle holds, however the model came to be (trained here,
/// or imported from another tool).
#[derive(Debug)]
pub struct BundleParts<'a> {
    pub model: &'a TrainedModel,
    /// `[N, N]` or `[K, N, N]`.
    pub probe: &'a ndarray::ArrayD<num_complex::Complex32>,
    pub intensity_scale: f64,
    pub input_scale: f64,
    pub train_config: serde_json::Value,
    pub data: serde_json::Value,
    pub history_csv: String,
    /// Where the weights came from when not trained here (the manifest's `source`).
    pub source: Option<serde_json::Value>,
}

/// Writes the bundle `path` (usually `…/wts.h5.zip`) from its parts,
/// atomically, and returns the path.
pub fn write_bundle(parts: &BundleParts<'_>, path: &Path) -> Result<PathBuf> {
    let model = parts.model;
    let probe = parts.probe;
    let probe_values: Vec<_> = probe.iter().copied().collect();
    let weights = safetensors_bytes(model.var_store())?;
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (members::PROBE, npy::encode(probe.shape(), &probe_values)),
        (members::AUTOENCODER_WEIGHTS, weights.clone()),
        (members::INFERENCE_WEIGHTS, weights),
        (members::TORCHSCRIPT, torchscript_bytes(model)?),
        (members::HISTORY, parts.history_csv.clone().into_bytes()),
    ];
    let checksums: BTreeMap<String, String> = files.iter().map(|(n, b)| (n.to_string(), sha256_hex(b))).collect();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let manifest = BundleManifestV1 {
        format: manifest::BUNDLE_FORMAT.into(),
        format_version: manifest::BUNDLE_VERSION,
        models: vec!["autoencoder".into(), "diffraction_to_obj".into()],
        backend: "tch".into(),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        tch_version: manifest::TCH_VERSION.into(),
        libtorch_version: manifest::LIBTORCH_VERSION.into(),
        created: manifest::utc_rfc3339(created),
        intensity_scale: parts.intensity_scale,
        input_scale: parts.input_scale,
        model_config: serde_json::to_value(model.config()).expect("config serialises"),
        train_config: parts.train_config.clone(),
        data: parts.data.clone(),
        torchscript: TorchScriptInfo {
            file: members::TORCHSCRIPT.into(),
            inputs: vec![
                "x: float32 [B, C, N, N], diffraction amplitude × input_scale (per-dataset normalisation)".into(),
                "offsets: float32 [B, C, 2], (dx, dy) of each member − group centroid, object pixels".into(),
            ],
            output: "complex64 [B, N, N], the object patch at each group centroid".into(),
        },
        files: checksums,
        source: parts.source.clone(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    files.insert(0, (members::MANIFEST, manifest_bytes));
    let path = path.to_path_buf();
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = ::zip::ZipWriter::new(&mut buffer);
        let options = ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored)
            .last_modified_time(::zip::DateTime::default())
            .unix_permissions(0o644);
        for (name, bytes) in &files {
            zip.start_file(*name, options)
                .map_err(|e| Error::format(&path, e.to_string()))?;
            zip.write_all(bytes).map_err(|e| Error::io(&path, e))?;
        }
        zip.finish().map_err(|e| Error::format(&path, e.to_string()))?;
    }
    write_atomic(&path, |w| {
        w.write_all(buffer.get_ref()).map_err(|e| Error::io(&path, e))
    })?;
    Ok(path)
}
