//! Training end to end on small simulated data: the loss goes down (PINN gs1,
//! gs2, supervised), a resumed run equals an uninterrupted one, NaN stops.
mod common;

use common::*;
use ptycho_workbench::data::Dataset;
use ptycho_workbench::model::{ModelConfig, ModelKind};
use ptycho_workbench::simulate::simulate_on;
use ptycho_workbench::train::{LrSchedule, Precision, SilentObserver, TrainConfig, TrainedModel, Trainer};
use tch::Device;

fn dataset() -> Dataset {
    let mut cfg = small_config();
    cfg.dose_photons = Some(1e5);
    cfg.scan.spacing_px = 4.0;
    simulate_on(&cfg, Device::Cpu).unwrap()
}

fn tiny(epochs: usize, n_groups: usize) -> TrainConfig {
    let mut t = TrainConfig::quick();
    t.epochs = epochs;
    t.grouping.n_groups = Some(n_groups);
    t.early_stopping_patience = 100;
    t.seed = 5;
    t
}

fn model(gridsize: usize, kind: ModelKind) -> ModelConfig {
    ModelConfig {
        n: 32,
        gridsize,
        kind,
        n_filters_scale: 1,
        max_offset_px: 8.0,
        ..ModelConfig::default()
    }
}

#[test]
fn training_lowers_the_loss_for_every_model() {
    init();
    let ds = dataset();
    for (g, kind) in [(1, ModelKind::Pinn), (2, ModelKind::Pinn), (1, ModelKind::Supervised)] {
        let trainer = Trainer::new(model(g, kind), tiny(4, 96), Device::Cpu);
        let out = trainer.fit(&ds, &mut SilentObserver).unwrap();
        let h = &out.history.epochs;
        assert_eq!(h.len(), 4);
        assert!(
            h[3].train_loss < h[0].train_loss,
            "{kind:?} gs{g}: loss did not fall: {:?}",
            h.iter().map(|r| r.train_loss).collect::<Vec<_>>()
        );
        assert!(h.iter().all(|r| r.val_loss.is_some_and(f64::is_finite)));
        // a few healthy steps leave the phase in π·tanh's linear range
        match kind {
            ModelKind::Pinn => assert!(
                out.phase_saturation.is_some_and(|f| f < 0.05),
                "{:?}",
                out.phase_saturation
            ),
            ModelKind::Supervised => assert_eq!(out.phase_saturation, None),
        }
    }
}

#[test]
fn without_a_validation_split_training_runs_and_reports_no_validation_loss() {
    init();
    let ds = dataset();
    let mut train = tiny(2, 40);
    train.validation_fraction = 0.0;
    // 40 groups in batches of 16: the last batch of each epoch is a short one
    train.batch_size = 16;
    let out = Trainer::new(model(1, ModelKind::Pinn), train, Device::Cpu)
        .fit(&ds, &mut SilentObserver)
        .unwrap();
    let h = &out.history.epochs;
    assert_eq!(h.len(), 2);
    assert!(h.iter().all(|r| r.val_loss.is_none() && r.train_loss.is_finite()));
}

fn weights(m: &TrainedModel) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = m
        .var_store()
        .variables()
        .into_iter()
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    init();
    let ds = dataset();
    let dir = tempfile::tempdir().unwrap();
    // the stop is a 2-epoch run, so the schedule must not depend on the
    // planned length: reduce-on-plateau (a cosine's exact resume after a
    // kill is covered by the CLI test in reliability.rs)
    let plateau = |epochs| TrainConfig {
        lr_schedule: LrSchedule::Plateau,
        ..tiny(epochs, 64)
    };
    let whole = Trainer::new(model(2, ModelKind::Pinn), plateau(4), Device::Cpu)
        .fit(&ds, &mut SilentObserver)
        .unwrap();

    let mut first = Trainer::new(model(2, ModelKind::Pinn), plateau(2), Device::Cpu);
    first.checkpoint_dir = Some(dir.path().to_path_buf());
    first.fit(&ds, &mut SilentObserver).unwrap();
    let mut rest = Trainer::new(model(2, ModelKind::Pinn), plateau(4), Device::Cpu);
    rest.checkpoint_dir = Some(dir.path().to_path_buf());
    rest.resume = true;
    let resumed = rest.fit(&ds, &mut SilentObserver).unwrap();

    let losses = |o: &ptycho_workbench::train::TrainOutcome| {
        o.history
            .epochs
            .iter()
            .map(|r| (r.train_loss, r.val_loss, r.learning_rate))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&resumed), losses(&whole));
    assert!(
        weights(&resumed.model) == weights(&whole.model),
        "weights differ after resume"
    );
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_the_checkpoint() {
    init();
    let ds = dataset();
    let dir = tempfile::tempdir().unwrap();
    let mut ok = Trainer::new(model(1, ModelKind::Pinn), tiny(1, 32), Device::Cpu);
    ok.checkpoint_dir = Some(dir.path().to_path_buf());
    ok.fit(&ds, &mut SilentObserver).unwrap();
    let path = dir.path().join(ptycho_workbench::train::trainer::CHECKPOINT_FILE);
    let before = std::fs::read(&path).unwrap();

    let mut bad = tiny(3, 32);
    bad.learning_rate = 1e30;
    bad.min_learning_rate = 1e30;
    let mut diverging = Trainer::new(model(1, ModelKind::Pinn), bad, Device::Cpu);
    diverging.checkpoint_dir = Some(dir.path().to_path_buf());
    let e = diverging.fit(&ds, &mut SilentObserver).unwrap_err().to_string();
    assert!(e.contains("loss became") && e.contains("checkpoint"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the last good checkpoint was overwritten"
    );
}

#[test]
fn bad_training_input_is_refused_by_name() {
    init();
    let mut ds = dataset();
    let e = Trainer::new(
        ModelConfig {
            n: 64,
            ..model(1, ModelKind::Pinn)
        },
        tiny(1, 16),
        Device::Cpu,
    )
    .fit(&ds, &mut SilentObserver)
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.n"), "{e}");
    ds.metadata.intensity_scale = None;
    let e = Trainer::new(model(1, ModelKind::Pinn), tiny(1, 16), Device::Cpu)
        .fit(&ds, &mut SilentObserver)
        .unwrap_err();
    assert!(e.to_string().contains("intensity scale"), "{e}");
}

#[test]
fn history_as_a_dataframe_and_csv() {
    use ptycho_workbench::train::{EpochRecord, History};
    let h = History {
        epochs: vec![
            EpochRecord {
                epoch: 1,
                train_loss: 2.5,
                val_loss: Some(3.0),
                learning_rate: 1e-3,
                seconds: 1.5,
            },
            EpochRecord {
                epoch: 2,
                train_loss: 1.5,
                val_loss: None,
                learning_rate: 5e-4,
                seconds: 1.25,
            },
        ],
    };
    let table = h.to_table().unwrap();
    assert_eq!((table.height(), table.width()), (2, 5));
    assert_eq!(table.column("train_loss").unwrap().f64(1), Some(1.5));
    let val = table.column("val_loss").unwrap().values();
    assert_eq!((0..2).filter(|&i| val.is_null(i)).count(), 1);
    let csv = h.to_csv();
    assert_eq!(
        csv.lines().next().unwrap(),
        "epoch,train_loss,val_loss,learning_rate,seconds"
    );
    assert_eq!(csv.lines().nth(2).unwrap(), "2,1.500000000e0,,5.000000e-4,1.250");
}

#[test]
fn fp16_training_needs_a_cuda_device_and_the_precision_is_saved() {
    init();
    let mut t = tiny(1, 16);
    t.precision = Precision::Fp16;
    let err = Trainer::new(model(1, ModelKind::Pinn), t.clone(), Device::Cpu)
        .fit(&dataset(), &mut SilentObserver)
        .unwrap_err();
    assert!(err.to_string().contains("fp16 autocast needs a CUDA device"), "{err}");
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["precision"], "fp16");
    let back: TrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back.precision, Precision::Fp16);
    // a config saved before the field existed reads as fp32
    let mut old = serde_json::to_value(TrainConfig::quick()).unwrap();
    old.as_object_mut().unwrap().remove("precision");
    assert_eq!(
        serde_json::from_value::<TrainConfig>(old).unwrap().precision,
        Precision::Fp32
    );
}

/// Each epoch's training loss of `model` trained on the CPU with `train` in
/// `precision`.
fn train_losses(ds: &Dataset, model: ModelConfig, mut train: TrainConfig, precision: Precision) -> Vec<f64> {
    train.precision = precision;
    let out = Trainer::new(model, train, Device::Cpu)
        .fit(ds, &mut SilentObserver)
        .unwrap();
    out.history.epochs.iter().map(|e| e.train_loss).collect()
}

#[test]
fn strict_fp32_is_saved_by_name_and_on_the_cpu_trains_as_fp32() {
    init();
    let ds = dataset();
    let fit = |precision| train_losses(&ds, model(1, ModelKind::Pinn), tiny(2, 16), precision);
    // TF32 concerns cuDNN only: on the CPU the two must be the same arithmetic
    let (plain, strict) = (fit(Precision::Fp32), fit(Precision::Fp32Strict));
    assert_eq!(plain.len(), 2);
    assert_eq!(plain, strict);
    let mut t = tiny(1, 16);
    t.precision = "fp32-strict".parse().unwrap();
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["precision"], "fp32-strict");
    assert_eq!(
        serde_json::from_value::<TrainConfig>(json).unwrap().precision,
        Precision::Fp32Strict
    );
    let err = "tf32".parse::<Precision>().unwrap_err();
    assert!(err.to_string().contains("fp32, fp32-strict, fp16, bf16"), "{err}");
}

#[test]
fn bf16_autocast_trains_every_model_on_the_cpu_close_to_fp32() {
    init();
    let ds = dataset();
    for (g, kind) in [(1, ModelKind::Pinn), (2, ModelKind::Pinn), (1, ModelKind::Supervised)] {
        let fit = |precision| train_losses(&ds, model(g, kind), tiny(3, 48), precision);
        let (full, low) = (fit(Precision::Fp32), fit(Precision::Bf16));
        assert_eq!(low.len(), 3);
        // the convolutions ran in bfloat16: not the float32 arithmetic ...
        assert_ne!(full, low, "{kind:?} gs{g}");
        // ... but within its rounding of it, and learning as well
        for (f, l) in full.iter().zip(&low) {
            assert!(
                (f - l).abs() <= 0.01 * f.abs(),
                "{kind:?} gs{g}: fp32 {full:?}, bf16 {low:?}"
            );
        }
        assert!(low[2] < low[0], "{kind:?} gs{g}: bf16 loss did not fall: {low:?}");
    }
}
