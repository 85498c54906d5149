//! Image panels: square pixels, pixel axes, a labelled colour bar, a scale
//! bar; complex images with a colour-wheel legend. Pixels are blitted as
//! one bitmap (no per-pixel rectangles), so large images stay fast and an
//! SVG embeds one PNG per image.
use num_complex::Complex32;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::chart::axis;
use super::colormap::{BAD_COLOR, complex_rgb};
use super::figure::{Ctx, LABEL_SIZE, PANEL_TITLE_SIZE, TICK_SIZE, anchored, draw_err, fit_text, font};
use super::panel::{ComplexPanel, ImagePanel, Scale};
use super::ticks::{format_number, format_ticks, log_ticks, nice_ticks, scale_bar};
use crate::error::Result;

/// Height of the panel title row.
pub(super) const TITLE_H: u32 = 30;
const AXIS_BOTTOM: u32 = 44;
const PAD: u32 = 6;
const CBAR_GAP: u32 = 10;
const CBAR_W: u32 = 16;
const TICK_LEN: i32 = 4;
/// Log colour scales span at most this many decades below the maximum.
const MAX_DECADES: f64 = 8.0;

/// Where an image goes inside its cell.
#[derive(Debug, Clone, Copy)]
struct Placement {
    x0: i32,
    y0: i32,
    w: u32,
    h: u32,
}

/// Fits a `cols × rows` image with square pixels into `dim`, leaving
/// `left`/`bottom` for axes and `right` for the colour bar or legend; the
/// block of title, image and legend is centred.
fn place(dim: (u32, u32), (rows, cols): (usize, usize), left: u32, bottom: u32, right: u32) -> Option<Placement> {
    let avail_w = dim.0 as f64 - (left + right + PAD) as f64;
    let avail_h = dim.1 as f64 - (TITLE_H + bottom + PAD) as f64;
    if avail_w < 8.0 || avail_h < 8.0 {
        return None;
    }
    let s = (avail_w / cols as f64).min(avail_h / rows as f64);
    let w = ((cols as f64 * s).floor() as u32).max(1);
    let h = ((rows as f64 * s).floor() as u32).max(1);
    let group_w = left + w + right;
    let x0 = (dim.0.saturating_sub(group_w) / 2 + left) as i32;
    let y0 = (TITLE_H as f64 + (avail_h - h as f64) / 2.0).round() as i32;
    Some(Placement { x0, y0, w, h })
}

/// The panel title, centred above the image (or at the top of the cell).
pub(super) fn draw_title<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, y: i32) -> Result<()> {
    if title.is_empty() {
        return Ok(());
    }
    let (w, _) = area.dim_in_pixel();
    let style = anchored(PANEL_TITLE_SIZE, HPos::Center, VPos::Bottom);
    let text = fit_text(area, title, &style, w.saturating_sub(8))?;
    area.draw_text(&text, &style, (w as i32 / 2, y)).map_err(draw_err)
}

/// Colour-bar ticks: `(position in transformed units, label)`.
type Ticks = Vec<(f64, String)>;

/// Colour limits in transformed units (log10 for `Scale::Log10`) and the
/// transform itself.
fn colour_range(p: &ImagePanel) -> (f64, f64) {
    let transform = |v: f64| match p.scale {
        Scale::Linear => v,
        Scale::Log10 if v > 0.0 => v.log10(),
        Scale::Log10 => f64::NEG_INFINITY,
    };
    let (lo, hi) = match p.limits {
        Some((lo, hi)) => {
            let hi_t = transform(hi);
            let lo_t = transform(lo);
            (if lo_t.is_finite() { lo_t } else { hi_t - MAX_DECADES }, hi_t)
        }
        None => {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &v in &p.data {
                let t = transform(v as f64);
                if t.is_finite() {
                    lo = lo.min(t);
                    hi = hi.max(t);
                }
            }
            if p.scale == Scale::Log10 {
                lo = lo.max(hi - MAX_DECADES);
            }
            (lo, hi)
        }
    };
    if !(lo.is_finite() && hi.is_finite()) {
        (0.0, 1.0)
    } else if hi - lo <= 1e-12 * hi.abs().max(1e-30) {
        let d = if hi == 0.0 { 0.5 } else { 0.05 * hi.abs() };
        (lo - d, hi + d)
    } else {
        (lo, hi)
    }
}

fn image_rgb(p: &ImagePanel, (lo, hi): (f64, f64)) -> Vec<u8> {
    let lut = p.colormap.lut();
    let inv = 255.0 / (hi - lo);
    let mut out = Vec::with_capacity(p.data.len() * 3);
    for &v in &p.data {
        let c = if v.is_nan() {
            BAD_COLOR
        } else {
            let t = match p.scale {
                Scale::Linear => v as f64,
                Scale::Log10 if v > 0.0 => (v as f64).log10(),
                Scale::Log10 => f64::NEG_INFINITY,
            };
            let k = ((t - lo) * inv).round();
            lut[if k.is_nan() { 0 } else { k.clamp(0.0, 255.0) as usize }]
        };
        out.extend_from_slice(&c);
    }
    out
}

/// At most about `max_n` colour-bar ticks (fewer on short bars).
fn colorbar_ticks(p: &ImagePanel, (lo, hi): (f64, f64), max_n: usize) -> Ticks {
    use std::f64::consts::PI;
    let inside = |t: f64| t >= lo - 1e-9 * (hi - lo) && t <= hi + 1e-9 * (hi - lo);
    let ticks: Ticks = if p.phase_ticks {
        let all = [
            (-PI, "−π"),
            (-PI / 2.0, "−π/2"),
            (0.0, "0"),
            (PI / 2.0, "π/2"),
            (PI, "π"),
        ];
        all.into_iter()
            .enumerate()
            .filter(|(i, _)| max_n >= 5 || i % 2 == 0)
            .map(|(_, (v, l))| (v, l.to_string()))
            .collect()
    } else if p.scale == Scale::Log10 {
        log_ticks(lo, hi, max_n)
    } else {
        let v = nice_ticks(lo, hi, max_n.saturating_sub(1).max(2));
        let labels = format_ticks(&v);
        v.into_iter().zip(labels).collect()
    };
    ticks.into_iter().filter(|(t, _)| inside(*t)).collect()
}

/// Whole-pixel ticks for an axis of `n` pixels.
fn int_ticks(n: usize) -> Ticks {
    nice_ticks(0.0, n.saturating_sub(1) as f64, 5)
        .into_iter()
        .filter(|v| v.fract() == 0.0)
        .map(|v| (v, format!("{v:.0}")))
        .collect()
}

/// Width left of the image for the y tick labels and `y (px)`.
fn axes_left<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: usize) -> Result<u32> {
    let mut w = 0;
    for (_, l) in int_ticks(rows) {
        w = w.max(area.estimate_text_size(&l, &font(TICK_SIZE)).map_err(draw_err)?.0);
    }
    Ok(w + 16 + LABEL_SIZE as u32 + 6)
}

/// Pixel axes around an image at `pl` (tick labels, `x (px)`, `y (px)`).
fn draw_pixel_axes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pl: Placement,
    (rows, cols): (usize, usize),
    left: u32,
) -> Result<()> {
    let sub = area.clone().shrink(
        ((pl.x0 - left as i32).max(0), pl.y0.max(0)),
        (left + pl.w, pl.h + AXIS_BOTTOM),
    );
    let mut chart = ChartBuilder::on(&sub)
        .x_label_area_size(AXIS_BOTTOM)
        .y_label_area_size(left)
        .build_cartesian_2d(
            axis(-0.5, cols as f64 - 0.5, &int_ticks(cols)),
            axis(rows as f64 - 0.5, -0.5, &int_ticks(rows)),
        )
        .map_err(draw_err)?;
    let fmt = |v: &f64| format!("{}", v.round() as i64);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x (px)")
        .y_desc("y (px)")
        .label_style(font(TICK_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .draw()
        .map_err(draw_err)
}

fn draw_frame<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, pl: Placement) -> Result<()> {
    area.draw(&Rectangle::new(
        [(pl.x0 - 1, pl.y0 - 1), (pl.x0 + pl.w as i32, pl.y0 + pl.h as i32)],
        BLACK.stroke_width(1),
    ))
    .map_err(draw_err)
}

/// A scale bar in the lower-left corner of the image: black bar and label
/// on a translucent white box (readable on any colour map).
fn draw_scale_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pl: Placement,
    cols: usize,
    pixel_size_m: f64,
) -> Result<()> {
    let Some((len_px, label)) = scale_bar(cols, pixel_size_m) else {
        return Ok(());
    };
    let bar = (len_px * pl.w as f64 / cols as f64).round() as i32;
    let style = anchored(TICK_SIZE, HPos::Center, VPos::Bottom);
    let (tw, th) = area.estimate_text_size(&label, &style).map_err(draw_err)?;
    let box_w = bar.max(tw as i32) + 8;
    let box_h = th as i32 + 14;
    if bar < 12 || box_w > pl.w as i32 - 8 || box_h > pl.h as i32 / 3 {
        return Ok(());
    }
    let (bx, by) = (pl.x0 + 5, pl.y0 + pl.h as i32 - 5 - box_h);
    area.draw(&Rectangle::new(
        [(bx, by), (bx + box_w, by + box_h)],
        WHITE.mix(0.75).filled(),
    ))
    .map_err(draw_err)?;
    let cx = bx + box_w / 2;
    let bar_y = by + box_h - 8;
    area.draw(&Rectangle::new(
        [(cx - bar / 2, bar_y), (cx - bar / 2 + bar, bar_y + 4)],
        BLACK.filled(),
    ))
    .map_err(draw_err)?;
    area.draw_text(&label, &style, (cx, bar_y - 2)).map_err(draw_err)
}

/// Width of the colour bar with its tick labels and label.
fn colorbar_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, ticks: &Ticks, label: &str) -> Result<u32> {
    let style = font(TICK_SIZE);
    // a common minimum keeps images in a grid the same size
    let mut tw = 44;
    for (_, l) in ticks {
        tw = tw.max(area.estimate_text_size(l, &style).map_err(draw_err)?.0);
    }
    let label_w = if label.is_empty() { 0 } else { LABEL_SIZE as u32 + 6 };
    Ok(CBAR_GAP + CBAR_W + TICK_LEN as u32 + 4 + tw + label_w + 4)
}

/// A vertical colour bar right of the image, same height.
fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    ctx: &mut Ctx,
    pl: Placement,
    p: &ImagePanel,
    (lo, hi): (f64, f64),
    ticks: &Ticks,
) -> Result<()> {
    let lut = p.colormap.lut();
    let gradient: Vec<u8> = (0..256).rev().flat_map(|i| lut[i]).collect();
    let x = pl.x0 + pl.w as i32 + CBAR_GAP as i32;
    let (y0, h) = (pl.y0, pl.h as i32);
    ctx.blit(area, (x, y0), (1, 256), gradient, (CBAR_W, pl.h))?;
    area.draw(&Rectangle::new(
        [(x - 1, y0 - 1), (x + CBAR_W as i32, y0 + h)],
        BLACK.stroke_width(1),
    ))
    .map_err(draw_err)?;
    let style = anchored(TICK_SIZE, HPos::Left, VPos::Center);
    let xr = x + CBAR_W as i32;
    let mut label_x = xr + TICK_LEN + 4;
    for (t, l) in ticks {
        let y = y0 + ((hi - t) / (hi - lo) * (h - 1) as f64).round() as i32;
        area.draw(&PathElement::new(vec![(xr, y), (xr + TICK_LEN, y)], BLACK))
            .map_err(draw_err)?;
        area.draw_text(l, &style, (xr + TICK_LEN + 3, y)).map_err(draw_err)?;
        let w = area.estimate_text_size(l, &style).map_err(draw_err)?.0 as i32;
        label_x = label_x.max(xr + TICK_LEN + 3 + w);
    }
    if !p.colorbar_label.is_empty() {
        // reads bottom to top, centred beside the tick labels
        let text = fit_text(area, &p.colorbar_label, &font(LABEL_SIZE), pl.h)?;
        let style = anchored(LABEL_SIZE, HPos::Center, VPos::Center).transform(FontTransform::Rotate270);
        let cx = label_x + 6 + LABEL_SIZE as i32 / 2;
        area.draw_text(&text, &style, (cx, y0 + h / 2)).map_err(draw_err)?;
    }
    Ok(())
}

/// A real image with colour bar, optional axes and scale bar.
pub(super) fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &ImagePanel,
    ctx: &mut Ctx,
) -> Result<()> {
    let (rows, cols) = p.data.dim();
    let range = colour_range(p);
    let right = colorbar_width(area, &colorbar_ticks(p, range, 6), &p.colorbar_label)?;
    let (left, bottom) = if p.axes {
        (axes_left(area, rows)?, AXIS_BOTTOM)
    } else {
        (4, 4)
    };
    let Some(pl) = place(area.dim_in_pixel(), (rows, cols), left, bottom, right) else {
        return draw_title(area, &p.title, TITLE_H as i32 - 6);
    };
    // about one tick per 30 px of colour bar
    let ticks = colorbar_ticks(p, range, (pl.h as usize / 30).clamp(2, 6));
    draw_title(area, &p.title, pl.y0 - 8)?;
    if p.axes {
        draw_pixel_axes(area, pl, (rows, cols), left)?;
    }
    let native = (cols as u32, rows as u32);
    ctx.blit(area, (pl.x0, pl.y0), native, image_rgb(p, range), (pl.w, pl.h))?;
    draw_frame(area, pl)?;
    if let Some(px) = p.pixel_size_m {
        draw_scale_bar(area, pl, cols, px)?;
    }
    draw_colorbar(area, ctx, pl, p, range, &ticks)
}

/// Largest finite `|z|`, or 1 when there is none.
fn max_amplitude(data: &ndarray::Array2<Complex32>) -> f32 {
    let m = data
        .iter()
        .filter(|z| z.re.is_finite() && z.im.is_finite())
        .fold(0.0f32, |m, z| m.max(z.norm()));
    if m > 0.0 { m } else { 1.0 }
}

/// A complex image (hue = phase, brightness = amplitude) with a colour-wheel
/// legend and a note of the amplitude at full brightness.
pub(super) fn draw_complex<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &ComplexPanel,
    ctx: &mut Ctx,
) -> Result<()> {
    let (rows, cols) = p.data.dim();
    let max = p
        .max_amplitude
        .filter(|m| *m > 0.0 && m.is_finite())
        .unwrap_or_else(|| max_amplitude(&p.data));
    let notes = [
        "hue: phase".to_string(),
        "value: |z|".to_string(),
        format!("max {}", format_number(max as f64)),
    ];
    let style = anchored(TICK_SIZE, HPos::Left, VPos::Top);
    let mut tw = 0;
    for n in &notes {
        tw = tw.max(area.estimate_text_size(n, &style).map_err(draw_err)?.0);
    }
    const WHEEL: u32 = 56;
    let right = CBAR_GAP + tw.max(WHEEL + 32) + 4;
    let (left, bottom) = if p.axes {
        (axes_left(area, rows)?, AXIS_BOTTOM)
    } else {
        (4, 4)
    };
    let Some(pl) = place(area.dim_in_pixel(), (rows, cols), left, bottom, right) else {
        return draw_title(area, &p.title, TITLE_H as i32 - 6);
    };
    draw_title(area, &p.title, pl.y0 - 8)?;
    if p.axes {
        draw_pixel_axes(area, pl, (rows, cols), left)?;
    }
    let rgb: Vec<u8> = p.data.iter().flat_map(|z| complex_rgb(*z, max)).collect();
    ctx.blit(area, (pl.x0, pl.y0), (cols as u32, rows as u32), rgb, (pl.w, pl.h))?;
    draw_frame(area, pl)?;
    if let Some(px) = p.pixel_size_m {
        draw_scale_bar(area, pl, cols, px)?;
    }
    // legend: wheel (angle = phase, counter-clockwise from +x; radius = amplitude)
    const N: usize = 64;
    let wheel: Vec<u8> = (0..N * N)
        .flat_map(|k| {
            let (i, j) = (k / N, k % N);
            let dx = (j as f32 + 0.5) / (N as f32 / 2.0) - 1.0;
            let dy = 1.0 - (i as f32 + 0.5) / (N as f32 / 2.0);
            if dx * dx + dy * dy <= 1.0 {
                complex_rgb(Complex32::new(dx, dy), 1.0)
            } else {
                [255, 255, 255]
            }
        })
        .collect();
    let x = pl.x0 + pl.w as i32 + CBAR_GAP as i32;
    let side = WHEEL.min(pl.h);
    // phase 0 points right, π left (labels beside the wheel)
    let wx = x + 16;
    ctx.blit(area, (wx, pl.y0), (N as u32, N as u32), wheel, (side, side))?;
    let mid = pl.y0 + side as i32 / 2;
    area.draw_text("π", &anchored(TICK_SIZE, HPos::Right, VPos::Center), (wx - 3, mid))
        .map_err(draw_err)?;
    area.draw_text(
        "0",
        &anchored(TICK_SIZE, HPos::Left, VPos::Center),
        (wx + side as i32 + 3, mid),
    )
    .map_err(draw_err)?;
    let line_h = area.estimate_text_size("Ag", &style).map_err(draw_err)?.1 as i32 + 4;
    let mut y = pl.y0 + side as i32 + 6;
    for n in &notes {
        if y + line_h > pl.y0 + pl.h as i32 + 4 {
            break;
        }
        area.draw_text(n, &style, (x, y)).map_err(draw_err)?;
        y += line_h;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn placement_keeps_square_pixels() {
        let pl = place((400, 340), (50, 100), 60, AXIS_BOTTOM, 80).unwrap();
        assert_eq!(pl.w, 2 * pl.h);
        let pl = place((400, 340), (128, 128), 60, AXIS_BOTTOM, 80).unwrap();
        assert_eq!(pl.w, pl.h);
        assert!(place((40, 40), (10, 10), 60, AXIS_BOTTOM, 80).is_none());
    }

    #[test]
    fn log_range_spans_at_most_max_decades() {
        let data = Array2::from_shape_vec((1, 4), vec![0.0, 1e-12, 1.0, 1e3]).unwrap();
        let (lo, hi) = colour_range(&ImagePanel::log10("", data));
        assert!((hi - 3.0).abs() < 1e-6 && (lo - (3.0 - MAX_DECADES)).abs() < 1e-6);
        let flat = Array2::from_elem((2, 2), 2.0f32);
        let (lo, hi) = colour_range(&ImagePanel::new("", flat));
        assert!(lo < 2.0 && hi > 2.0);
    }
}
