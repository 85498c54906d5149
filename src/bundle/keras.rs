//! Reading a Keras 3 `.keras` model (a zip of `config.json`,
//! `metadata.json` and `model.weights.h5`) without executing anything: the
//! functional graph comes from the JSON, the weights from the HDF5 file.
//! Custom layers are never instantiated; they are only names and configs.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use serde_json::Value;

use crate::data::archive::read_members_in;
use crate::error::{Error, Result};

/// One layer (or operation) of a functional model.
#[derive(Debug, Clone)]
pub struct KerasLayer {
    pub name: String,
    pub class_name: String,
    /// The layer's own `config` object.
    pub config: Value,
    /// Names of the layers whose outputs it takes, in argument order.
    pub inputs: Vec<String>,
    /// The call's arguments as stored (a `GetItem`'s slice is among them).
    pub args: Value,
}

/// A functional Keras model: its layers and their weights.
#[derive(Debug)]
pub struct KerasModel {
    /// `label` in errors: `file!/member`.
    pub label: PathBuf,
    pub keras_version: Option<String>,
    layers: Vec<KerasLayer>,
    index: HashMap<String, usize>,
    /// Layer name → its variables in order (a convolution: kernel, bias).
    weights: HashMap<String, Vec<ArrayD<f32>>>,
}

impl KerasModel {
    /// Reads a `.keras` archive held in memory; `label` names it in errors.
    pub fn read(bytes: &[u8], label: &Path) -> Result<KerasModel> {
        let members = read_members_in(bytes, label, "Keras model", |n| {
            matches!(n, "config.json" | "metadata.json" | "model.weights.h5")
        })?;
        let member = |name: &str| {
            members
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.as_slice())
                .ok_or_else(|| Error::format(label, format!("the Keras model has no `{name}`")))
        };
        let config: Value = serde_json::from_slice(member("config.json")?)
            .map_err(|e| Error::format(label, format!("unreadable config.json: {e}")))?;
        let keras_version = member("metadata.json")
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|m| m.get("keras_version").and_then(Value::as_str).map(str::to_string));
        let layers = parse_layers(&config, label)?;
        let index = layers.iter().enumerate().map(|(i, l)| (l.name.clone(), i)).collect();
        let weights = read_weights(member("model.weights.h5")?, label)?;
        Ok(KerasModel {
            label: label.to_path_buf(),
            keras_version,
            layers,
            index,
            weights,
        })
    }

    pub fn layers(&self) -> &[KerasLayer] {
        &self.layers
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Result<&KerasLayer> {
        self.index
            .get(name)
            .map(|&i| &self.layers[i])
            .ok_or_else(|| Error::format(&self.label, format!("the model has no layer `{name}`")))
    }

    /// The variables of layer `name` (empty for a layer without any).
    pub fn weights(&self, name: &str) -> &[ArrayD<f32>] {
        self.weights.get(name).map_or(&[], Vec::as_slice)
    }
}

/// The functional config's layers with their inputs.
fn parse_layers(config: &Value, label: &Path) -> Result<Vec<KerasLayer>> {
    let bad = |why: &str| Error::format(label, format!("config.json: {why}"));
    let class = config.get("class_name").and_then(Value::as_str).unwrap_or("");
    if !matches!(class, "Functional" | "Model") {
        return Err(bad(&format!(
            "the model is a `{class}`, not a functional model (only functional models' graphs can be read)"
        )));
    }
    let list = config
        .pointer("/config/layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `config.layers` list"))?;
    list.iter()
        .map(|l| {
            let name = l
                .get("name")
                .or_else(|| l.pointer("/config/name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a layer without a name"))?
                .to_string();
            let class_name = l
                .get("class_name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("layer `{name}` has no class_name")))?
                .to_string();
            let nodes = l
                .get("inbound_nodes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if nodes.len() > 1 {
                return Err(bad(&format!(
                    "layer `{name}` is called {} times (shared layers are not supported)",
                    nodes.len()
                )));
            }
            let args = nodes
                .first()
                .and_then(|n| n.get("args"))
                .cloned()
                .unwrap_or(Value::Null);
            let mut inputs = Vec::new();
            collect_history(&args, &mut inputs);
            Ok(KerasLayer {
                name,
                class_name,
                config: l.get("config").cloned().unwrap_or(Value::Null),
                inputs,
                args,
            })
        })
        .collect()
}

/// The layer names of every Keras tensor in `v`, in order.
fn collect_history(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_history(i, out)),
        Value::Object(map) => {
            if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") {
                if let Some(name) = v.pointer("/config/keras_history/0").and_then(Value::as_str) {
                    out.push(name.to_string());
                }
            } else {
                map.values().for_each(|i| collect_history(i, out));
            }
        }
        _ => {}
    }
}

/// `model.weights.h5`: `layers/<group>/vars/<i>` datasets, each group's
/// `vars` carrying the layer's name as the attribute `name` (the group
/// names are Keras's own and need not match the layers').
fn read_weights(bytes: &[u8], label: &Path) -> Result<HashMap<String, Vec<ArrayD<f32>>>> {
    let h5 = crate::data::h5util::open_bytes(bytes, "model.weights.h5", label)?;
    let h5err = |e: hdf5::Error| Error::format(label, format!("model.weights.h5: {e}"));
    let layers = h5
        .file
        .group("layers")
        .map_err(|_| Error::format(label, "model.weights.h5 has no `layers` group"))?;
    let mut out = HashMap::new();
    for group_name in layers.member_names().map_err(h5err)? {
        let Ok(vars) = layers.group(&format!("{group_name}/vars")) else {
            continue;
        };
        let name = crate::data::h5util::read_attr_string(&vars, "name", &h5.path)?.unwrap_or(group_name.clone());
        let mut keys: Vec<(usize, String)> = vars
            .member_names()
            .map_err(h5err)?
            .into_iter()
            .filter_map(|k| k.parse::<usize>().ok().map(|i| (i, k)))
            .collect();
        keys.sort();
        if keys.iter().enumerate().any(|(i, (k, _))| i != *k) {
            return Err(Error::format(
                label,
                format!("model.weights.h5: layer `{name}` has variables numbered {keys:?}, not 0, 1, …"),
            ));
        }
        let values = keys
            .iter()
            .map(|(_, k)| {
                let ds = vars.dataset(k).map_err(h5err)?;
                ds.read_dyn::<f32>()
                    .map_err(|e| Error::format(label, format!("model.weights.h5: layer `{name}` variable {k}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if !values.is_empty() && out.insert(name.clone(), values).is_some() {
            return Err(Error::format(
                label,
                format!("model.weights.h5: two weight groups name the layer `{name}`"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_come_from_keras_tensors_in_argument_order() {
        let args: Value = serde_json::json!([[
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["add", 0, 0]}},
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["add_1", 0, 0]}}
        ], [{"class_name": "__ellipsis__", "config": {}}]]);
        let mut out = Vec::new();
        collect_history(&args, &mut out);
        assert_eq!(out, ["add", "add_1"]);
    }
}
