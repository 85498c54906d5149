//! Colour maps: viridis for amplitudes, a twilight-like cyclic map for phases,
//! a blue–white–red diverging map for signed errors, grey; and the
//! hue = phase / value = amplitude rendering of complex values.
use num_complex::Complex32;

/// How scalar values become colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// Perceptually uniform dark blue → green → yellow (matplotlib's default).
    #[default]
    Viridis,
    /// Cyclic, light → blue → dark → red → light: equal colours at both ends,
    /// for phases on −π..π.
    Twilight,
    /// Diverging blue → white → red (ColorBrewer RdBu, reversed): for signed
    /// values symmetric about 0.
    RdBu,
    /// Black → white.
    Gray,
}

/// Colour of pixels whose value is NaN or infinite (masked).
pub const BAD_COLOR: [u8; 3] = [128, 128, 128];

/// Viridis at `k/7`, `k = 0..7` (the published map, sampled).
const VIRIDIS: [[u8; 3]; 8] = [
    [68, 1, 84],
    [70, 50, 127],
    [54, 92, 141],
    [39, 127, 143],
    [31, 162, 136],
    [74, 194, 110],
    [160, 219, 57],
    [254, 232, 37],
];

/// A twilight-like cyclic map (lightness symmetric about the dark middle);
/// first and last anchors are equal so −π and π get the same colour.
const TWILIGHT: [[u8; 3]; 9] = [
    [226, 217, 226],
    [166, 182, 208],
    [99, 126, 192],
    [88, 62, 158],
    [47, 20, 55],
    [122, 33, 75],
    [180, 81, 68],
    [210, 152, 131],
    [226, 217, 226],
];

/// ColorBrewer RdBu (11 classes), reversed so negative values are blue.
const RDBU: [[u8; 3]; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

const GRAY: [[u8; 3]; 2] = [[0, 0, 0], [255, 255, 255]];

/// Ten distinguishable colours for series and groups (matplotlib's tab10).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The `i`-th palette colour (cycling).
pub fn palette(i: usize) -> [u8; 3] {
    PALETTE[i % PALETTE.len()]
}

impl Colormap {
    fn anchors(self) -> &'static [[u8; 3]] {
        match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Twilight => &TWILIGHT,
            Colormap::RdBu => &RDBU,
            Colormap::Gray => &GRAY,
        }
    }

    /// Colour at `t ∈ [0, 1]` (clamped; NaN gives [`BAD_COLOR`]), linear
    /// between the anchors.
    pub fn rgb(self, t: f64) -> [u8; 3] {
        if t.is_nan() {
            return BAD_COLOR;
        }
        let a = self.anchors();
        let x = t.clamp(0.0, 1.0) * (a.len() - 1) as f64;
        let i = (x.floor() as usize).min(a.len() - 2);
        let f = x - i as f64;
        let mix = |k: usize| (a[i][k] as f64 * (1.0 - f) + a[i + 1][k] as f64 * f).round() as u8;
        [mix(0), mix(1), mix(2)]
    }

    /// A 256-entry lookup table, for colouring many pixels.
    pub fn lut(self) -> Vec<[u8; 3]> {
        (0..256).map(|i| self.rgb(i as f64 / 255.0)).collect()
    }
}

/// HSV (all in `[0, 1]`, hue cyclic) → RGB.
pub fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [u8; 3] {
    let h = (h.rem_euclid(1.0)) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let to = |u: f64| ((u + m).clamp(0.0, 1.0) * 255.0).round() as u8;
    [to(r), to(g), to(b)]
}

/// Complex value → colour: hue from the phase (−π red … through the hue
/// circle … π red), brightness `|z| / max_amplitude`.
pub fn complex_rgb(z: Complex32, max_amplitude: f32) -> [u8; 3] {
    if !(z.re.is_finite() && z.im.is_finite()) {
        return BAD_COLOR;
    }
    let v = if max_amplitude > 0.0 {
        (z.norm() / max_amplitude).clamp(0.0, 1.0) as f64
    } else {
        0.0
    };
    let h = (z.arg() as f64 + std::f64::consts::PI) / std::f64::consts::TAU;
    hsv_to_rgb(h, 1.0, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_cyclic_map() {
        assert_eq!(Colormap::Viridis.rgb(0.0), VIRIDIS[0]);
        assert_eq!(Colormap::Viridis.rgb(1.0), VIRIDIS[7]);
        assert_eq!(Colormap::Twilight.rgb(0.0), Colormap::Twilight.rgb(1.0));
        assert_eq!(Colormap::RdBu.rgb(0.5), [247, 247, 247]);
        assert_eq!(Colormap::Gray.rgb(f64::NAN), BAD_COLOR);
        assert_eq!(Colormap::Gray.rgb(7.0), [255, 255, 255]);
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv_to_rgb(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv_to_rgb(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv_to_rgb(2.0 / 3.0, 1.0, 1.0), [0, 0, 255]);
        assert_eq!(complex_rgb(Complex32::new(0.0, 0.0), 1.0), [0, 0, 0]);
    }
}
