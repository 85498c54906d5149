//! Notebook conveniences on the data types: `dataset.plot()`,
//! `history.plot()`, `reconstruction.plot()`, and inline HTML tables
//! (`evcxr_display`) for summaries, histories and metric tables. Each display
//! has a plain counterpart (`to_html`, `Figure::save`) that tests can check.
use super::figure::Figure;
use super::html::{display_html, html_table};
use crate::data::{Dataset, DatasetSummary};
use crate::error::Result;
use crate::recon::Reconstruction;
use crate::train::History;

impl Dataset {
    /// Diffraction example, probe, scan positions and (if present) the object.
    pub fn plot(&self) -> Result<Figure> {
        super::dataset_overview(self)
    }
}

impl History {
    /// Loss curves (train/validation) and the learning rate.
    pub fn plot(&self) -> Result<Figure> {
        super::history(self)
    }

    /// The epochs as an HTML table.
    pub fn to_html(&self) -> String {
        let headers = ["epoch", "train loss", "val loss", "learning rate", "seconds"].map(String::from);
        let rows: Vec<Vec<String>> = self
            .epochs
            .iter()
            .map(|r| {
                vec![
                    r.epoch.to_string(),
                    format!("{:.5}", r.train_loss),
                    r.val_loss.map_or("—".into(), |v| format!("{v:.5}")),
                    format!("{:.2e}", r.learning_rate),
                    format!("{:.1}", r.seconds),
                ]
            })
            .collect();
        html_table(&headers, &rows)
    }

    /// Inline HTML table in a notebook.
    pub fn evcxr_display(&self) {
        display_html(&self.to_html());
    }
}

impl Reconstruction {
    /// Amplitude, phase and coverage.
    pub fn plot(&self) -> Result<Figure> {
        super::reconstruction(self)
    }
}

impl DatasetSummary {
    /// The summary as a two-column HTML table (in a notebook:
    /// `plot::display_html(&ds.summary().to_html())`; a cell ending in
    /// `ds.summary()` with an `evcxr_display` method here made the kernel
    /// fail to load that cell's library).
    pub fn to_html(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .to_string()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once("  ")?;
                Some(vec![k.trim().to_string(), v.trim().to_string()])
            })
            .collect();
        html_table(&["".to_string(), "".to_string()], &rows)
    }
}
