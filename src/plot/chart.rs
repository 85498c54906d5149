//! Chart panels: lines (log axes, reference lines, a second y axis), scan
//! positions with probe footprints and groups, grouped bars. Every axis
//! uses our own tick positions and labels (`ticks`), so linear and log axes
//! share one coordinate type.
use plotters::coord::Shift;
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::colormap::palette;
use super::figure::{LABEL_SIZE, TICK_SIZE, anchored, draw_err, fit_text, font};
use super::image::{TITLE_H, draw_title};
use super::panel::{BarPanel, LinePanel, ScanPanel, Series};
use super::ticks::{format_ticks, log_ticks, nice_ticks};
use crate::error::Result;

/// A linear f64 axis whose key points are exactly our ticks.
#[derive(Debug, Clone)]
pub(super) struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        if self.hi == self.lo {
            return (limit.0 + limit.1) / 2;
        }
        let f = (v - self.lo) / (self.hi - self.lo);
        let px = limit.0 as f64 + f * (limit.1 - limit.0) as f64;
        px.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;
type Ticks = Vec<(f64, String)>;

const X_AREA: u32 = 48;
const RIGHT_PAD: u32 = 14;

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Linear ticks with labels.
fn linear_ticks(lo: f64, hi: f64, n: usize) -> Ticks {
    let v = nice_ticks(lo, hi, n);
    let l = format_ticks(&v);
    v.into_iter().zip(l).collect()
}

fn axis_ticks(lo: f64, hi: f64, log: bool, n: usize) -> Ticks {
    if log {
        log_ticks(lo, hi, n)
    } else {
        linear_ticks(lo, hi, n)
    }
}

/// The label of the tick at `v` (axes only label their key points).
fn label_of(ticks: &Ticks, v: f64) -> String {
    ticks
        .iter()
        .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
        .map(|t| t.1.clone())
        .unwrap_or_default()
}

pub(super) fn axis(lo: f64, hi: f64, ticks: &Ticks) -> Axis {
    let (a, b) = (lo.min(hi), lo.max(hi));
    Axis {
        lo,
        hi,
        ticks: ticks.iter().map(|t| t.0).filter(|t| *t >= a && *t <= b).collect(),
    }
}

/// `[lo, hi]` of finite values, padded by `pad` of the span; a degenerate
/// or empty range becomes a unit-wide one.
fn padded(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo <= 1e-12 * hi.abs().max(1e-300) {
        let d = if hi == 0.0 { 0.5 } else { 0.1 * hi.abs() };
        return (lo - d, hi + d);
    }
    let d = pad * (hi - lo);
    (lo - d, hi + d)
}

/// Width of the y tick labels plus the rotated axis label.
fn y_area<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, ticks: &Ticks, label: &str) -> Result<u32> {
    let mut w = 0;
    for (_, l) in ticks {
        w = w.max(area.estimate_text_size(l, &font(TICK_SIZE)).map_err(draw_err)?.0);
    }
    let desc = if label.is_empty() { 0 } else { LABEL_SIZE as u32 + 8 };
    Ok(w + 14 + desc)
}

fn configure_mesh<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    x_label: &str,
    y_label: &str,
    xt: &Ticks,
    yt: &Ticks,
) -> Result<()> {
    let fx = |v: &f64| label_of(xt, *v);
    let fy = |v: &f64| label_of(yt, *v);
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(font(TICK_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .draw()
        .map_err(draw_err)
}

fn draw_legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart<'a, DB>, position: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(font(TICK_SIZE))
        .draw()
        .map_err(draw_err)
}

/// The corner whose legend would hide the fewest data: every line, sampled
/// along its segments, placed in the unit square of its axes (`u`, `v` in
/// 0..1); a corner is the outer 40 % on both axes. Ties keep the upper right.
fn legend_corner(lines: &[Vec<(f64, f64)>]) -> SeriesLabelPosition {
    let mut counts = [0usize; 4]; // upper right, upper left, lower right, lower left
    let mut count = |u: f64, v: f64| {
        let (right, left, upper, lower) = (u > 0.6, u < 0.4, v > 0.6, v < 0.4);
        for (k, hit) in [right && upper, left && upper, right && lower, left && lower]
            .into_iter()
            .enumerate()
        {
            counts[k] += usize::from(hit);
        }
    };
    for line in lines {
        for w in line.windows(2) {
            let ((u0, v0), (u1, v1)) = (w[0], w[1]);
            if !(u0.is_finite() && v0.is_finite() && u1.is_finite() && v1.is_finite()) {
                continue;
            }
            for i in 0..10 {
                let t = i as f64 / 10.0;
                count(u0 + t * (u1 - u0), v0 + t * (v1 - v0));
            }
        }
        if let Some(&(u, v)) = line.last().filter(|p| p.0.is_finite() && p.1.is_finite()) {
            count(u, v);
        }
    }
    match (0..4).min_by_key(|&k| counts[k]).unwrap_or(0) {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

/// Runs of consecutive finite points (a NaN breaks the line).
fn segments(s: &Series, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (&x, &y) in s.x.iter().zip(&s.y) {
        let y = if log_y {
            if y > 0.0 { y.log10() } else { f64::NAN }
        } else {
            y
        };
        if x.is_finite() && y.is_finite() {
            if let Some(seg) = out.last_mut() {
                seg.push((x, y));
            }
        } else if out.last().is_some_and(|seg| !seg.is_empty()) {
            out.push(Vec::new());
        }
    }
    out.retain(|seg| !seg.is_empty());
    out
}

/// Draws one series with `$chart.$method` (`draw_series` or
/// `draw_secondary_series`), labelled once for the legend; evaluates to
/// whether it added a legend entry.
macro_rules! draw_one_series {
    ($chart:expr, $method:ident, $s:expr, $color:expr, $log_y:expr, $markers:expr) => {{
        let (s, c): (&Series, RGBColor) = ($s, $color);
        let style = c.stroke_width(2);
        let mut labelled = false;
        for (k, seg) in segments(s, $log_y).into_iter().enumerate() {
            let anno = if s.dashed {
                $chart.$method(DashedLineSeries::new(seg.clone(), 7, 5, style))
            } else {
                $chart.$method(std::iter::once(PathElement::new(seg.clone(), style)))
            }
            .map_err(draw_err)?;
            if k == 0 && !s.label.is_empty() {
                let dashed = s.dashed;
                anno.label(s.label.as_str()).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (if dashed { 8 } else { 20 }, 0)], style)
                        + PathElement::new(vec![(12, 0), (20, 0)], style)
                });
                labelled = true;
            }
            if $markers || seg.len() == 1 {
                $chart
                    .$method(seg.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(draw_err)?;
            }
        }
        labelled
    }};
}

/// Line plot panel.
pub(super) fn draw_lines<'a, DB: DrawingBackend + 'a>(area: &'a DrawingArea<DB, Shift>, p: &LinePanel) -> Result<()> {
    draw_title(area, &p.title, TITLE_H as i32 - 6)?;
    let (_, body) = area.split_vertically(TITLE_H);
    let secondary = p.secondary.as_ref().filter(|s| !s.series.is_empty());
    let all_x = p
        .series
        .iter()
        .chain(secondary.iter().flat_map(|s| s.series.iter()))
        .flat_map(|s| s.x.iter().copied());
    let (x0, x1) = p.x_limits.unwrap_or_else(|| padded(all_x, 0.0));
    let ty = |v: f64| {
        if p.log_y {
            if v > 0.0 { v.log10() } else { f64::NAN }
        } else {
            v
        }
    };
    let (y0, y1) = match p.y_limits {
        Some((lo, hi)) if p.log_y && lo > 0.0 => (lo.log10(), hi.log10()),
        Some(l) if !p.log_y => l,
        _ => {
            let ys = p
                .series
                .iter()
                .flat_map(|s| s.y.iter().copied())
                .chain(p.hlines.iter().map(|h| h.0));
            padded(ys.map(ty), 0.05)
        }
    };
    let xt = linear_ticks(x0, x1, 6);
    let yt = axis_ticks(y0, y1, p.log_y, 6);
    let (y2, y2t) = match secondary {
        Some(s) => {
            let t2 = |v: f64| {
                if s.log_y {
                    if v > 0.0 { v.log10() } else { f64::NAN }
                } else {
                    v
                }
            };
            let r = padded(s.series.iter().flat_map(|s| s.y.iter().copied()).map(t2), 0.05);
            (r, axis_ticks(r.0, r.1, s.log_y, 5))
        }
        None => ((0.0, 1.0), Vec::new()),
    };
    let left = y_area(&body, &yt, &p.y_label)?;
    let right = match secondary {
        Some(s) => y_area(&body, &y2t, &s.label)?,
        None => RIGHT_PAD,
    };
    let mut chart = ChartBuilder::on(&body)
        .margin_top(6)
        .margin_right(if secondary.is_some() { 4 } else { RIGHT_PAD })
        .x_label_area_size(X_AREA)
        .y_label_area_size(left)
        .right_y_label_area_size(if secondary.is_some() { right } else { 0 })
        .build_cartesian_2d(axis(x0, x1, &xt), axis(y0, y1, &yt))
        .map_err(draw_err)?
        // always dual: the secondary coordinates take over the right label
        // area, so the primary mesh labels only the left one
        .set_secondary_coord(axis(x0, x1, &xt), axis(y2.0, y2.1, &y2t));
    configure_mesh(&mut chart, &p.x_label, &p.y_label, &xt, &yt)?;

    for (y, label) in &p.hlines {
        let y = ty(*y);
        if !(y.is_finite() && y >= y0.min(y1) && y <= y0.max(y1)) {
            continue;
        }
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, y), (x1, y)],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(draw_err)?;
        if !label.is_empty() {
            let style = anchored(TICK_SIZE, HPos::Left, VPos::Bottom).color(&grey);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x0, y)) + Text::new(label.clone(), (4, -2), style),
                ))
                .map_err(draw_err)?;
        }
    }
    let mut next_color = 0;
    let mut color_of = |s: &Series| {
        s.color.map(rgb).unwrap_or_else(|| {
            next_color += 1;
            rgb(palette(next_color - 1))
        })
    };
    let mut labelled = false;
    for s in &p.series {
        let color = color_of(s);
        labelled |= draw_one_series!(chart, draw_series, s, color, p.log_y, p.markers);
    }
    if let Some(s) = secondary {
        let f2 = |v: &f64| label_of(&y2t, *v);
        chart
            .configure_secondary_axes()
            .y_desc(s.label.as_str())
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(LABEL_SIZE))
            .y_label_formatter(&f2)
            .draw()
            .map_err(draw_err)?;
        for ser in &s.series {
            let color = color_of(ser);
            labelled |= draw_one_series!(chart, draw_secondary_series, ser, color, s.log_y, p.markers);
        }
    }
    if labelled {
        let unit = |v: f64, lo: f64, hi: f64| (v - lo) / (hi - lo);
        let mut lines: Vec<Vec<(f64, f64)>> = p
            .series
            .iter()
            .map(|s| {
                s.x.iter()
                    .zip(&s.y)
                    .map(|(&x, &y)| (unit(x, x0, x1), unit(ty(y), y0, y1)))
                    .collect()
            })
            .collect();
        if let Some(s) = secondary {
            let t2 = |v: f64| if s.log_y { v.log10() } else { v };
            lines.extend(s.series.iter().map(|ser| {
                ser.x
                    .iter()
                    .zip(&ser.y)
                    .map(|(&x, &y)| (unit(x, x0, x1), unit(t2(y), y2.0, y2.1)))
                    .collect()
            }));
        }
        draw_legend(&mut chart, legend_corner(&lines))?;
    }
    Ok(())
}

/// Scan positions with equal x and y scales, y pointing down (as in the
/// object image).
pub(super) fn draw_scan<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &ScanPanel) -> Result<()> {
    draw_title(area, &p.title, TITLE_H as i32 - 6)?;
    let (_, body) = area.split_vertically(TITLE_H);
    let r = p.footprint_radius_px.unwrap_or(0.0);
    let ((x0, x1), (y0, y1)) = match p.object_size_px {
        Some((w, h)) => ((-0.5, w as f64 - 0.5), (-0.5, h as f64 - 0.5)),
        None => {
            let xs = p.positions_px.iter().flat_map(|q| [q.0 - r, q.0 + r]);
            let ys = p.positions_px.iter().flat_map(|q| [q.1 - r, q.1 + r]);
            (padded(xs, 0.04), padded(ys, 0.04))
        }
    };
    let xt = linear_ticks(x0, x1, 5);
    let yt = linear_ticks(y0, y1, 5);
    let left = y_area(&body, &yt, "y (px)")?;
    let (bw, bh) = body.dim_in_pixel();
    let avail_w = bw as f64 - (left + RIGHT_PAD) as f64;
    let avail_h = bh as f64 - (X_AREA + 6) as f64;
    if avail_w < 8.0 || avail_h < 8.0 {
        return Ok(());
    }
    let s = (avail_w / (x1 - x0)).min(avail_h / (y1 - y0));
    let (w, h) = (((x1 - x0) * s) as u32, ((y1 - y0) * s) as u32);
    let off_x = (bw.saturating_sub(left + w + RIGHT_PAD) / 2) as i32;
    let off_y = (6 + (avail_h as u32).saturating_sub(h) / 2) as i32;
    let sub = body.shrink((off_x, off_y), (left + w, h + X_AREA));
    let mut chart = ChartBuilder::on(&sub)
        .x_label_area_size(X_AREA)
        .y_label_area_size(left)
        .build_cartesian_2d(axis(x0, x1, &xt), axis(y1, y0, &yt))
        .map_err(draw_err)?;
    configure_mesh(&mut chart, "x (px)", "y (px)", &xt, &yt)?;
    if let Some((ow, oh)) = p.object_size_px {
        let frame = [(-0.5, -0.5), (ow as f64 - 0.5, oh as f64 - 0.5)];
        chart
            .draw_series(std::iter::once(Rectangle::new(frame, BLACK.mix(0.6).stroke_width(1))))
            .map_err(draw_err)?;
    }
    let r_px = (r * s).round() as i32;
    let base = RGBColor(31, 119, 180);
    if r_px > 0 {
        chart
            .draw_series(
                p.positions_px
                    .iter()
                    .map(|&q| Circle::new(q, r_px, base.mix(0.06).filled())),
            )
            .map_err(draw_err)?;
        chart
            .draw_series(
                p.positions_px
                    .iter()
                    .map(|&q| Circle::new(q, r_px, base.mix(0.35).stroke_width(1))),
            )
            .map_err(draw_err)?;
    }
    match &p.groups {
        None => {
            chart
                .draw_series(p.positions_px.iter().map(|&q| Circle::new(q, 2, BLACK.filled())))
                .map_err(draw_err)?;
        }
        Some(groups) => {
            chart
                .draw_series(
                    p.positions_px
                        .iter()
                        .map(|&q| Circle::new(q, 2, BLACK.mix(0.35).filled())),
                )
                .map_err(draw_err)?;
            for (g, members) in groups.iter().enumerate() {
                let c = rgb(palette(g));
                let Some(&seed) = members.first() else { continue };
                let s0 = p.positions_px[seed];
                for &m in &members[1..] {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![s0, p.positions_px[m]],
                            c.stroke_width(2),
                        )))
                        .map_err(draw_err)?;
                }
                chart
                    .draw_series(members.iter().map(|&m| Circle::new(p.positions_px[m], 3, c.filled())))
                    .map_err(draw_err)?;
            }
        }
    }
    Ok(())
}

/// Grouped bar chart: one cluster per label, one bar per group.
pub(super) fn draw_bars<'a, DB: DrawingBackend + 'a>(area: &'a DrawingArea<DB, Shift>, p: &BarPanel) -> Result<()> {
    draw_title(area, &p.title, TITLE_H as i32 - 6)?;
    let (_, body) = area.split_vertically(TITLE_H);
    let n = p.labels.len();
    if n == 0 || p.groups.is_empty() {
        return Ok(());
    }
    let values = p.values.iter().flatten().copied().filter(|v| v.is_finite());
    let (mut lo, mut hi) = values.fold((0.0f64, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    if hi == lo {
        hi = lo + 1.0;
    }
    let legend_room = if p.groups.len() > 1 {
        0.1 * p.groups.len() as f64
    } else {
        0.05
    };
    let span = hi - lo;
    if hi > 0.0 {
        hi += span * legend_room.min(0.4);
    }
    if lo < 0.0 {
        lo -= span * 0.05;
    }
    let yt = linear_ticks(lo, hi, 6);
    let left = y_area(&body, &yt, &p.y_label)?;
    // category labels: horizontal if they fit their slot, else vertical
    let slot = (body.dim_in_pixel().0.saturating_sub(left + RIGHT_PAD)) as f64 / n as f64;
    let mut widest = 0;
    for l in &p.labels {
        widest = widest.max(body.estimate_text_size(l, &font(TICK_SIZE)).map_err(draw_err)?.0);
    }
    let vertical = widest as f64 > slot - 6.0;
    let bottom = if vertical {
        (widest + 16).min(body.dim_in_pixel().1 / 2)
    } else {
        30
    };
    let xt: Ticks = p
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i as f64 + 0.5, l.clone()))
        .collect();
    let mut chart = ChartBuilder::on(&body)
        .margin_top(6)
        .margin_right(RIGHT_PAD)
        .x_label_area_size(bottom)
        .y_label_area_size(left)
        .build_cartesian_2d(axis(0.0, n as f64, &xt), axis(lo, hi, &yt))
        .map_err(draw_err)?;
    let fy = |v: &f64| label_of(&yt, *v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(p.y_label.as_str())
        .label_style(font(TICK_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .y_label_formatter(&fy)
        .draw()
        .map_err(draw_err)?;
    // category labels under the axis: centred, or vertical (reading
    // upwards, ending at the axis) when they do not fit their slot
    let (bx, by) = body.get_base_pixel();
    let style = if vertical {
        anchored(TICK_SIZE, HPos::Right, VPos::Center).transform(FontTransform::Rotate270)
    } else {
        anchored(TICK_SIZE, HPos::Center, VPos::Top)
    };
    let max_w = if vertical {
        bottom.saturating_sub(10)
    } else {
        slot as u32
    };
    for (x, label) in &xt {
        let (px, py) = chart.backend_coord(&(*x, lo));
        let text = fit_text(&body, label, &font(TICK_SIZE), max_w)?;
        body.draw_text(&text, &style, (px - bx, py - by + 6))
            .map_err(draw_err)?;
    }
    let k = p.groups.len() as f64;
    let bw = 0.8 / k;
    for (g, (name, row)) in p.groups.iter().zip(&p.values).enumerate() {
        let c = rgb(palette(g));
        let bars = row.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| {
            let xl = i as f64 + 0.1 + g as f64 * bw;
            Rectangle::new([(xl, 0.0), (xl + bw * 0.92, v)], c.filled())
        });
        let anno = chart.draw_series(bars).map_err(draw_err)?;
        if p.groups.len() > 1 || !name.is_empty() {
            anno.label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        }
    }
    if p.groups.len() > 1 {
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corner_name(p: SeriesLabelPosition) -> &'static str {
        match p {
            SeriesLabelPosition::UpperRight => "upper right",
            SeriesLabelPosition::UpperLeft => "upper left",
            SeriesLabelPosition::LowerRight => "lower right",
            SeriesLabelPosition::LowerLeft => "lower left",
            _ => "other",
        }
    }

    #[test]
    fn the_legend_avoids_the_data() {
        // a rising line fills the lower left and upper right corners
        let rising = vec![vec![(0.0, 0.0), (1.0, 1.0)]];
        assert_eq!(corner_name(legend_corner(&rising)), "upper left");
        // a loss curve falling from the upper left to a floor on the right
        let falling = vec![vec![(0.0, 1.0), (0.2, 0.3), (1.0, 0.05)]];
        assert_eq!(corner_name(legend_corner(&falling)), "upper right");
        // lines across the top leave the lower right (first free after the upper corners)
        let top = vec![vec![(0.0, 0.9), (1.0, 0.95)], vec![(0.0, 0.7), (1.0, 0.8)]];
        assert_eq!(corner_name(legend_corner(&top)), "lower right");
    }
}
