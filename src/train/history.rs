//! The loss history of a training run.
use std::fmt;

use serde::{Deserialize, Serialize};

/// One epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    /// `None` without a validation split.
    pub val_loss: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// Every epoch of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// CSV with the header `epoch,train_loss,val_loss,learning_rate,seconds`
    /// (an empty `val_loss` when there is none).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("epoch,train_loss,val_loss,learning_rate,seconds\n");
        for r in &self.epochs {
            let val = r.val_loss.map_or(String::new(), |v| format!("{v:.9e}"));
            s.push_str(&format!(
                "{},{:.9e},{},{:.6e},{:.3}\n",
                r.epoch, r.train_loss, val, r.learning_rate, r.seconds
            ));
        }
        s
    }

    /// Parses [`to_csv`](Self::to_csv)'s format (e.g. a bundle's or a job's
    /// `history.csv`).
    pub fn from_csv(text: &str) -> crate::Result<History> {
        let bad = |line: usize, what: &str| crate::Error::value("history.csv", format!("line {line}: {what}"));
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "epoch,train_loss,val_loss,learning_rate,seconds")) => {}
            _ => {
                return Err(bad(
                    1,
                    "expected the header `epoch,train_loss,val_loss,learning_rate,seconds`",
                ));
            }
        }
        let mut epochs = Vec::new();
        for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 5 {
                return Err(bad(i + 1, "expected 5 fields"));
            }
            let num = |s: &str| s.trim().parse::<f64>().map_err(|_| bad(i + 1, "not a number"));
            epochs.push(EpochRecord {
                epoch: f[0].trim().parse().map_err(|_| bad(i + 1, "bad epoch"))?,
                train_loss: num(f[1])?,
                val_loss: if f[2].trim().is_empty() { None } else { Some(num(f[2])?) },
                learning_rate: num(f[3])?,
                seconds: num(f[4])?,
            });
        }
        Ok(History { epochs })
    }

    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The history as a table with columns `epoch`, `train_loss`,
    /// `val_loss` (null without a split), `learning_rate`, `seconds`.
    pub fn to_table(&self) -> crate::Result<crate::table::Table> {
        use crate::table::{Column, Table};
        let e = &self.epochs;
        Table::new(vec![
            Column::from_rows("epoch", e, |r| r.epoch as u32),
            Column::from_rows("train_loss", e, |r| r.train_loss),
            Column::from_rows("val_loss", e, |r| r.val_loss),
            Column::from_rows("learning_rate", e, |r| r.learning_rate),
            Column::from_rows("seconds", e, |r| r.seconds),
        ])
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5} {:>14} {:>14} {:>10} {:>8}",
            "epoch", "train loss", "val loss", "lr", "s"
        )?;
        for r in &self.epochs {
            let val = r.val_loss.map_or("-".to_string(), |v| format!("{v:.6e}"));
            writeln!(
                f,
                "{:>5} {:>14.6e} {:>14} {:>10.2e} {:>8.2}",
                r.epoch, r.train_loss, val, r.learning_rate, r.seconds
            )?;
        }
        Ok(())
    }
}

/// Receives progress from a training run.
pub trait TrainObserver {
    /// After every epoch.
    fn on_epoch(&mut self, record: &EpochRecord, total_epochs: usize);
}

/// Prints one line per epoch to stderr (notebooks and logs).
#[derive(Debug, Default)]
pub struct LineObserver;

impl TrainObserver for LineObserver {
    fn on_epoch(&mut self, r: &EpochRecord, total: usize) {
        let val = r.val_loss.map_or("-".to_string(), |v| format!("{v:.6e}"));
        eprintln!(
            "epoch {}/{total}  train {:.6e}  val {val}  lr {:.2e}  {:.1} s",
            r.epoch, r.train_loss, r.learning_rate, r.seconds
        );
    }
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct SilentObserver;

impl TrainObserver for SilentObserver {
    fn on_epoch(&mut self, _: &EpochRecord, _: usize) {}
}
