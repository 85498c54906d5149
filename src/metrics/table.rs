//! Comparisons as tables (the caller writes them: metrics do no IO).

use super::compare::{Alignment, AmplitudeScale, Comparison, PhaseAlign};
use super::image::ImageMetrics;
use crate::error::Result;
use crate::table::{Column, Table};

/// One row per label × component (`amplitude`, then `phase`), columns:
/// `label, component, mae, mse, psnr, ssim, ms_ssim, frc50, frc_1_7,
/// frc50_cycles_per_px, frc_1_7_cycles_per_px, data_range, shift_y_px,
/// shift_x_px, phase_align, amplitude_scaling, amplitude_scale, region,
/// scored_fraction` (`scored_fraction`: the share of the metric crop a
/// mask kept, null without one).
/// FRC crossings that are never reached, and shifts without registration,
/// are null; an infinite PSNR stays `inf`. `region` reads `y0:y1,x0:x1`
/// (numpy slices: half-open, object pixels).
pub fn metrics_table(rows: &[(String, &Comparison)]) -> Result<Table> {
    // one entry per label × component
    let parts: Vec<(&str, &str, &ImageMetrics, &Alignment)> = rows
        .iter()
        .flat_map(|(l, c)| {
            [("amplitude", &c.amplitude), ("phase", &c.phase)].map(|(name, m)| (l.as_str(), name, m, &c.alignment))
        })
        .collect();
    Table::new(vec![
        Column::from_rows("label", &parts, |p| p.0),
        Column::from_rows("component", &parts, |p| p.1),
        Column::from_rows("mae", &parts, |p| p.2.mae),
        Column::from_rows("mse", &parts, |p| p.2.mse),
        Column::from_rows("psnr", &parts, |p| p.2.psnr),
        Column::from_rows("ssim", &parts, |p| p.2.ssim),
        Column::from_rows("ms_ssim", &parts, |p| p.2.ms_ssim),
        Column::from_rows("frc50", &parts, |p| p.2.frc50),
        Column::from_rows("frc_1_7", &parts, |p| p.2.frc_1_7),
        Column::from_rows("frc50_cycles_per_px", &parts, |p| p.2.frc50_cycles_per_px),
        Column::from_rows("frc_1_7_cycles_per_px", &parts, |p| p.2.frc_1_7_cycles_per_px),
        Column::from_rows("data_range", &parts, |p| p.2.data_range),
        Column::from_rows("shift_y_px", &parts, |p| p.3.shift_px.map(|s| s[0])),
        Column::from_rows("shift_x_px", &parts, |p| p.3.shift_px.map(|s| s[1])),
        Column::from_rows("phase_align", &parts, |p| match p.3.phase_align {
            PhaseAlign::None => "none",
            PhaseAlign::Offset => "offset",
            PhaseAlign::Plane => "plane",
        }),
        Column::from_rows("amplitude_scaling", &parts, |p| match p.3.amplitude_scaling {
            AmplitudeScale::None => "none",
            AmplitudeScale::Mean => "mean",
        }),
        Column::from_rows("amplitude_scale", &parts, |p| p.3.amplitude_scale),
        Column::from_rows("region", &parts, |p| {
            let r = &p.3.region;
            format!("{}:{},{}:{}", r.y0, r.y1, r.x0, r.x1)
        }),
        Column::from_rows("scored_fraction", &parts, |p| p.3.scored_fraction),
    ])
}

/// The FRC curves in long form: `label, component, ring, cycles_per_px, frc`
/// (amplitude then phase per label; NaN where a ring has no power).
pub fn frc_table(rows: &[(String, &Comparison)]) -> Result<Table> {
    let (mut label, mut component) = (Vec::new(), Vec::new());
    let (mut ring, mut cycles, mut frc): (Vec<f64>, Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new(), Vec::new());
    for (l, c) in rows {
        for (name, curve) in [("amplitude", &c.frc_amplitude), ("phase", &c.frc_phase)] {
            label.extend(std::iter::repeat_n(l.clone(), curve.frc.len()));
            component.extend(std::iter::repeat_n(name, curve.frc.len()));
            ring.extend(&curve.ring);
            cycles.extend(&curve.cycles_per_px);
            frc.extend(&curve.frc);
        }
    }
    let columns = vec![
        Column::new("label", label),
        Column::new("component", component),
        Column::new("ring", ring),
        Column::new("cycles_per_px", cycles),
        Column::new("frc", frc),
    ];
    Table::new(columns)
}
