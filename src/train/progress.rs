//! A progress bar over epochs for terminals (indicatif); elsewhere, one line
//! per epoch.
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::history::{EpochRecord, LineObserver, TrainObserver};

/// A bar on stderr, updated after every epoch with the latest losses.
#[derive(Debug)]
pub struct ProgressBarObserver {
    bar: Option<ProgressBar>,
}

impl ProgressBarObserver {
    pub fn new() -> Self {
        ProgressBarObserver { bar: None }
    }
}

impl Default for ProgressBarObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainObserver for ProgressBarObserver {
    fn on_epoch(&mut self, r: &EpochRecord, total: usize) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} epoch {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
                    .expect("valid template"),
            );
            bar
        });
        let val = r.val_loss.map_or("-".to_string(), |v| format!("{v:.4e}"));
        bar.set_message(format!(
            "train {:.4e} val {val} lr {:.1e}",
            r.train_loss, r.learning_rate
        ));
        bar.set_position(r.epoch as u64);
        if r.epoch >= total {
            bar.finish();
        }
    }
}

impl Drop for ProgressBarObserver {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

/// A bar when stderr is a terminal, one line per epoch otherwise (logs,
/// notebooks, CI).
pub fn terminal_observer() -> Box<dyn TrainObserver> {
    if std::io::stderr().is_terminal() {
        Box::new(ProgressBarObserver::new())
    } else {
        Box::new(LineObserver)
    }
}
