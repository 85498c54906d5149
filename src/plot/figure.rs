//! `Figure`: a titled grid of panels, drawn to PNG or SVG with plotters and
//! an embedded font (no system fonts), shown inline in evcxr notebooks.
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::html::mime_block;
use super::panel::Panel;
use super::{chart, image};
use crate::error::{Error, Result};

/// DejaVu Sans (see `assets/fonts/LICENSE-DejaVu.txt`), registered with
/// plotters as "sans-serif" on first use.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub(super) const FAMILY: &str = "sans-serif";

/// Font sizes in plotters units (the SVG `font-size` is this / 1.24, so 15
/// gives ≥ 12 px text).
pub(super) const TITLE_SIZE: f64 = 22.0;
pub(super) const PANEL_TITLE_SIZE: f64 = 18.0;
pub(super) const LABEL_SIZE: f64 = 16.0;
pub(super) const TICK_SIZE: f64 = 15.0;

/// Default size of one grid cell in pixels.
const CELL_W: u32 = 400;
const CELL_H: u32 = 340;
const FIG_TITLE_H: u32 = 40;
const MAX_SIDE: u32 = 16384;

fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::value(
            "plot font",
            "the embedded DejaVu Sans could not be loaded",
        ))
    }
}

pub(super) fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::value("figure", format!("drawing failed: {e}"))
}

/// A text style of the embedded font.
pub(super) fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&BLACK)
}

/// Text style anchored at `(h, v)`.
pub(super) fn anchored(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size).pos(Pos::new(h, v))
}

/// A grid of panels with a title, drawn to PNG (`to_png`) or SVG (`to_svg`).
///
/// ```no_run
/// use ndarray::Array2;
/// use ptycho_workbench::plot::{Figure, ImagePanel};
///
/// # fn main() -> ptycho_workbench::Result<()> {
/// let img = Array2::from_shape_fn((64, 64), |(i, j)| (i * j) as f32);
/// let mut fig = Figure::new(1, 2).with_title("demo");
/// fig.set(0, 0, ImagePanel::amplitude("product", img.clone()))?;
/// fig.set(0, 1, ImagePanel::log10("log scale", img))?;
/// fig.save("demo.png".as_ref())?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    title: String,
    rows: usize,
    cols: usize,
    /// Row-major, `rows × cols`.
    panels: Vec<Panel>,
    size: Option<(u32, u32)>,
}

/// Which backend a figure is being drawn on: images are resampled to their
/// display size for bitmaps, and embedded at their own size (then stretched
/// without smoothing) in SVG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Bitmap,
    Svg,
}

/// State while drawing one figure.
pub(super) struct Ctx {
    pub target: Target,
    /// Images for the SVG: `(x, y, width, height, PNG as base64)` in
    /// figure pixels, in drawing order.
    svg_images: Vec<(i32, i32, u32, u32, String)>,
}

/// Private-use character that marks where an image goes in the SVG.
const MARK: char = '\u{E000}';

impl Ctx {
    /// Draws an RGB image (`native` = (width, height), row-major RGB8)
    /// stretched to `size` with its top-left corner at `pos` (pixels of `area`).
    ///
    /// plotters' SVG backend would draw a bitmap as one `<rect>` per pixel
    /// (its PNG embedding needs a feature we do not enable), so for SVG we
    /// draw a marker text and put an `<image>` with the PNG in its place.
    pub fn blit<DB: DrawingBackend>(
        &mut self,
        area: &DrawingArea<DB, Shift>,
        pos: (i32, i32),
        native: (u32, u32),
        rgb: Vec<u8>,
        size: (u32, u32),
    ) -> Result<()> {
        if size.0 == 0 || size.1 == 0 || native.0 == 0 || native.1 == 0 {
            return Ok(());
        }
        if rgb.len() != native.0 as usize * native.1 as usize * 3 {
            return Err(Error::value("figure", "image buffer has the wrong size"));
        }
        match self.target {
            Target::Bitmap => {
                let scaled = resample_nearest(&rgb, native, size);
                let element = BitMapElement::with_owned_buffer(pos, size, scaled)
                    .ok_or_else(|| Error::value("figure", "image buffer has the wrong size"))?;
                area.draw(&element).map_err(draw_err)
            }
            Target::Svg => {
                let png = encode_png(&rgb, native)?;
                let (bx, by) = area.get_base_pixel();
                let k = self.svg_images.len();
                self.svg_images
                    .push((bx + pos.0, by + pos.1, size.0, size.1, super::html::base64(&png)));
                area.draw_text(&format!("{MARK}{k}{MARK}"), &font(TICK_SIZE), pos)
                    .map_err(draw_err)
            }
        }
    }
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    use ::image::ImageEncoder;
    let mut png = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, w, h, ::image::ColorType::Rgb8)
        .map_err(|e| Error::value("figure", format!("PNG encoding failed: {e}")))?;
    Ok(png)
}

/// Nearest-neighbour resampling of an RGB8 image.
fn resample_nearest(rgb: &[u8], (sw, sh): (u32, u32), (dw, dh): (u32, u32)) -> Vec<u8> {
    if (sw, sh) == (dw, dh) {
        return rgb.to_vec();
    }
    let cols: Vec<usize> = (0..dw)
        .map(|x| ((((x as f64 + 0.5) * sw as f64 / dw as f64) as usize).min(sw as usize - 1)) * 3)
        .collect();
    let mut out = Vec::with_capacity(dw as usize * dh as usize * 3);
    for y in 0..dh {
        let sy = (((y as f64 + 0.5) * sh as f64 / dh as f64) as usize).min(sh as usize - 1);
        let row = &rgb[sy * sw as usize * 3..(sy + 1) * sw as usize * 3];
        for &c in &cols {
            out.extend_from_slice(&row[c..c + 3]);
        }
    }
    out
}

/// Replaces each marker `<text …>MARK k MARK</text>` by the `k`-th image:
/// stretched to its display size without smoothing.
fn insert_svg_images(svg: &str, images: &[(i32, i32, u32, u32, String)]) -> String {
    let mut out = String::with_capacity(svg.len() + images.iter().map(|i| i.4.len() + 200).sum::<usize>());
    let mut rest = svg;
    for (k, (x, y, w, h, b64)) in images.iter().enumerate() {
        let marker = format!("{MARK}{k}{MARK}");
        let Some(m) = rest.find(&marker) else { break };
        let (Some(start), Some(end)) = (rest[..m].rfind("<text"), rest[m..].find("</text>")) else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&format!(
            "<image x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" preserveAspectRatio=\"none\" \
             style=\"image-rendering:crisp-edges;image-rendering:pixelated\" href=\"data:image/png;base64,{b64}\"/>"
        ));
        rest = &rest[m + end + "</text>".len()..];
    }
    out.push_str(rest);
    out
}

impl Figure {
    /// An empty `rows × cols` grid (at least 1 × 1).
    pub fn new(rows: usize, cols: usize) -> Self {
        let (rows, cols) = (rows.max(1), cols.max(1));
        Figure {
            title: String::new(),
            rows,
            cols,
            panels: vec![Panel::Empty; rows * cols],
            size: None,
        }
    }

    /// One panel.
    pub fn single(panel: impl Into<Panel>) -> Self {
        Figure::from_panels(1, vec![panel.into()])
    }

    /// Panels laid out row by row, `cols` per row.
    pub fn from_panels(cols: usize, panels: Vec<Panel>) -> Self {
        let cols = cols.max(1);
        let rows = panels.len().div_ceil(cols).max(1);
        let mut fig = Figure::new(rows, cols);
        for (i, p) in panels.into_iter().enumerate() {
            fig.panels[i] = p;
        }
        fig
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Size in pixels (default: 400 × 340 per cell, plus the title).
    pub fn with_size(mut self, width_px: u32, height_px: u32) -> Self {
        self.size = Some((width_px, height_px));
        self
    }

    /// Puts `panel` at `(row, col)`.
    pub fn set(&mut self, row: usize, col: usize, panel: impl Into<Panel>) -> Result<()> {
        if row >= self.rows || col >= self.cols {
            return Err(Error::value(
                "figure panel",
                format!("({row}, {col}) is outside the {}×{} grid", self.rows, self.cols),
            ));
        }
        self.panels[row * self.cols + col] = panel.into();
        Ok(())
    }

    pub fn panel(&self, row: usize, col: usize) -> Option<&Panel> {
        (row < self.rows && col < self.cols).then(|| &self.panels[row * self.cols + col])
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    /// `(rows, cols)`.
    pub fn grid(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `(width, height)` in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.size.unwrap_or_else(|| {
            let title = if self.title.is_empty() { 0 } else { FIG_TITLE_H };
            (CELL_W * self.cols as u32, CELL_H * self.rows as u32 + title)
        })
    }

    fn validate(&self) -> Result<()> {
        let (w, h) = self.size();
        if !(64..=MAX_SIDE).contains(&w) || !(64..=MAX_SIDE).contains(&h) {
            return Err(Error::value(
                "figure size",
                format!("{w}×{h} px: each side must be in 64..={MAX_SIDE}"),
            ));
        }
        self.panels.iter().try_for_each(Panel::validate)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, ctx: &mut Ctx) -> Result<()> {
        root.fill(&WHITE).map_err(draw_err)?;
        let body = if self.title.is_empty() {
            root.clone()
        } else {
            let (top, body) = root.split_vertically(FIG_TITLE_H);
            let (w, _) = top.dim_in_pixel();
            let style = anchored(TITLE_SIZE, HPos::Center, VPos::Center);
            let title = fit_text(&top, &self.title, &style, w.saturating_sub(16))?;
            top.draw_text(&title, &style, (w as i32 / 2, FIG_TITLE_H as i32 / 2))
                .map_err(draw_err)?;
            body
        };
        for (cell, panel) in body.split_evenly((self.rows, self.cols)).iter().zip(&self.panels) {
            let cell = cell.margin(4, 4, 4, 4);
            match panel {
                Panel::Image(p) => image::draw_image(&cell, p, ctx)?,
                Panel::Complex(p) => image::draw_complex(&cell, p, ctx)?,
                Panel::Scan(p) => chart::draw_scan(&cell, p)?,
                Panel::Lines(p) => chart::draw_lines(&cell, p)?,
                Panel::Bars(p) => chart::draw_bars(&cell, p)?,
                Panel::Empty => {}
            }
        }
        root.present().map_err(draw_err)
    }

    /// RGB pixels, row-major, `width × height × 3`.
    pub fn to_rgb(&self) -> Result<Vec<u8>> {
        ensure_font()?;
        self.validate()?;
        let (w, h) = self.size();
        let mut buf = vec![255u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            let mut ctx = Ctx {
                target: Target::Bitmap,
                svg_images: Vec::new(),
            };
            self.draw(&root, &mut ctx)?;
        }
        Ok(buf)
    }

    /// The figure as a PNG file's bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        encode_png(&self.to_rgb()?, self.size())
    }

    /// The figure as an SVG document; images are embedded as PNG.
    pub fn to_svg(&self) -> Result<String> {
        ensure_font()?;
        self.validate()?;
        let (w, h) = self.size();
        let mut svg = String::new();
        let mut ctx = Ctx {
            target: Target::Svg,
            svg_images: Vec::new(),
        };
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            self.draw(&root, &mut ctx)?;
        }
        Ok(insert_svg_images(&svg, &ctx.svg_images))
    }

    /// Writes `.png` or `.svg` (by extension) atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let bytes = match ext.as_deref() {
            Some("png") => self.to_png()?,
            Some("svg") => self.to_svg()?.into_bytes(),
            other => {
                let got = other.map_or("no extension".to_string(), |e| format!("`.{e}`"));
                return Err(Error::format(
                    path,
                    format!("cannot save a figure with {got}: use .png or .svg"),
                ));
            }
        };
        crate::data::atomic::write_bytes_atomic(path, &bytes)
    }

    /// What [`evcxr_display`](Self::evcxr_display) prints: the PNG as an
    /// `EVCXR_BEGIN_CONTENT image/png` block.
    pub fn evcxr_content(&self) -> Result<String> {
        Ok(mime_block("image/png", &super::html::base64(&self.to_png()?)))
    }

    /// Shows the figure inline in an evcxr (Jupyter) notebook; an error is
    /// shown as text instead.
    pub fn evcxr_display(&self) {
        match self.evcxr_content() {
            Ok(block) => print!("{block}"),
            Err(e) => print!("{}", mime_block("text/plain", &format!("figure error: {e}"))),
        }
    }
}

/// `text`, shortened with "…" until it fits in `max_w` pixels.
pub(super) fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    max_w: u32,
) -> Result<String> {
    let width = |s: &str| area.estimate_text_size(s, style).map(|(w, _)| w).map_err(draw_err);
    if width(text)? <= max_w {
        return Ok(text.to_string());
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let s: String = chars.iter().collect::<String>() + "…";
        if width(&s)? <= max_w {
            return Ok(s);
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_resampling_repeats_pixels() {
        let rgb = vec![0, 0, 0, 255, 255, 255];
        let out = resample_nearest(&rgb, (2, 1), (4, 2));
        assert_eq!(out.len(), 4 * 2 * 3);
        assert_eq!(&out[..12], &[0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
        assert_eq!(&out[..12], &out[12..]);
    }

    #[test]
    fn svg_markers_become_images() {
        let svg = format!("<svg><rect/><text x=\"1\" y=\"2\">\n{MARK}0{MARK}\n</text>\n<text>keep</text></svg>");
        let fixed = insert_svg_images(&svg, &[(5, 6, 30, 40, "AAAA".into())]);
        assert!(
            fixed.starts_with("<svg><rect/><image x=\"5\" y=\"6\" width=\"30\" height=\"40\""),
            "{fixed}"
        );
        assert!(
            fixed.contains("href=\"data:image/png;base64,AAAA\"/>\n<text>keep</text></svg>"),
            "{fixed}"
        );
    }
}
