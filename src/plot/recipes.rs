//! Ready-made figures for the workbench's values: datasets, training
//! histories, reconstructions, comparisons, FRC curves and metric tables.
use ndarray::{Array2, Zip};
use num_complex::Complex32;

use super::figure::Figure;
use super::panel::{BarPanel, ComplexPanel, ImagePanel, LinePanel, Panel, ScanPanel, SecondaryAxis, Series};
use super::ticks::format_number;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::grouping::Groups;
use crate::recon::Reconstruction;
use crate::train::history::History;

/// Share of the probe intensity inside the drawn footprint circle.
pub const FOOTPRINT_POWER: f64 = 0.9;
/// Probe pixels below this fraction of the peak amplitude have no phase drawn.
const PHASE_MASK: f32 = 0.01;
/// Error colour limits: this quantile of |error| (robust to a few edge pixels).
const ERROR_QUANTILE: f64 = 0.995;
/// Smallest phase-error colour limit (rad); amplitude errors: 0.1% of the
/// largest amplitude.
const PHASE_ERROR_FLOOR: f64 = 1e-3;

/// One real image with a colour bar.
pub fn image(title: &str, data: &Array2<f32>) -> Figure {
    Figure::single(ImagePanel::new(title, data.clone()))
}

/// One complex image (hue = phase, brightness = amplitude).
pub fn complex_image(title: &str, data: &Array2<Complex32>) -> Figure {
    Figure::single(ComplexPanel::new(title, data.clone()))
}

/// Radius (pixels) of the circle around the probe's intensity centroid that
/// holds [`FOOTPRINT_POWER`] of its intensity.
pub fn probe_footprint_radius_px(probe: &Array2<Complex32>) -> f64 {
    let mut total = 0.0;
    let (mut cx, mut cy) = (0.0, 0.0);
    for ((i, j), z) in probe.indexed_iter() {
        let w = z.norm_sqr() as f64;
        if w.is_finite() {
            total += w;
            cx += w * j as f64;
            cy += w * i as f64;
        }
    }
    if total <= 0.0 {
        return 0.0;
    }
    let (cx, cy) = (cx / total, cy / total);
    let mut d: Vec<(f64, f64)> = probe
        .indexed_iter()
        .map(|((i, j), z)| {
            (
                ((j as f64 - cx).powi(2) + (i as f64 - cy).powi(2)).sqrt(),
                z.norm_sqr() as f64,
            )
        })
        .filter(|(_, w)| w.is_finite())
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut acc = 0.0;
    for (r, w) in d {
        acc += w;
        if acc >= FOOTPRINT_POWER * total {
            return r;
        }
    }
    0.0
}

fn pixel_size(ds: &Dataset) -> Option<f64> {
    ds.metadata.geometry.map(|g| g.object_pixel_size_m(ds.patch_size()))
}

fn amplitude(z: &Array2<Complex32>) -> Array2<f32> {
    z.mapv(|c| c.norm())
}

/// Phase, NaN where the amplitude is below `mask` × the largest amplitude.
fn phase_masked(z: &Array2<Complex32>, mask: f32) -> Array2<f32> {
    let max = z.iter().fold(0.0f32, |m, c| m.max(c.norm()));
    z.mapv(|c| if c.norm() > mask * max { c.arg() } else { f32::NAN })
}

fn scan_panel(ds: &Dataset, groups: Option<&Groups>) -> ScanPanel {
    let r = probe_footprint_radius_px(&ds.probe);
    ScanPanel {
        title: format!(
            "{} positions, footprint r = {} px",
            ds.n_images(),
            format_number((r * 10.0).round() / 10.0)
        ),
        positions_px: ds.positions_px.rows().into_iter().map(|p| (p[0], p[1])).collect(),
        footprint_radius_px: Some(r),
        groups: groups.map(|g| g.indices.rows().into_iter().map(|r| r.to_vec()).collect()),
        object_size_px: ds.object.as_ref().map(|o| (o.ncols(), o.nrows())),
    }
}

fn diffraction_panel(ds: &Dataset, index: usize) -> Result<ImagePanel> {
    let n = ds.n_images();
    if index >= n {
        return Err(Error::value(
            "diffraction pattern",
            format!("index {index} is out of range for {n} patterns"),
        ));
    }
    let pattern = ds.diffraction.index_axis(ndarray::Axis(0), index).to_owned();
    Ok(ImagePanel::log10(format!("diffraction #{index} (log scale)"), pattern).with_label("amplitude"))
}

/// Overview of a dataset: a diffraction pattern (log scale), the probe's
/// amplitude and phase, the scan with probe footprints, and the object's
/// amplitude and phase when known. Scale bars when the geometry is known.
pub fn dataset_overview(ds: &Dataset) -> Result<Figure> {
    if ds.n_images() == 0 {
        return Err(Error::value("dataset", "has no patterns to plot"));
    }
    let px = pixel_size(ds);
    let probe_amp = ImagePanel::amplitude("probe amplitude", amplitude(&ds.probe)).with_pixel_size(px);
    let probe_phase =
        ImagePanel::phase("probe phase (where |P| > 1% max)", phase_masked(&ds.probe, PHASE_MASK)).with_pixel_size(px);
    let mut panels: Vec<Panel> = vec![diffraction_panel(ds, 0)?.into(), probe_amp.into(), probe_phase.into()];
    panels.push(scan_panel(ds, None).into());
    let cols = if let Some(obj) = &ds.object {
        panels.push(
            ImagePanel::amplitude("object amplitude", amplitude(obj))
                .with_pixel_size(px)
                .into(),
        );
        panels.push(
            ImagePanel::phase("object phase", obj.mapv(|c| c.arg()))
                .with_pixel_size(px)
                .into(),
        );
        3
    } else {
        // 2 × 2: pattern, scan / probe amplitude, probe phase
        panels.swap(1, 3);
        panels.swap(2, 3);
        2
    };
    let n = ds.patch_size();
    let mut title = format!("dataset: {} patterns of {n}×{n}", ds.n_images());
    if let Some(o) = &ds.object {
        title.push_str(&format!(", object {}×{}", o.nrows(), o.ncols()));
    }
    if let Some(d) = ds.metadata.n_photons {
        title.push_str(&format!(", {} photons/pattern", format_number(d)));
    }
    if let Some(p) = px {
        title.push_str(&format!(", pixel {}", super::ticks::format_length(p)));
    }
    Ok(Figure::from_panels(cols, panels).with_title(title))
}

/// One diffraction pattern on a log10 colour scale.
pub fn diffraction(ds: &Dataset, index: usize) -> Result<Figure> {
    Ok(Figure::single(diffraction_panel(ds, index)?))
}

/// Scan positions with probe footprints; with `groups`, one colour per group
/// and lines from each group's seed to its other members.
pub fn scan_positions(ds: &Dataset, groups: Option<&Groups>) -> Result<Figure> {
    let panel: Panel = scan_panel(ds, groups).into();
    panel.validate()?;
    Ok(Figure::single(panel).with_size(520, 480))
}

/// The mean measured pattern beside the probe's far field `Σ_k |F(P_k)|²`
/// scaled to the same total, on one log10 colour scale (counts): the
/// picture behind `data::inspect`'s correlation.
pub fn mean_pattern_vs_probe(ds: &Dataset) -> Result<Figure> {
    let mean = crate::data::inspect::mean_pattern_counts(ds);
    let far = crate::data::inspect::probe_far_field(ds)?;
    let c = mean.sum() / far.sum().max(f64::MIN_POSITIVE);
    let hi = mean
        .iter()
        .chain(far.mapv(|v| c * v).iter())
        .cloned()
        .fold(0.0, f64::max);
    let limits = (hi * 1e-5, hi.max(f64::MIN_POSITIVE));
    let to_f32 = |a: &Array2<f64>| a.mapv(|v| v as f32);
    let panels: Vec<Panel> = vec![
        ImagePanel::log10("mean measured pattern", to_f32(&mean))
            .with_limits(limits.0, limits.1)
            .with_label("counts")
            .into(),
        ImagePanel::log10(
            format!("probe far field, {} mode(s), same total", ds.n_probe_modes()),
            far.mapv(|v| (c * v) as f32),
        )
        .with_limits(limits.0, limits.1)
        .with_label("counts")
        .into(),
    ];
    let n = ds.patch_size();
    let title = format!(
        "{} patterns of {n}×{n}: mean vs probe far field (log scale)",
        ds.n_images()
    );
    Ok(Figure::from_panels(2, panels).with_title(title).with_size(960, 480))
}

/// Training and validation loss per epoch (log axis when all losses are
/// positive) and the learning rate on a second, logarithmic axis.
pub fn history(h: &History) -> Result<Figure> {
    if h.epochs.is_empty() {
        return Err(Error::value("history", "has no epochs to plot"));
    }
    let epochs: Vec<f64> = h.epochs.iter().map(|e| e.epoch as f64).collect();
    let train: Vec<f64> = h.epochs.iter().map(|e| e.train_loss).collect();
    let val: Vec<f64> = h.epochs.iter().map(|e| e.val_loss.unwrap_or(f64::NAN)).collect();
    let lr: Vec<f64> = h.epochs.iter().map(|e| e.learning_rate).collect();
    let mut series = vec![Series::new("train", epochs.clone(), train.clone())];
    if val.iter().any(|v| v.is_finite()) {
        series.push(Series::new("validation", epochs.clone(), val.clone()));
    }
    let losses = train.iter().chain(&val).filter(|v| v.is_finite());
    let log_y = losses.clone().count() > 0 && losses.clone().all(|v| *v > 0.0);
    let secondary = lr.iter().any(|v| v.is_finite() && *v > 0.0).then(|| SecondaryAxis {
        label: "learning rate".into(),
        series: vec![
            Series::new("learning rate", epochs.clone(), lr)
                .with_color([110, 110, 110])
                .dashed(),
        ],
        log_y: true,
    });
    let panel = LinePanel {
        title: format!("training history ({} epochs)", h.epochs.len()),
        x_label: "epoch".into(),
        y_label: if log_y {
            "loss (log scale)".into()
        } else {
            "loss".into()
        },
        series,
        log_y,
        secondary,
        markers: h.epochs.len() <= 30,
        ..LinePanel::default()
    };
    Ok(Figure::single(panel).with_size(640, 420))
}

/// A stitched reconstruction: amplitude, phase (grey where nothing was
/// stitched) and coverage.
pub fn reconstruction(r: &Reconstruction) -> Result<Figure> {
    if r.object.dim() != r.coverage.dim() {
        return Err(Error::shape(
            "reconstruction coverage",
            format!("{:?} (the object's shape)", r.object.dim()),
            format!("{:?}", r.coverage.dim()),
        ));
    }
    let mut amp = amplitude(&r.object);
    let mut phase = r.object.mapv(|c| c.arg());
    Zip::from(&mut amp)
        .and(&mut phase)
        .and(&r.coverage)
        .for_each(|a, p, &c| {
            if c <= 0.0 {
                *a = f32::NAN;
                *p = f32::NAN;
            }
        });
    let (h, w) = r.object.dim();
    let panels = vec![
        ImagePanel::amplitude("amplitude", amp).into(),
        ImagePanel::phase("phase", phase).into(),
        ImagePanel::new("coverage", r.coverage.clone())
            .with_label("patch weight")
            .into(),
    ];
    Ok(Figure::from_panels(3, panels).with_title(format!("reconstruction ({}), {h}×{w}", r.metadata.source)))
}

/// The `q`-quantile of finite |values| (0 when there are none).
fn abs_quantile<'a>(values: impl Iterator<Item = &'a f32>, q: f64) -> f64 {
    let mut a: Vec<f32> = values.filter(|v| v.is_finite()).map(|v| v.abs()).collect();
    if a.is_empty() {
        return 0.0;
    }
    let k = ((a.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = a.select_nth_unstable_by(k, f32::total_cmp);
    *v as f64
}

/// Rows: the truth, then each reconstruction; columns: amplitude, phase,
/// amplitude error, phase error. Each reconstruction's global phase offset
/// `angle(Σ truth·conj(pred))` (over pixels where both are nonzero) is
/// removed first. Amplitude and phase share colour limits across rows;
/// errors (pred − truth, phase wrapped to −π..π, only where both are
/// nonzero) use a diverging map symmetric about 0 with limits at the
/// 99.5th percentile of |error| over all rows.
pub fn comparison(truth: &Array2<Complex32>, recons: &[(&str, &Array2<Complex32>)]) -> Result<Figure> {
    comparison_with("truth", truth, recons)
}

/// [`comparison`] against a reference that is not the truth (another
/// reconstruction): `reference` names it in the titles and labels.
pub fn comparison_with(
    reference: &str,
    truth: &Array2<Complex32>,
    recons: &[(&str, &Array2<Complex32>)],
) -> Result<Figure> {
    if truth.is_empty() {
        return Err(Error::value("comparison truth", "has no pixels"));
    }
    for (name, r) in recons {
        if r.dim() != truth.dim() {
            return Err(Error::shape(
                format!("comparison `{name}`"),
                format!("{:?} (the {reference}'s shape)", truth.dim()),
                format!("{:?}", r.dim()),
            ));
        }
    }
    let valid = |t: &Complex32, p: &Complex32| t.norm_sqr() > 0.0 && p.norm_sqr() > 0.0;
    let mut rows = Vec::new(); // (name, amplitude, phase, amplitude error, phase error)
    for (name, pred) in recons {
        // pixels where either is zero add nothing to the sum
        let rot = Complex32::from_polar(1.0, crate::metrics::phase_offset(truth.view(), pred.view())? as f32);
        let aligned = pred.mapv(|p| p * rot);
        let amp_err = Zip::from(truth)
            .and(&aligned)
            .map_collect(|t, p| if valid(t, p) { p.norm() - t.norm() } else { f32::NAN });
        let phase_err = Zip::from(truth)
            .and(&aligned)
            .map_collect(|t, p| if valid(t, p) { (p * t.conj()).arg() } else { f32::NAN });
        let phase = aligned.mapv(|p| if p.norm_sqr() > 0.0 { p.arg() } else { f32::NAN });
        rows.push((name.to_string(), amplitude(&aligned), phase, amp_err, phase_err));
    }
    let truth_amp = amplitude(truth);
    let (amp_lo, amp_hi) = truth_amp
        .iter()
        .chain(rows.iter().flat_map(|r| r.1.iter()))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v as f64), h.max(v as f64))
        });
    let (amp_lo, amp_hi) = if amp_hi > amp_lo {
        (amp_lo, amp_hi)
    } else {
        (amp_lo - 0.5, amp_lo + 0.5)
    };
    // floors keep rounding noise (a perfect reconstruction) from filling the
    // whole colour range
    let amp_floor = 1e-3 * amp_hi.abs().max(f64::MIN_POSITIVE);
    let amp_lim = abs_quantile(rows.iter().flat_map(|r| r.3.iter()), ERROR_QUANTILE).max(amp_floor);
    let phase_lim = abs_quantile(rows.iter().flat_map(|r| r.4.iter()), ERROR_QUANTILE).max(PHASE_ERROR_FLOOR);

    let amp_panel = |title: String, a: Array2<f32>| {
        ImagePanel::amplitude(title, a)
            .with_limits(amp_lo, amp_hi)
            .with_axes(false)
    };
    let mut panels: Vec<Panel> = vec![
        amp_panel(format!("{reference}: amplitude"), truth_amp).into(),
        ImagePanel::phase(format!("{reference}: phase"), truth.mapv(|c| c.arg()))
            .with_axes(false)
            .into(),
        Panel::Empty,
        Panel::Empty,
    ];
    for (name, amp, phase, amp_err, phase_err) in rows {
        panels.push(amp_panel(format!("{name}: amplitude"), amp).into());
        panels.push(
            ImagePanel::phase(format!("{name}: phase"), phase)
                .with_axes(false)
                .into(),
        );
        panels.push(
            ImagePanel::diverging(format!("{name}: amplitude error"), amp_err)
                .with_limits(-amp_lim, amp_lim)
                .with_label(format!("pred − {reference}"))
                .with_axes(false)
                .into(),
        );
        panels.push(
            ImagePanel::diverging(format!("{name}: phase error"), phase_err)
                .with_limits(-phase_lim, phase_lim)
                .with_label("rad")
                .with_axes(false)
                .into(),
        );
    }
    let n_rows = 1 + recons.len();
    let (h, w) = truth.dim();
    Ok(Figure::from_panels(4, panels)
        .with_title(format!("comparison with the {reference} (global phase offset removed)"))
        .with_size(4 * COMPARISON_CELL_W, comparison_row_height(h, w) * n_rows as u32 + 40))
}

/// Width of a cell of [`comparison`], pixels.
const COMPARISON_CELL_W: u32 = 340;

/// The height of a row of [`comparison`] for `h × w` images: the image at
/// the width its cell leaves beside the colour bar (about 240 px) with
/// square pixels, plus the panel title and margins, so a wide region does
/// not leave most of the row empty (nor a tall one run off it); the image
/// keeps at least 100 px and at most 560 px of height.
pub(crate) fn comparison_row_height(h: usize, w: usize) -> u32 {
    const IMAGE_W: f64 = 240.0;
    const TITLE_AND_MARGINS: f64 = 56.0;
    let image_h = (IMAGE_W * h.max(1) as f64 / w.max(1) as f64).clamp(100.0, 560.0);
    (image_h + TITLE_AND_MARGINS).round() as u32
}

/// Fourier ring correlation curves `(label, cycles per pixel, FRC)` with
/// reference lines at 0.5 and 1/7.
pub fn frc(curves: &[(String, Vec<f64>, Vec<f64>)]) -> Result<Figure> {
    let series: Vec<Series> = curves
        .iter()
        .map(|(l, x, y)| Series::new(l.clone(), x.clone(), y.clone()))
        .collect();
    let x_max = curves
        .iter()
        .flat_map(|c| c.1.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let y_min = curves
        .iter()
        .flat_map(|c| c.2.iter())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::min);
    let panel = LinePanel {
        title: "Fourier ring correlation".into(),
        x_label: "spatial frequency (cycles/pixel)".into(),
        y_label: "FRC".into(),
        series,
        hlines: vec![(0.5, "0.5".into()), (1.0 / 7.0, "1/7".into())],
        x_limits: Some((0.0, if x_max > 0.0 { x_max } else { 0.5 })),
        y_limits: Some((if y_min < 0.0 { y_min - 0.05 } else { 0.0 }, 1.05)),
        ..LinePanel::default()
    };
    let panel: Panel = panel.into();
    panel.validate()?;
    Ok(Figure::single(panel).with_size(600, 420))
}

/// The half-set FRC ([`crate::metrics::half_set_frc`]): the curve, the
/// half-bit threshold curve (dashed) and the 1/7 line, the resolutions at
/// both in the title.
pub fn frc_half_set(r: &crate::metrics::HalfSetFrc) -> Result<Figure> {
    let x = r.curve.cycles_per_px.clone();
    let at = |res: &crate::metrics::Resolution| {
        let bound = if res.crossed { "" } else { "≤ " };
        match res.resolution_nm {
            Some(nm) => format!("{} {bound}{} nm", res.threshold, format_number(nm)),
            None => format!("{} {bound}{} px", res.threshold, format_number(res.resolution_px)),
        }
    };
    let panel: Panel = LinePanel {
        title: format!("Half-set FRC: {}, {}", at(&r.half_bit_resolution), at(&r.one_seventh)),
        x_label: "spatial frequency (cycles/pixel)".into(),
        y_label: "FRC".into(),
        series: vec![
            Series::new("FRC", x.clone(), r.curve.frc.clone()),
            Series::new("half-bit threshold", x, r.half_bit.clone()).dashed(),
        ],
        hlines: vec![(1.0 / 7.0, "1/7".into())],
        x_limits: Some((0.0, 0.5)),
        y_limits: Some((
            r.curve
                .frc
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0f64, f64::min)
                .min(0.0)
                - 0.02,
            1.05,
        )),
        ..LinePanel::default()
    }
    .into();
    panel.validate()?;
    Ok(Figure::single(panel).with_size(640, 440))
}

/// Incoherent probe modes `[K, N, N]` (hue = phase, brightness =
/// amplitude, one brightness scale for all), each titled with its share of
/// the total power, strongest first as the solvers keep them.
pub fn probe_modes(modes: &ndarray::Array3<Complex32>) -> Result<Figure> {
    let k = modes.shape()[0];
    if k == 0 || modes.is_empty() {
        return Err(Error::value("probe modes", "there are none to plot"));
    }
    let powers: Vec<f64> = modes
        .outer_iter()
        .map(|m| m.iter().map(|v| v.norm_sqr() as f64).sum())
        .collect();
    let total: f64 = powers.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let brightest = modes.iter().map(|v| v.norm()).fold(0.0f32, f32::max);
    let panels: Vec<Panel> = modes
        .outer_iter()
        .zip(&powers)
        .enumerate()
        .map(|(i, (m, p))| {
            let mut panel = ComplexPanel::new(
                format!("mode {}: {:.1} % of the power", i + 1, 100.0 * p / total),
                m.to_owned(),
            );
            panel.max_amplitude = Some(brightest);
            panel.into()
        })
        .collect();
    let cols = k.min(4);
    let rows = k.div_ceil(cols);
    Ok(Figure::from_panels(cols, panels)
        .with_title(format!("{k} probe mode(s)"))
        .with_size(300 * cols as u32 + 40, 320 * rows as u32 + 40))
}

/// Position correction as arrows: a line from each given position to its
/// corrected one; with the true positions, a second panel from each
/// corrected position to its true one (what is left to correct), the
/// common offset of the two sets removed (the data cannot see it).
///
/// # Shapes
/// `given`, `corrected`, `truth`: `[n, 2]` `(x, y)` px
pub fn position_corrections(
    given: &Array2<f64>,
    corrected: &Array2<f64>,
    truth: Option<&Array2<f64>>,
) -> Result<Figure> {
    let n = given.nrows();
    for (what, a) in [("corrected", Some(corrected)), ("true", truth)] {
        if let Some(a) = a
            && a.dim() != given.dim()
        {
            return Err(Error::shape(
                format!("{what} positions"),
                format!("{:?} (the given positions')", given.shape()),
                format!("{:?}", a.shape()),
            ));
        }
    }
    if n == 0 || given.ncols() != 2 {
        return Err(Error::shape(
            "given positions",
            "[n, 2] with n ≥ 1",
            format!("{:?}", given.shape()),
        ));
    }
    // moves as they are; errors against the truth with the common offset removed
    let rms = |a: &Array2<f64>, b: &Array2<f64>, offset_removed: bool| {
        crate::recon::iterative::rms_distance(a, b, offset_removed)
    };
    let arrows = |title: String, from: &Array2<f64>, to: &Array2<f64>| -> Panel {
        let points = from.rows().into_iter().chain(to.rows()).map(|p| (p[0], p[1])).collect();
        ScanPanel {
            title,
            positions_px: points,
            footprint_radius_px: None,
            groups: Some((0..n).map(|i| vec![i, n + i]).collect()),
            object_size_px: None,
        }
        .into()
    };
    let mut panels = vec![arrows(
        format!(
            "given → corrected: RMS {} px",
            format_number(rms(given, corrected, false))
        ),
        given,
        corrected,
    )];
    if let Some(t) = truth {
        // the truth moved by the mean offset, so the arrows show what the data can see
        let d = (corrected - t).mean_axis(ndarray::Axis(0)).expect("non-empty");
        let shifted = t + &d.insert_axis(ndarray::Axis(0));
        panels.push(arrows(
            format!(
                "corrected → true: RMS {} px (given: {} px)",
                format_number(rms(corrected, t, true)),
                format_number(rms(given, t, true))
            ),
            corrected,
            &shifted,
        ));
    }
    for p in &panels {
        p.validate()?;
    }
    let cols = panels.len();
    Ok(Figure::from_panels(cols, panels)
        .with_title(format!("position correction of {n} positions"))
        .with_size(520 * cols as u32, 500))
}

/// Grouped bars: `values[group][label]` (e.g. a metric per dose for each
/// model), with a legend of the groups.
pub fn metric_bars<S: AsRef<str>, T: AsRef<str>>(
    labels: &[S],
    groups: &[T],
    values: &[Vec<f64>],
    y_label: &str,
) -> Result<Figure> {
    let panel: Panel = BarPanel {
        title: y_label.to_string(),
        labels: labels.iter().map(|s| s.as_ref().to_string()).collect(),
        groups: groups.iter().map(|s| s.as_ref().to_string()).collect(),
        values: values.to_vec(),
        y_label: y_label.to_string(),
    }
    .into();
    panel.validate()?;
    let bars = labels.len() * groups.len().max(1);
    let width = (160 + 26 * bars + 24 * labels.len()).clamp(480, 1600) as u32;
    Ok(Figure::single(panel).with_size(width, 420))
}

/// x/y series with a legend.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Result<Figure> {
    let panel: Panel = LinePanel {
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: y_label.to_string(),
        series,
        ..LinePanel::default()
    }
    .into();
    panel.validate()?;
    Ok(Figure::single(panel).with_size(600, 420))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprint_of_a_disk_holds_most_of_its_power() {
        let n = 64;
        let disk = Array2::from_shape_fn((n, n), |(i, j)| {
            let r = ((i as f64 - 32.0).powi(2) + (j as f64 - 32.0).powi(2)).sqrt();
            Complex32::new(if r <= 10.0 { 1.0 } else { 0.0 }, 0.0)
        });
        let r = probe_footprint_radius_px(&disk);
        assert!(r > 8.0 && r <= 10.0, "{r}");
        assert_eq!(probe_footprint_radius_px(&Array2::zeros((4, 4))), 0.0);
    }

    #[test]
    fn comparison_removes_a_global_phase_offset() {
        let truth = Array2::from_shape_fn((8, 8), |(i, j)| Complex32::from_polar(1.0, 0.1 * (i + j) as f32));
        let shifted = truth.mapv(|z| z * Complex32::from_polar(1.0, 0.7));
        let fig = comparison(&truth, &[("shifted", &shifted)]).unwrap();
        let Some(Panel::Image(p)) = fig.panel(1, 3) else {
            panic!("phase error panel")
        };
        assert!(p.data.iter().all(|e| e.abs() < 1e-5), "{:?}", p.data);
        let wrong = Array2::<Complex32>::zeros((4, 8));
        assert!(comparison(&truth, &[("wrong", &wrong)]).is_err());
        // against another reconstruction, the figure does not call it the truth
        let svg = comparison_with("reference", &truth, &[("shifted", &shifted)])
            .unwrap()
            .to_svg()
            .unwrap();
        assert!(svg.contains("reference: amplitude") && !svg.contains("truth"), "titles");
        assert!(
            comparison(&truth, &[("shifted", &shifted)])
                .unwrap()
                .to_svg()
                .unwrap()
                .contains("truth: phase")
        );
    }
}
