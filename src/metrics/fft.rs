//! A small f64 FFT for the metrics (FRC, registration): iterative radix-2
//! for powers of two, Bluestein's chirp-z for every other length. Forward
//! is `X_k = Σ x_n e^{−2πi kn/N}` (numpy's sign); the inverse divides by N.
use ndarray::Array2;
use num_complex::Complex64;

/// A plan for one transform length.
pub(crate) struct Fft {
    n: usize,
    kind: Kind,
}

enum Kind {
    /// `twiddles[k] = e^{−2πi k/n}`, k < n/2.
    Radix2 { twiddles: Vec<Complex64> },
    /// `chirp[k] = e^{−πi k²/n}`; `kernel` is the FFT (length `inner.n`) of
    /// the conjugate chirp laid out circularly.
    Bluestein {
        chirp: Vec<Complex64>,
        kernel: Vec<Complex64>,
        inner: Box<Fft>,
    },
}

impl Fft {
    pub(crate) fn new(n: usize) -> Self {
        if n.is_power_of_two() {
            let twiddles = (0..n / 2)
                .map(|k| Complex64::from_polar(1.0, -2.0 * std::f64::consts::PI * k as f64 / n as f64))
                .collect();
            return Fft {
                n,
                kind: Kind::Radix2 { twiddles },
            };
        }
        let m = (2 * n - 1).next_power_of_two();
        let inner = Box::new(Fft::new(m));
        // k² mod 2n keeps the chirp angle exact for large k
        let two_n = 2 * n as u128;
        let chirp: Vec<Complex64> = (0..n)
            .map(|k| {
                let k2 = ((k as u128 * k as u128) % two_n) as f64;
                Complex64::from_polar(1.0, -std::f64::consts::PI * k2 / n as f64)
            })
            .collect();
        let mut kernel = vec![Complex64::new(0.0, 0.0); m];
        kernel[0] = chirp[0].conj();
        for k in 1..n {
            kernel[k] = chirp[k].conj();
            kernel[m - k] = chirp[k].conj();
        }
        inner.forward(&mut kernel);
        Fft {
            n,
            kind: Kind::Bluestein { chirp, kernel, inner },
        }
    }

    /// In-place forward transform (unnormalised).
    pub(crate) fn forward(&self, buf: &mut [Complex64]) {
        debug_assert_eq!(buf.len(), self.n);
        match &self.kind {
            Kind::Radix2 { twiddles } => radix2(buf, twiddles),
            Kind::Bluestein { chirp, kernel, inner } => {
                let m = kernel.len();
                let mut a = vec![Complex64::new(0.0, 0.0); m];
                for (ak, (x, w)) in a.iter_mut().zip(buf.iter().zip(chirp)) {
                    *ak = x * w;
                }
                inner.forward(&mut a);
                for (ak, bk) in a.iter_mut().zip(kernel) {
                    *ak *= bk;
                }
                inner.inverse(&mut a);
                for (x, (ak, w)) in buf.iter_mut().zip(a.iter().zip(chirp)) {
                    *x = ak * w;
                }
            }
        }
    }

    /// In-place inverse transform, divided by N.
    pub(crate) fn inverse(&self, buf: &mut [Complex64]) {
        buf.iter_mut().for_each(|x| *x = x.conj());
        self.forward(buf);
        let s = 1.0 / self.n as f64;
        buf.iter_mut().for_each(|x| *x = x.conj() * s);
    }
}

fn radix2(buf: &mut [Complex64], twiddles: &[Complex64]) {
    let n = buf.len();
    if n <= 1 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            buf.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        let step = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..half {
                let w = twiddles[k * step];
                let u = buf[start + k];
                let v = buf[start + k + half] * w;
                buf[start + k] = u + v;
                buf[start + k + half] = u - v;
            }
        }
        len *= 2;
    }
}

/// 2-D transform in place: every row, then every column.
pub(crate) fn fft2(a: &mut Array2<Complex64>, inverse: bool) {
    let (h, w) = a.dim();
    let row_plan = Fft::new(w);
    let mut buf = vec![Complex64::new(0.0, 0.0); w.max(h)];
    for mut row in a.rows_mut() {
        let b = &mut buf[..w];
        b.iter_mut().zip(row.iter()).for_each(|(d, s)| *d = *s);
        if inverse {
            row_plan.inverse(b);
        } else {
            row_plan.forward(b);
        }
        row.iter_mut().zip(b.iter()).for_each(|(d, s)| *d = *s);
    }
    let col_plan = Fft::new(h);
    for mut col in a.columns_mut() {
        let b = &mut buf[..h];
        b.iter_mut().zip(col.iter()).for_each(|(d, s)| *d = *s);
        if inverse {
            col_plan.inverse(b);
        } else {
            col_plan.forward(b);
        }
        col.iter_mut().zip(b.iter()).for_each(|(d, s)| *d = *s);
    }
}

/// numpy's `fftfreq(n)`: `[0, 1, …, ⌈n/2⌉−1, −⌊n/2⌋, …, −1] / n` cycles per sample.
pub(crate) fn fftfreq(n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            let k = if k < n.div_ceil(2) {
                k as f64
            } else {
                k as f64 - n as f64
            };
            k / n as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dft(x: &[Complex64]) -> Vec<Complex64> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let ang = -2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
                        v * Complex64::from_polar(1.0, ang)
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn matches_naive_dft_for_all_small_lengths() {
        for n in 1..=40 {
            let x: Vec<Complex64> = (0..n)
                .map(|j| Complex64::new((j as f64 * 0.37).sin() + 0.1 * j as f64, (j as f64 * 1.3).cos()))
                .collect();
            let want = naive_dft(&x);
            let plan = Fft::new(n);
            let mut got = x.clone();
            plan.forward(&mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).norm() < 1e-9 * (1.0 + w.norm()), "n={n}: {g} vs {w}");
            }
            plan.inverse(&mut got);
            for (g, w) in got.iter().zip(&x) {
                assert!((g - w).norm() < 1e-10, "n={n} round trip");
            }
        }
    }

    #[test]
    fn fftfreq_matches_numpy() {
        assert_eq!(fftfreq(4), vec![0.0, 0.25, -0.5, -0.25]);
        assert_eq!(fftfreq(5), vec![0.0, 0.2, 0.4, -0.4, -0.2]);
    }
}
