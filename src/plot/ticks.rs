//! Tick positions and number formatting for axes, colour bars and scale bars.

/// At most about `max_n` "nice" values (steps of 1, 2 or 5 × 10^k) inside
/// `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, max_n: usize) -> Vec<f64> {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if !(lo.is_finite() && hi.is_finite()) || max_n == 0 {
        return Vec::new();
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        return vec![lo];
    }
    let step = nice_step((hi - lo) / max_n.max(1) as f64);
    let first = (lo / step - 1e-9).ceil();
    let last = (hi / step + 1e-9).floor();
    let mut out = Vec::new();
    let mut k = first;
    while k <= last && out.len() <= 2 * max_n + 2 {
        // exact zero rather than -0.0 or 1e-17
        let v = if k == 0.0 { 0.0 } else { k * step };
        out.push(v);
        k += 1.0;
    }
    out
}

/// The smallest 1, 2 or 5 × 10^k not below `raw`.
fn nice_step(raw: f64) -> f64 {
    let exp = raw.log10().floor();
    let base = 10f64.powf(exp);
    let m = raw / base;
    let nice = if m <= 1.0 + 1e-9 {
        1.0
    } else if m <= 2.0 + 1e-9 {
        2.0
    } else if m <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * base
}

/// Formats ticks so that neighbours differ: enough decimals for the step,
/// scientific notation for very large or small magnitudes, U+2212 minus.
pub fn format_ticks(ticks: &[f64]) -> Vec<String> {
    let step = ticks
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let max = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    ticks.iter().map(|&v| format_with_step(v, step, max)).collect()
}

fn format_with_step(v: f64, step: f64, max: f64) -> String {
    let s = if max >= 1e5 || (max > 0.0 && max < 1e-3) {
        sci(v, step, false)
    } else if !step.is_finite() {
        format_number(v)
    } else {
        let decimals = (-(step.log10().floor())).max(0.0) as usize;
        format!("{v:.decimals$}")
    };
    minus(&s)
}

/// Scientific notation `1.5×10⁻³` with as many digits as the step needs.
fn sci(v: f64, step: f64, trim: bool) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mut exp = v.abs().log10().floor() as i32;
    if v.abs() / 10f64.powi(exp) >= 10.0 - 1e-9 {
        exp += 1;
    }
    let mant = v / 10f64.powi(exp);
    let digits = if step.is_finite() && step > 0.0 {
        (exp - step.log10().floor() as i32).clamp(0, 6) as usize
    } else {
        2
    };
    let mut m = format!("{mant:.digits$}");
    if trim && m.contains('.') {
        m = m.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if m == "1" {
        format!("10{}", superscript(exp))
    } else {
        format!("{m}×10{}", superscript(exp))
    }
}

/// A single number, compact (about 4 significant digits).
pub fn format_number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    let s = if !(1e-3..1e5).contains(&a) {
        sci(v, 10f64.powf(a.log10().floor() - 3.0), true)
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    minus(&s)
}

fn minus(s: &str) -> String {
    s.replace('-', "\u{2212}")
}

/// `n` as superscript digits (`−3` → `⁻³`).
pub fn superscript(n: i32) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let mut s = String::new();
    if n < 0 {
        s.push('⁻');
    }
    for c in n.unsigned_abs().to_string().chars() {
        s.push(DIGITS[c.to_digit(10).unwrap_or(0) as usize]);
    }
    s
}

/// Ticks of a log10 axis given in exponents `[lo, hi]`: whole decades
/// (thinned to at most `max_n`) labelled `10ⁿ`, or, within one decade,
/// nice linear values labelled as numbers.
pub fn log_ticks(lo: f64, hi: f64, max_n: usize) -> Vec<(f64, String)> {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if !(lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let first = (lo - 1e-9).ceil() as i32;
    let last = (hi + 1e-9).floor() as i32;
    if last - first <= 1 && hi - lo >= 0.5 {
        // one or two decades: 1, 2, 5 × 10ⁿ as plain numbers
        let ticks: Vec<(f64, String)> = ((lo.floor() as i32)..=(hi.ceil() as i32))
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .map(|v| (v.log10(), v))
            .filter(|(t, _)| *t >= lo - 1e-9 && *t <= hi + 1e-9)
            .map(|(t, v)| (t, format_number(v)))
            .collect();
        if ticks.len() >= 2 {
            return ticks;
        }
    }
    if last - first >= 1 {
        let every = ((last - first) as usize / max_n.max(1) + 1).max(1);
        return (first..=last)
            .filter(|e| ((e - first) as usize).is_multiple_of(every))
            .map(|e| (e as f64, format!("10{}", superscript(e))))
            .collect();
    }
    let vals = nice_ticks(10f64.powf(lo), 10f64.powf(hi), max_n.min(4));
    vals.into_iter()
        .filter(|v| *v > 0.0)
        .map(|v| (v.log10(), format_number(v)))
        .collect()
}

/// A scale bar for an image `width_px` pixels wide of `pixel_size_m`: a
/// length of 1, 2 or 5 × 10^k metres near a fifth of the width, its
/// length in pixels and its label (`"2 µm"`).
pub fn scale_bar(width_px: usize, pixel_size_m: f64) -> Option<(f64, String)> {
    if !(pixel_size_m.is_finite() && pixel_size_m > 0.0) || width_px == 0 {
        return None;
    }
    let target = 0.2 * width_px as f64 * pixel_size_m;
    let exp = target.log10().floor();
    let base = 10f64.powf(exp);
    let m = target / base;
    let nice = if m >= 5.0 {
        5.0
    } else if m >= 2.0 {
        2.0
    } else {
        1.0
    };
    let length_m = nice * base;
    Some((length_m / pixel_size_m, format_length(length_m)))
}

/// `2e-6` → `"2 µm"`, `5e-7` → `"500 nm"`.
pub fn format_length(m: f64) -> String {
    const UNITS: [(f64, &str); 6] = [
        (1.0, "m"),
        (1e-3, "mm"),
        (1e-6, "µm"),
        (1e-9, "nm"),
        (1e-12, "pm"),
        (1e-15, "fm"),
    ];
    let (scale, unit) = UNITS
        .iter()
        .copied()
        .find(|(s, _)| m >= *s * (1.0 - 1e-9))
        .unwrap_or(UNITS[UNITS.len() - 1]);
    format!("{} {unit}", format_number(m / scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_range_with_round_steps() {
        assert_eq!(
            format_ticks(&nice_ticks(0.0, 1.0, 5)),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(format_ticks(&nice_ticks(-3.0, 3.0, 4)), ["\u{2212}2", "0", "2"]);
        assert_eq!(format_ticks(&[0.0, 1e-4, 2e-4]), ["0", "10⁻⁴", "2×10⁻⁴"]);
        assert!(nice_ticks(1.0, 1.0, 5).len() == 1);
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
    }

    #[test]
    fn log_ticks_are_decades() {
        let t = log_ticks(-0.3, 3.2, 6);
        let labels: Vec<_> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["10⁰", "10¹", "10²", "10³"]);
        assert!(!log_ticks(0.1, 0.6, 5).is_empty());
        let t = log_ticks(-1.3, 0.4, 6);
        let labels: Vec<_> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.1", "0.2", "0.5", "1", "2"]);
    }

    #[test]
    fn scale_bars_use_round_lengths() {
        let (px, label) = scale_bar(100, 100e-9).unwrap();
        assert_eq!(label, "2 µm");
        assert!((px - 20.0).abs() < 1e-9);
        assert_eq!(scale_bar(128, 16e-9).unwrap().1, "200 nm");
        assert_eq!(format_length(1.0e-3), "1 mm");
        assert!(scale_bar(10, f64::NAN).is_none());
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(-12.25), "\u{2212}12.25");
        assert_eq!(format_number(1234.5678), "1235");
        assert_eq!(format_number(2.5e-6), "2.5×10⁻⁶");
    }
}
