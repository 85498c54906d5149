//! `manifest.json` of a `wts.h5.zip` bundle: its own versioned type.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `format` of our bundles.
pub const BUNDLE_FORMAT: &str = "ptycho-workbench/bundle";
/// The version this build writes and reads.
pub const BUNDLE_VERSION: u32 = 1;
/// The libtorch version `tch 0.24` links.
pub const LIBTORCH_VERSION: &str = "2.11.0";
/// `tch` crate version.
pub const TCH_VERSION: &str = "0.24";

/// Member names.
pub mod members {
    pub const MANIFEST: &str = "manifest.json";
    pub const PROBE: &str = "probe.npy";
    pub const AUTOENCODER_WEIGHTS: &str = "autoencoder/weights.safetensors";
    pub const INFERENCE_WEIGHTS: &str = "diffraction_to_obj/weights.safetensors";
    pub const TORCHSCRIPT: &str = "diffraction_to_obj/model.ts";
    pub const HISTORY: &str = "history.csv";
    /// What PtychoPINN's TensorFlow and PyTorch bundles hold instead.
    pub const PTYCHOPINN_MANIFEST: &str = "manifest.dill";
}

/// The file name every bundle has (kept from PtychoPINN and Ptychodus).
pub const BUNDLE_FILE: &str = "wts.h5.zip";

/// How to call `diffraction_to_obj/model.ts` (for consumers in Python).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchScriptInfo {
    pub file: String,
    pub inputs: Vec<String>,
    pub output: String,
}

/// `manifest.json`, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifestV1 {
    pub format: String,
    pub format_version: u32,
    pub models: Vec<String>,
    pub backend: String,
    pub crate_version: String,
    pub tch_version: String,
    pub libtorch_version: String,
    /// UTC, RFC 3339.
    pub created: String,
    /// `s` with counts = `(s·X)²` (the trained value for a PINN).
    pub intensity_scale: f64,
    /// The network input is `X · input_scale` (per-dataset normalisation; the
    /// value of the training data, for reference).
    pub input_scale: f64,
    pub model_config: serde_json::Value,
    pub train_config: serde_json::Value,
    /// Summary of the training data.
    pub data: serde_json::Value,
    pub torchscript: TorchScriptInfo,
    /// sha256 (hex) of every other member.
    pub files: BTreeMap<String, String>,
    /// Where the weights came from when they were not trained here (an
    /// imported PtychoPINN bundle: its file, checksum and what the import
    /// converted). Absent for bundles trained here and in older bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
}

/// `seconds` since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ`.
pub fn utc_rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // civil date from days since 1970-01-01 (proleptic Gregorian)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
