//! What one cell of a [`Figure`](super::Figure) shows. Every panel owns its
//! data, so a figure can be kept in a notebook variable and drawn again.
use ndarray::Array2;
use num_complex::Complex32;

use super::colormap::Colormap;
use crate::error::{Error, Result};

/// One cell of a figure.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Panel {
    /// A real image with a colour bar.
    Image(ImagePanel),
    /// A complex image: hue = phase, brightness = amplitude.
    Complex(ComplexPanel),
    /// Scan positions with probe footprints and groups.
    Scan(ScanPanel),
    /// Line plots (losses, FRC curves, any x/y series).
    Lines(LinePanel),
    /// Grouped bar chart.
    Bars(BarPanel),
    /// Nothing (an unused grid cell).
    #[default]
    Empty,
}

/// How image values map to the colour bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// `log10` of the value; values ≤ 0 take the lowest colour.
    Log10,
}

/// A real image `[H, W]` (row = y, drawn top to bottom) with square pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePanel {
    pub title: String,
    /// `[H, W]`; NaN marks masked pixels (drawn grey).
    pub data: Array2<f32>,
    pub colormap: Colormap,
    pub scale: Scale,
    /// Colour limits in data units (before `log10`); `None`: the finite range.
    pub limits: Option<(f64, f64)>,
    /// Label beside the colour bar (may be empty).
    pub colorbar_label: String,
    /// Label the colour bar −π, −π/2, 0, π/2, π (for phases on −π..π).
    pub phase_ticks: bool,
    /// Object pixel size: draws a scale bar (`"2 µm"`).
    pub pixel_size_m: Option<f64>,
    /// Pixel axes (`x (px)`, `y (px)`) around the image.
    pub axes: bool,
}

impl ImagePanel {
    /// Viridis, linear, automatic limits, with axes.
    pub fn new(title: impl Into<String>, data: Array2<f32>) -> Self {
        ImagePanel {
            title: title.into(),
            data,
            colormap: Colormap::Viridis,
            scale: Scale::Linear,
            limits: None,
            colorbar_label: String::new(),
            phase_ticks: false,
            pixel_size_m: None,
            axes: true,
        }
    }

    /// An amplitude: viridis, colour bar labelled "amplitude".
    pub fn amplitude(title: impl Into<String>, data: Array2<f32>) -> Self {
        ImagePanel::new(title, data).with_label("amplitude")
    }

    /// A phase in radians: the cyclic map over −π..π, ticks in multiples of π/2.
    pub fn phase(title: impl Into<String>, data: Array2<f32>) -> Self {
        ImagePanel {
            colormap: Colormap::Twilight,
            limits: Some((-std::f64::consts::PI, std::f64::consts::PI)),
            phase_ticks: true,
            ..ImagePanel::new(title, data).with_label("phase (rad)")
        }
    }

    /// `log10` colour scale (diffraction patterns).
    pub fn log10(title: impl Into<String>, data: Array2<f32>) -> Self {
        ImagePanel {
            scale: Scale::Log10,
            ..ImagePanel::new(title, data)
        }
    }

    /// Signed values: the diverging map with limits ±max|value| (finite values).
    pub fn diverging(title: impl Into<String>, data: Array2<f32>) -> Self {
        let m = data
            .iter()
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let m = if m > 0.0 { m } else { 1.0 };
        ImagePanel {
            colormap: Colormap::RdBu,
            limits: Some((-m, m)),
            ..ImagePanel::new(title, data)
        }
    }

    pub fn with_colormap(mut self, colormap: Colormap) -> Self {
        self.colormap = colormap;
        self
    }

    pub fn with_limits(mut self, lo: f64, hi: f64) -> Self {
        self.limits = Some((lo, hi));
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.colorbar_label = label.into();
        self
    }

    pub fn with_pixel_size(mut self, pixel_size_m: Option<f64>) -> Self {
        self.pixel_size_m = pixel_size_m;
        self
    }

    pub fn with_axes(mut self, axes: bool) -> Self {
        self.axes = axes;
        self
    }
}

/// A complex image `[H, W]`: hue = phase, brightness = `|z| / max`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplexPanel {
    pub title: String,
    pub data: Array2<Complex32>,
    /// Amplitude drawn at full brightness; `None`: the largest `|z|`.
    pub max_amplitude: Option<f32>,
    pub pixel_size_m: Option<f64>,
    pub axes: bool,
}

impl ComplexPanel {
    pub fn new(title: impl Into<String>, data: Array2<Complex32>) -> Self {
        ComplexPanel {
            title: title.into(),
            data,
            max_amplitude: None,
            pixel_size_m: None,
            axes: true,
        }
    }

    pub fn with_pixel_size(mut self, pixel_size_m: Option<f64>) -> Self {
        self.pixel_size_m = pixel_size_m;
        self
    }

    pub fn with_axes(mut self, axes: bool) -> Self {
        self.axes = axes;
        self
    }
}

/// Scan positions in object pixels (`(x, y)`, y drawn downwards like the
/// object image), with equal scales on both axes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScanPanel {
    pub title: String,
    /// `(x, y)` in object pixels.
    pub positions_px: Vec<(f64, f64)>,
    /// Radius of the probe footprint circle drawn at each position.
    pub footprint_radius_px: Option<f64>,
    /// Position indices per group (member 0 = the seed): each group gets a
    /// colour and lines from its seed to the other members.
    pub groups: Option<Vec<Vec<usize>>>,
    /// Object size `(W, H)` in pixels: drawn as a frame and used as the extent.
    pub object_size_px: Option<(usize, usize)>,
}

/// One named x/y series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// RGB; `None`: the next palette colour.
    pub color: Option<[u8; 3]>,
    pub dashed: bool,
}

impl Series {
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            label: label.into(),
            x,
            y,
            color: None,
            dashed: false,
        }
    }

    pub fn with_color(mut self, rgb: [u8; 3]) -> Self {
        self.color = Some(rgb);
        self
    }

    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A second y axis on the right (e.g. the learning rate).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecondaryAxis {
    pub label: String,
    pub series: Vec<Series>,
    pub log_y: bool,
}

/// Line plot with a legend, optional log y axis, labelled horizontal
/// reference lines and a second y axis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// `log10` y axis (non-positive values are left out).
    pub log_y: bool,
    /// Horizontal dashed lines `(y, label)`.
    pub hlines: Vec<(f64, String)>,
    pub secondary: Option<SecondaryAxis>,
    pub x_limits: Option<(f64, f64)>,
    pub y_limits: Option<(f64, f64)>,
    /// Draw a dot at every point (short series).
    pub markers: bool,
}

/// Grouped bars: one group of bars per label, one bar per group name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarPanel {
    pub title: String,
    /// Categories along x.
    pub labels: Vec<String>,
    /// Bar series (legend entries), e.g. models or doses.
    pub groups: Vec<String>,
    /// `values[group][label]`; NaN leaves a gap.
    pub values: Vec<Vec<f64>>,
    pub y_label: String,
}

impl Panel {
    /// The panel's title.
    pub fn title(&self) -> &str {
        match self {
            Panel::Image(p) => &p.title,
            Panel::Complex(p) => &p.title,
            Panel::Scan(p) => &p.title,
            Panel::Lines(p) => &p.title,
            Panel::Bars(p) => &p.title,
            Panel::Empty => "",
        }
    }

    /// Checks shapes and indices; the error names the panel.
    pub fn validate(&self) -> Result<()> {
        let what = |s: &str| format!("plot panel `{}`: {s}", self.title());
        match self {
            Panel::Image(p) => {
                if p.data.is_empty() {
                    return Err(Error::value(what("image"), "has no pixels"));
                }
                if let Some((lo, hi)) = p.limits
                    && !(lo.is_finite() && hi.is_finite() && lo < hi)
                {
                    return Err(Error::value(
                        what("limits"),
                        format!("need finite lo < hi, got ({lo}, {hi})"),
                    ));
                }
                check_pixel_size(&what("pixel size"), p.pixel_size_m)
            }
            Panel::Complex(p) => {
                if p.data.is_empty() {
                    return Err(Error::value(what("image"), "has no pixels"));
                }
                check_pixel_size(&what("pixel size"), p.pixel_size_m)
            }
            Panel::Scan(p) => {
                let n = p.positions_px.len();
                for g in p.groups.iter().flatten() {
                    if let Some(i) = g.iter().find(|&&i| i >= n) {
                        return Err(Error::value(
                            what("groups"),
                            format!("member index {i} is out of range for {n} positions"),
                        ));
                    }
                }
                if let Some(r) = p.footprint_radius_px
                    && !(r.is_finite() && r >= 0.0)
                {
                    return Err(Error::value(what("footprint radius"), format!("must be ≥ 0, got {r}")));
                }
                Ok(())
            }
            Panel::Lines(p) => {
                let secondary = p.secondary.iter().flat_map(|s| s.series.iter());
                for s in p.series.iter().chain(secondary) {
                    if s.x.len() != s.y.len() {
                        return Err(Error::shape(
                            what(&format!("series `{}`", s.label)),
                            format!("y as long as x ({})", s.x.len()),
                            format!("{}", s.y.len()),
                        ));
                    }
                }
                for (name, lim) in [("x limits", p.x_limits), ("y limits", p.y_limits)] {
                    if let Some((lo, hi)) = lim
                        && !(lo.is_finite() && hi.is_finite() && lo < hi)
                    {
                        return Err(Error::value(
                            what(name),
                            format!("need finite lo < hi, got ({lo}, {hi})"),
                        ));
                    }
                }
                Ok(())
            }
            Panel::Bars(p) => {
                if p.values.len() != p.groups.len() {
                    return Err(Error::shape(
                        what("bar values"),
                        format!("one row per group ({})", p.groups.len()),
                        format!("{} rows", p.values.len()),
                    ));
                }
                if let Some((g, row)) = p.values.iter().enumerate().find(|(_, r)| r.len() != p.labels.len()) {
                    return Err(Error::shape(
                        what(&format!("bar values of group `{}`", p.groups[g])),
                        format!("one value per label ({})", p.labels.len()),
                        format!("{}", row.len()),
                    ));
                }
                Ok(())
            }
            Panel::Empty => Ok(()),
        }
    }
}

fn check_pixel_size(what: &str, px: Option<f64>) -> Result<()> {
    match px {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(Error::value(what, format!("must be positive, got {v}"))),
        _ => Ok(()),
    }
}

macro_rules! into_panel {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Panel {
            fn from(p: $t) -> Self {
                Panel::$v(p)
            }
        }
    )*};
}
into_panel!(ImagePanel => Image, ComplexPanel => Complex, ScanPanel => Scan, LinePanel => Lines, BarPanel => Bars);
