//! Comparisons as tables (the caller writes them: metrics do no IO).

use super::compare::{AmplitudeScale, Comparison, PhaseAlign};
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
    let n = 2 * rows.len();
    let mut label = Vec::with_capacity(n);
    let mut component = Vec::with_capacity(n);
    let mut metrics: Vec<&ImageMetrics> = Vec::with_capacity(n);
    let mut shift_y = Vec::with_capacity(n);
    let mut shift_x = Vec::with_capacity(n);
    let mut phase_align = Vec::with_capacity(n);
    let mut scaling = Vec::with_capacity(n);
    let mut scale = Vec::with_capacity(n);
    let mut region = Vec::with_capacity(n);
    let mut scored = Vec::with_capacity(n);
    for (l, c) in rows {
        let a = &c.alignment;
        for (name, m) in [("amplitude", &c.amplitude), ("phase", &c.phase)] {
            label.push(l.clone());
            component.push(name);
            metrics.push(m);
            shift_y.push(a.shift_px.map(|s| s[0]));
            shift_x.push(a.shift_px.map(|s| s[1]));
            phase_align.push(match a.phase_align {
                PhaseAlign::None => "none",
                PhaseAlign::Offset => "offset",
                PhaseAlign::Plane => "plane",
            });
            scaling.push(match a.amplitude_scaling {
                AmplitudeScale::None => "none",
                AmplitudeScale::Mean => "mean",
            });
            scale.push(a.amplitude_scale);
            let r = &a.region;
            region.push(format!("{}:{},{}:{}", r.y0, r.y1, r.x0, r.x1));
            scored.push(a.scored_fraction);
        }
    }
    let f = |get: fn(&ImageMetrics) -> f64| metrics.iter().map(|m| get(m)).collect::<Vec<f64>>();
    let o = |get: fn(&ImageMetrics) -> Option<f64>| metrics.iter().map(|m| get(m)).collect::<Vec<Option<f64>>>();
    let columns = vec![
        Column::new("label", label),
        Column::new("component", component),
        Column::new("mae", f(|m| m.mae)),
        Column::new("mse", f(|m| m.mse)),
        Column::new("psnr", f(|m| m.psnr)),
        Column::new("ssim", f(|m| m.ssim)),
        Column::new("ms_ssim", f(|m| m.ms_ssim)),
        Column::new("frc50", o(|m| m.frc50)),
        Column::new("frc_1_7", o(|m| m.frc_1_7)),
        Column::new("frc50_cycles_per_px", o(|m| m.frc50_cycles_per_px)),
        Column::new("frc_1_7_cycles_per_px", o(|m| m.frc_1_7_cycles_per_px)),
        Column::new("data_range", f(|m| m.data_range)),
        Column::new("shift_y_px", shift_y),
        Column::new("shift_x_px", shift_x),
        Column::new("phase_align", phase_align),
        Column::new("amplitude_scaling", scaling),
        Column::new("amplitude_scale", scale),
        Column::new("region", region),
        Column::new("scored_fraction", scored),
    ];
    Table::new(columns)
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
