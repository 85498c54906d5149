//! Reading `wts.h5.zip`: the manifest alone rebuilds both models; every
//! member's checksum is verified first. Nothing in a bundle is executed (the
//! TorchScript member is for other consumers and is not loaded).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};
use num_complex::Complex32;
use tch::{Device, Tensor};

use super::manifest::{BUNDLE_FORMAT, BUNDLE_VERSION, BundleManifestV1, members};
use super::save::sha256_hex;
use crate::array::c64_to_tensor;
use crate::data::npy::{self, NpyData};
use crate::error::{Error, Result};
use crate::model::{ModelConfig, ModelKind, Pinn, Supervised};
use crate::train::TrainedModel;

/// A loaded bundle: the manifest, the model and its probe.
#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    pub manifest: BundleManifestV1,
    pub model: TrainedModel,
    /// The probe's first (strongest) mode `[N, N]`.
    pub probe: Array2<Complex32>,
    /// Every mode the model's physics layer uses `[K, N, N]` (K = 1 for a
    /// coherent probe).
    pub probe_modes: Array3<Complex32>,
    /// Member sizes in bytes.
    pub sizes: Vec<(String, u64)>,
}

fn read_members(path: &Path) -> Result<HashMap<String, Vec<u8>>> {
    Ok(crate::data::archive::read_members(path, "bundle", |_| true)?
        .into_iter()
        .collect())
}

impl Bundle {
    /// Loads a bundle onto `device` (CUDA when present, with `default_device()`).
    pub fn load(path: &Path, device: Device) -> Result<Bundle> {
        let files = read_members(path)?;
        let Some(manifest_bytes) = files.get(members::MANIFEST) else {
            if files.keys().any(|k| k.ends_with(members::PTYCHOPINN_MANIFEST)) {
                return Err(Error::format(
                    path,
                    "this is a PtychoPINN bundle (TensorFlow or PyTorch, pickled `manifest.dill`); \
                     ptycho-workbench loads only its own bundles (`manifest.json`, backend \"tch\"): \
                     convert a TensorFlow one with `ptycho bundle import-ptychopinn FILE --probe DATA.npz --out OUT` \
                     (nothing pickled is opened), or retrain with `ptycho train`",
                ));
            }
            return Err(Error::format(path, format!("missing member `{}`", members::MANIFEST)));
        };
        let manifest: BundleManifestV1 = serde_json::from_slice(manifest_bytes)
            .map_err(|e| Error::format(path, format!("unreadable manifest.json: {e}")))?;
        if manifest.format != BUNDLE_FORMAT {
            return Err(Error::format(
                path,
                format!("unknown bundle format `{}`", manifest.format),
            ));
        }
        if manifest.format_version != BUNDLE_VERSION {
            return Err(Error::format(
                path,
                format!(
                    "unknown bundle format version {} (this build reads version {BUNDLE_VERSION})",
                    manifest.format_version
                ),
            ));
        }
        for (name, want) in &manifest.files {
            let bytes = files
                .get(name)
                .ok_or_else(|| Error::format(path, format!("missing member `{name}`")))?;
            let got = sha256_hex(bytes);
            if &got != want {
                return Err(Error::format(
                    path,
                    format!("checksum mismatch for `{name}` (manifest {want}, file {got}): the bundle is corrupt"),
                ));
            }
        }
        for required in [members::PROBE, members::INFERENCE_WEIGHTS] {
            if !manifest.files.contains_key(required) {
                return Err(Error::format(path, format!("the manifest does not list `{required}`")));
            }
        }
        let cfg: ModelConfig = serde_json::from_value(manifest.model_config.clone())
            .map_err(|e| Error::format(path, format!("model_config: {e}")))?;
        cfg.validate().map_err(|e| Error::format(path, e.to_string()))?;
        let probe_modes = read_probe(&files[members::PROBE], path, cfg.n)?;
        let probe = probe_modes.index_axis(ndarray::Axis(0), 0).to_owned();
        let model = match cfg.kind {
            ModelKind::Pinn => TrainedModel::Pinn(Box::new(Pinn::new(
                &cfg,
                &c64_to_tensor(&probe_modes, device),
                manifest.intensity_scale,
                0,
                device,
            )?)),
            ModelKind::Supervised => TrainedModel::Supervised(Box::new(Supervised::new(&cfg, 0, device)?)),
        };
        load_weights(&model, &files[members::INFERENCE_WEIGHTS], path)?;
        let mut sizes: Vec<(String, u64)> = files.iter().map(|(k, v)| (k.clone(), v.len() as u64)).collect();
        sizes.sort();
        Ok(Bundle {
            path: path.to_path_buf(),
            manifest,
            model,
            probe,
            probe_modes,
            sizes,
        })
    }

    /// The model's configuration.
    /// The bundled TorchScript trace of `diffraction_to_obj`, read again
    /// from the file and checked against the manifest's checksum. Loading
    /// never executes it; this is for callers who want to
    /// (`tch::CModule::load_data`).
    pub fn torchscript_bytes(&self) -> Result<Vec<u8>> {
        let name = members::TORCHSCRIPT;
        let bytes = crate::data::archive::read_members(&self.path, "bundle", |n| n == name)?
            .into_iter()
            .next()
            .map(|(_, b)| b)
            .ok_or_else(|| Error::format(&self.path, format!("missing member `{name}`")))?;
        match self.manifest.files.get(name) {
            Some(expected) if *expected == crate::bundle::save::sha256_hex(&bytes) => Ok(bytes),
            _ => Err(Error::format(&self.path, format!("checksum mismatch for `{name}`"))),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }
}

/// The bundle's probe as `[K, N, N]`: stored `[N, N]` (one mode) or
/// `[K, N, N]` (K incoherent modes).
fn read_probe(bytes: &[u8], path: &Path, n: usize) -> Result<Array3<Complex32>> {
    let a = npy::decode(bytes, path, members::PROBE)?;
    let modes = match a.shape.as_slice() {
        [h, w] if *h == n && *w == n => Some(1),
        [k, h, w] if *k >= 1 && *h == n && *w == n => Some(*k),
        _ => None,
    };
    match (a.data, modes) {
        (NpyData::C64(v), Some(k)) => Ok(Array3::from_shape_vec((k, n, n), v).expect("sizes agree")),
        (other, _) => Err(Error::format(
            path,
            format!(
                "`{}` must be complex64 [{n}, {n}] or [K, {n}, {n}], got {} {:?}",
                members::PROBE,
                other.dtype_name(),
                a.shape
            ),
        )),
    }
}

fn load_weights(model: &TrainedModel, bytes: &[u8], path: &Path) -> Result<()> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("unreadable weights: {e:?}")))?;
    let lookup = |name: &str| st.tensor(name).ok().and_then(|view| Tensor::try_from(view).ok());
    crate::model::init::load_variables(model.var_store(), lookup, path, "bundle")
}
