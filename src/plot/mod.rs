//! Figures for notebooks, reports and the CLI: images with colour bars and
//! scale bars, complex images, diffraction on a log scale, scan positions,
//! loss and FRC curves, bar charts; PNG/SVG output and inline display in
//! evcxr notebooks; HTML tables.
//!
//! A [`Figure`] owns its data (no lifetimes), so it can live in a notebook
//! variable. Text uses an embedded DejaVu Sans: nothing depends on system
//! fonts.
mod chart;
mod colormap;
mod display;
mod figure;
mod html;
mod image;
mod panel;
mod recipes;
mod ticks;

pub use colormap::{BAD_COLOR, Colormap, PALETTE, complex_rgb, hsv_to_rgb, palette};
pub use figure::Figure;
pub(crate) use html::format_float;
pub use html::{base64, display_html, escape_html, html_table, mime_block, table_html};
pub use panel::{BarPanel, ComplexPanel, ImagePanel, LinePanel, Panel, Scale, ScanPanel, SecondaryAxis, Series};
pub use recipes::{
    FOOTPRINT_POWER, comparison, comparison_with, complex_image, dataset_overview, diffraction, frc, frc_half_set,
    history, image, lines, mean_pattern_vs_probe, metric_bars, position_corrections, probe_footprint_radius_px,
    probe_modes, reconstruction, scan_positions,
};
pub use ticks::{format_length, format_number};
