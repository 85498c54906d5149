//! Figures: every kind renders to PNG and SVG; the PNG has the requested size
//! and shows the data where it should (square pixels, the right halves), the
//! SVG holds the expected text and stays small; notebook output follows the
//! evcxr MIME block format; `save` picks the format by extension.
mod common;

use std::collections::HashSet;
use std::f32::consts::PI;

use common::*;
use ndarray::Array2;
use num_complex::Complex32;
use ptycho_workbench::grouping::{GroupingConfig, group};
use ptycho_workbench::plot::{
    self, BarPanel, Colormap, ComplexPanel, Figure, ImagePanel, LinePanel, Panel, ScanPanel, Series,
};
use ptycho_workbench::recon::{ReconMetadata, Reconstruction};
use ptycho_workbench::simulate::simulate;
use ptycho_workbench::train::{EpochRecord, History};

/// Viridis end points (what 0 and 1 map to with limits 0..1).
const LOW: [u8; 3] = [68, 1, 84];
const HIGH: [u8; 3] = [254, 232, 37];

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("PNG decodes")
        .to_rgb8()
}

/// Decodes, checks the size and that the picture is not blank: several
/// distinct colours and a spread of luminance.
fn check_png(png: &[u8], size: (u32, u32)) -> image::RgbImage {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let img = decode(png);
    assert_eq!(img.dimensions(), size);
    let colours: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() >= 8, "only {} distinct colours", colours.len());
    let lum: Vec<f64> = img
        .pixels()
        .map(|p| 0.299 * p.0[0] as f64 + 0.587 * p.0[1] as f64 + 0.114 * p.0[2] as f64)
        .collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let std = (lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64).sqrt();
    assert!(std > 10.0, "luminance std {std}");
    img
}

/// Renders both formats; checks the PNG and that the SVG names every text.
fn check_figure(fig: &Figure, texts: &[&str]) -> TestResult {
    check_png(&fig.to_png()?, fig.size());
    let svg = fig.to_svg()?;
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
    for t in texts {
        // `>x<` asks for a whole text element (plotters writes `<text …>\nx\n</text>`)
        let found = match t.strip_prefix('>').and_then(|t| t.strip_suffix('<')) {
            Some(exact) => svg.contains(&format!(">\n{exact}\n<")),
            None => svg.contains(t),
        };
        assert!(found, "SVG lacks `{t}`");
    }
    assert!(svg.len() < 1_000_000, "SVG is {} bytes", svg.len());
    Ok(())
}

/// Bounding box `(x0, y0, x1, y1)` (inclusive) of the rows and columns where
/// at least `min` pixels have one of `colours`.
fn region(img: &image::RgbImage, colours: &[[u8; 3]], min: usize) -> (u32, u32, u32, u32) {
    let (w, h) = img.dimensions();
    let hit = |x, y| colours.contains(&img.get_pixel(x, y).0);
    let cols: Vec<u32> = (0..w)
        .filter(|&x| (0..h).filter(|&y| hit(x, y)).count() >= min)
        .collect();
    let rows: Vec<u32> = (0..h)
        .filter(|&y| (0..w).filter(|&x| hit(x, y)).count() >= min)
        .collect();
    assert!(!cols.is_empty() && !rows.is_empty(), "no region of {colours:?}");
    (cols[0], rows[0], *cols.last().unwrap(), *rows.last().unwrap())
}

fn half_and_half(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(_, j)| if j < cols / 2 { 0.0 } else { 1.0 })
}

#[test]
fn image_pixels_are_square_and_where_the_data_says() -> TestResult {
    for (rows, cols) in [(64, 64), (32, 96), (96, 40)] {
        let fig = Figure::single(ImagePanel::new("halves", half_and_half(rows, cols)).with_limits(0.0, 1.0));
        let img = check_png(&fig.to_png()?, fig.size());
        let (x0, y0, x1, y1) = region(&img, &[LOW, HIGH], 20);
        let (w, h) = ((x1 - x0 + 1) as f64, (y1 - y0 + 1) as f64);
        let aspect = (w / h) / (cols as f64 / rows as f64);
        assert!((aspect - 1.0).abs() < 0.03, "{rows}×{cols}: drawn {w}×{h}");
        assert!(w > 150.0 || h > 150.0, "image drawn small: {w}×{h}");
        // the low half is on the left, the high half on the right
        let (lx0, _, lx1, _) = region(&img, &[LOW], 20);
        let (hx0, _, hx1, _) = region(&img, &[HIGH], 20);
        assert!(
            lx0 == x0 && hx1 == x1 && lx1 < hx0,
            "left {lx0}..{lx1}, right {hx0}..{hx1}"
        );
        assert!(((lx1 - lx0) as f64 - (hx1 - hx0) as f64).abs() <= 2.0);
    }
    Ok(())
}

#[test]
fn image_panels_label_their_colour_bars() -> TestResult {
    let ramp = Array2::from_shape_fn((48, 48), |(i, j)| (i + j) as f32 / 94.0);
    let fig = Figure::single(ImagePanel::amplitude("ramp amplitude", ramp).with_pixel_size(Some(20e-9)))
        .with_title("ramp figure");
    check_figure(
        &fig,
        &[
            "ramp figure",
            "ramp amplitude",
            "x (px)",
            "y (px)",
            ">0.0<",
            ">1.0<",
            ">0.4<",
            "amplitude",
            "100 nm",
        ],
    )?;

    let phase = Array2::from_shape_fn((40, 40), |(i, j)| (i as f32 - 20.0).atan2(j as f32 - 20.0));
    check_figure(
        &Figure::single(ImagePanel::phase("phase map", phase)),
        &["phase map", "−π", "π/2", ">0<", "phase (rad)"],
    )?;

    let pattern = Array2::from_shape_fn((64, 64), |(i, j)| {
        let r2 = (i as f32 - 32.0).powi(2) + (j as f32 - 32.0).powi(2);
        1e4 * (-r2 / 40.0).exp()
    });
    check_figure(
        &Figure::single(ImagePanel::log10("log pattern", pattern)),
        &["log pattern", "10⁴", "10⁰"],
    )?;

    let signed = Array2::from_shape_fn((30, 30), |(i, j)| (i as f32 - j as f32) / 30.0);
    let fig = Figure::single(ImagePanel::diverging("signed", signed).with_colormap(Colormap::RdBu));
    check_figure(&fig, &["signed", "\u{2212}0.5", "0.5"])
}

#[test]
fn complex_images_show_phase_as_hue_with_a_legend() -> TestResult {
    let z = Array2::from_shape_fn((50, 50), |(i, j)| {
        Complex32::from_polar(j as f32 / 49.0, (i as f32 / 49.0 - 0.5) * 2.0 * PI)
    });
    let fig = plot::complex_image("complex wave", &z);
    check_figure(&fig, &["complex wave", "hue: phase", "value: |z|", "max 1"])?;
    let fig = Figure::single(ComplexPanel::new("no axes", z).with_axes(false));
    let img = check_png(&fig.to_png()?, fig.size());
    // saturated hues: red, green and blue all appear
    let strong = |k: usize| {
        img.pixels()
            .filter(|p| (0..3).all(|c| if c == k { p.0[c] > 200 } else { p.0[c] < 60 }))
            .count()
    };
    assert!(strong(0) > 100 && strong(1) > 100 && strong(2) > 100);
    Ok(())
}

#[test]
fn dataset_figures_render() -> TestResult {
    init();
    let ds = simulate(&small_config())?;
    let fig = plot::dataset_overview(&ds)?;
    assert_eq!(fig.grid(), (2, 3));
    check_figure(
        &fig,
        &[
            "dataset:",
            "diffraction #0 (log scale)",
            "probe amplitude",
            "probe phase",
            "object amplitude",
            "object phase",
            "positions, footprint r =",
        ],
    )?;
    let mut no_object = ds.clone();
    no_object.object = None;
    assert_eq!(plot::dataset_overview(&no_object)?.grid(), (2, 2));

    check_figure(&plot::diffraction(&ds, 1)?, &["diffraction #1"])?;
    let err = plot::diffraction(&ds, ds.n_images()).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");

    let groups = group(
        &ds.positions_px,
        &GroupingConfig {
            gridsize: 2,
            n_groups: Some(6),
            ..GroupingConfig::default()
        },
    )?;
    check_figure(&plot::scan_positions(&ds, Some(&groups))?, &["x (px)", "y (px)"])?;
    Ok(())
}

fn history(n: usize, with_val: bool) -> History {
    History {
        epochs: (1..=n)
            .map(|e| EpochRecord {
                epoch: e,
                train_loss: 2.0 / e as f64,
                val_loss: with_val.then(|| 2.5 / e as f64 + 0.1),
                learning_rate: 1e-3 * 0.5f64.powi((e / 4) as i32),
                seconds: 1.0,
            })
            .collect(),
    }
}

#[test]
fn training_history_has_losses_and_learning_rate() -> TestResult {
    let fig = plot::history(&history(20, true))?;
    check_figure(
        &fig,
        &[
            "training history",
            "train",
            "validation",
            "learning rate",
            "epoch",
            "loss (log scale)",
        ],
    )?;
    check_figure(&plot::history(&history(3, false))?, &["train"])?;
    assert!(plot::history(&History::default()).is_err());
    Ok(())
}

fn reconstruction(n: usize) -> Reconstruction {
    let object = Array2::from_shape_fn((n, n), |(i, j)| {
        if i < 4 {
            Complex32::new(0.0, 0.0)
        } else {
            Complex32::from_polar(0.5 + (i as f32 / n as f32), j as f32 / 20.0)
        }
    });
    let coverage = object.mapv(|z| if z.norm() > 0.0 { 2.0 } else { 0.0 });
    Reconstruction {
        object,
        coverage,
        // through serde, so fields added later with defaults need no change here
        metadata: serde_json::from_value::<ReconMetadata>(serde_json::json!({
            "format": "test",
            "source": "pinn inference",
            "bundle_sha256": null,
            "n_groups": 7,
            "seconds_inference": 0.0,
            "seconds_stitch": 0.0,
        }))
        .expect("metadata"),
    }
}

#[test]
fn reconstruction_and_comparison_render() -> TestResult {
    let r = reconstruction(48);
    check_figure(
        &plot::reconstruction(&r)?,
        &[
            "reconstruction (pinn inference), 48×48",
            "amplitude",
            "phase",
            "coverage",
        ],
    )?;

    let truth = &r.object;
    let noisy = truth.mapv(|z| z * Complex32::from_polar(1.1, 0.3));
    let fig = plot::comparison(truth, &[("PINN", &noisy), ("baseline", truth)])?;
    assert_eq!(fig.grid(), (3, 4));
    check_figure(
        &fig,
        &[
            "truth: amplitude",
            "PINN: phase error",
            "baseline: amplitude error",
            "global phase offset removed",
        ],
    )?;
    // the same amplitude colour limits in every row
    let limits: Vec<_> = (0..3)
        .map(|row| match fig.panel(row, 0) {
            Some(Panel::Image(p)) => p.limits,
            _ => None,
        })
        .collect();
    assert!(limits[0].is_some() && limits.iter().all(|l| *l == limits[0]));
    let wrong = Array2::<Complex32>::zeros((10, 10));
    let err = plot::comparison(truth, &[("wrong", &wrong)]).unwrap_err().to_string();
    assert!(err.contains("wrong"), "{err}");
    Ok(())
}

/// Share of the picture's pixel rows that are white from edge to edge.
fn blank_row_fraction(img: &image::RgbImage) -> f64 {
    let blank = (0..img.height())
        .filter(|&y| (0..img.width()).all(|x| img.get_pixel(x, y).0 == [255, 255, 255]))
        .count();
    blank as f64 / img.height() as f64
}

#[test]
fn comparison_rows_follow_the_images_aspect_ratio() -> TestResult {
    // a region three times wider than tall (a test half scanned across):
    // rows as tall as square ones left most of the figure blank
    let wide = Array2::from_shape_fn((40, 120), |(i, j)| {
        Complex32::from_polar(0.6 + 0.3 * ((i + j) % 7) as f32 / 7.0, (j as f32 / 30.0).sin())
    });
    let pred = wide.mapv(|z| z * Complex32::from_polar(0.9, 0.2));
    let fig = plot::comparison(&wide, &[("PINN", &pred), ("ePIE", &wide)])?;
    let square = plot::comparison(&reconstruction(48).object, &[("PINN", &reconstruction(48).object)])?;
    let (w, h) = fig.size();
    assert_eq!(w, square.size().0);
    // three rows of a 1:3 region are not taller than two rows of a square one
    assert!(h < square.size().1, "{h} vs {}", square.size().1);
    let img = check_png(&fig.to_png()?, (w, h));
    let blank = blank_row_fraction(&img);
    assert!(blank < 0.45, "{:.0} % of the rows are blank", 100.0 * blank);
    // and a tall region gets taller rows, within the cap
    let tall = Array2::from_elem((200, 50), Complex32::new(1.0, 0.1));
    let t = plot::comparison(&tall, &[("x", &tall)])?;
    assert!(t.size().1 > square.size().1);
    assert!(t.size().1 <= 2 * 616 + 40);
    Ok(())
}

#[test]
fn curves_and_bars_render() -> TestResult {
    let f: Vec<f64> = (0..50).map(|i| i as f64 / 100.0).collect();
    let curve = |k: f64| f.iter().map(|x| (-k * x).exp()).collect::<Vec<_>>();
    let fig = plot::frc(&[
        ("PINN".into(), f.clone(), curve(5.0)),
        ("baseline".into(), f.clone(), curve(9.0)),
    ])?;
    check_figure(
        &fig,
        &[
            "Fourier ring correlation",
            "cycles/pixel",
            "1/7",
            ">0.5<",
            "PINN",
            "baseline",
        ],
    )?;

    let fig = plot::metric_bars(
        &["1e4", "1e6", "1e9"],
        &["PINN", "supervised"],
        &[vec![20.0, 25.0, 30.0], vec![18.0, f64::NAN, 27.0]],
        "PSNR (dB)",
    )?;
    check_figure(&fig, &["PSNR (dB)", "1e4", "1e9", "supervised"])?;
    let long = ["a rather long label one", "another long label", "third"];
    check_figure(
        &plot::metric_bars(&long, &["only"], &[vec![0.1, -0.2, 0.3]], "SSIM")?,
        &["another long label"],
    )?;
    assert!(plot::metric_bars(&["a"], &["x", "y"], &[vec![1.0]], "m").is_err());

    let fig = plot::lines(
        "curves",
        "time (s)",
        "signal",
        vec![
            Series::new("sin", f.clone(), f.iter().map(|x| (10.0 * x).sin()).collect()),
            Series::new("cos", f.clone(), f.iter().map(|x| (10.0 * x).cos()).collect()).dashed(),
        ],
    )?;
    check_figure(&fig, &["curves", "time (s)", "signal", "sin", "cos"])?;
    assert!(plot::lines("bad", "x", "y", vec![Series::new("s", vec![1.0, 2.0], vec![1.0])]).is_err());
    Ok(())
}

#[test]
fn grids_mix_panel_kinds_and_reject_bad_cells() -> TestResult {
    let mut fig = Figure::new(2, 2).with_title("mixed").with_size(900, 700);
    fig.set(0, 0, ImagePanel::new("img", half_and_half(16, 16)))?;
    fig.set(
        0,
        1,
        ScanPanel {
            title: "scan".into(),
            positions_px: vec![(10.0, 10.0), (20.0, 15.0), (30.0, 12.0)],
            footprint_radius_px: Some(6.0),
            groups: Some(vec![vec![0, 1, 2]]),
            object_size_px: Some((40, 30)),
        },
    )?;
    fig.set(
        1,
        0,
        LinePanel {
            title: "lines".into(),
            series: vec![Series::new("a", vec![1.0, 2.0, 3.0], vec![1.0, 10.0, 100.0])],
            log_y: true,
            markers: true,
            ..LinePanel::default()
        },
    )?;
    fig.set(
        1,
        1,
        BarPanel {
            title: "bars".into(),
            labels: vec!["p".into(), "q".into()],
            groups: vec!["g".into()],
            values: vec![vec![1.0, 2.0]],
            y_label: "v".into(),
        },
    )?;
    assert_eq!(fig.size(), (900, 700));
    check_figure(&fig, &["mixed", "img", "scan", "lines", "bars", "10²"])?;
    assert!(fig.set(2, 0, Panel::Empty).is_err());
    let mut bad = Figure::new(1, 1);
    bad.set(
        0,
        0,
        ScanPanel {
            positions_px: vec![(1.0, 1.0)],
            groups: Some(vec![vec![0, 5]]),
            ..ScanPanel::default()
        },
    )?;
    let err = bad.to_png().unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    assert!(Figure::new(1, 1).with_size(10, 10).to_png().is_err());
    Ok(())
}

#[test]
fn svg_embeds_images_as_png_and_stays_small() -> TestResult {
    // a noisy 256×256 image: per-pixel rectangles would be several MB
    let mut state = 12345u64;
    let noise = Array2::from_shape_fn((256, 256), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    });
    let fig = Figure::single(ImagePanel::new("noise", noise));
    let svg = fig.to_svg()?;
    assert!(svg.len() < 1_000_000, "SVG is {} bytes", svg.len());
    assert_eq!(svg.matches("<image ").count(), 2, "image and colour bar");
    assert!(svg.contains("href=\"data:image/png;base64,iVBORw0KGgo"));
    assert!(svg.contains("image-rendering:pixelated"));
    Ok(())
}

#[test]
fn notebook_output_is_an_evcxr_mime_block() -> TestResult {
    let fig = plot::image("tiny", &half_and_half(8, 8));
    let block = fig.evcxr_content()?;
    let body = block
        .strip_prefix("EVCXR_BEGIN_CONTENT image/png\n")
        .and_then(|b| b.strip_suffix("\nEVCXR_END_CONTENT\n"))
        .expect("MIME block");
    assert!(!body.contains('\n'));
    assert_eq!(body, plot::base64(&fig.to_png()?));
    assert!(body.starts_with("iVBORw0KGgo"), "PNG signature in base64");

    let html = plot::html_table(
        &["model".into(), "PSNR <dB>".into()],
        &[vec!["PINN & co".into(), "31.2".into()], vec!["short".into()]],
    );
    assert!(html.contains("<th") && html.contains("PSNR &lt;dB&gt;") && html.contains("PINN &amp; co"));
    assert!(html.contains("text-align:right\">31.2</td>"));
    assert_eq!(html.matches("<tr>").count(), 2 + 1);
    assert_eq!(
        plot::mime_block("text/html", "<b>x</b>"),
        "EVCXR_BEGIN_CONTENT text/html\n<b>x</b>\nEVCXR_END_CONTENT\n"
    );

    let table = history(3, false).to_table()?;
    let html = plot::table_html(&table);
    for col in ["epoch", "train_loss", "val_loss", "learning_rate"] {
        assert!(html.contains(&format!(">{col}</th>")), "{col}");
    }
    assert_eq!(html.matches("<tr>").count(), 1 + 3);
    assert!(html.contains(">0.666667</td>"), "{html}");
    Ok(())
}

#[test]
fn save_picks_the_format_by_extension() -> TestResult {
    let dir = tempfile::tempdir()?;
    let fig = plot::image("saved", &half_and_half(16, 16));
    let png = dir.path().join("fig.PNG");
    fig.save(&png)?;
    check_png(&std::fs::read(&png)?, fig.size());
    let svg = dir.path().join("fig.svg");
    fig.save(&svg)?;
    assert!(std::fs::read_to_string(&svg)?.contains(">\nsaved\n<"));
    for name in ["fig.bmp", "fig"] {
        let err = fig.save(&dir.path().join(name)).unwrap_err().to_string();
        assert!(err.contains("use .png or .svg") && err.contains(name), "{err}");
        assert!(!dir.path().join(name).exists());
    }
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 2, "no temporary files left");
    Ok(())
}

/// With `PTYCHO_PLOT_SAMPLES=<dir>`, writes every figure kind there as PNG
/// and SVG for a person to look at; otherwise does nothing.
#[test]
fn write_samples_for_review() -> TestResult {
    let Some(dir) = std::env::var_os("PTYCHO_PLOT_SAMPLES") else {
        return Ok(());
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    init();
    let ds = simulate(&small_config())?;
    let groups = group(
        &ds.positions_px,
        &GroupingConfig {
            gridsize: 2,
            n_groups: Some(8),
            ..GroupingConfig::default()
        },
    )?;
    let r = reconstruction(96);
    let truth = ds.object.clone().expect("simulated object");
    let blurred = truth.mapv(|z| z * Complex32::from_polar(0.9, 0.4));
    let f: Vec<f64> = (0..64).map(|i| i as f64 / 128.0).collect();
    let curve = |k: f64| f.iter().map(|x| (-k * x).exp()).collect::<Vec<_>>();
    let figures = [
        ("overview", plot::dataset_overview(&ds)?),
        ("diffraction", plot::diffraction(&ds, 0)?),
        ("scan", plot::scan_positions(&ds, Some(&groups))?),
        ("history", plot::history(&history(40, true))?),
        ("reconstruction", plot::reconstruction(&r)?),
        (
            "comparison",
            plot::comparison(&truth, &[("PINN", &blurred), ("same", &truth)])?,
        ),
        (
            "frc",
            plot::frc(&[
                ("PINN".into(), f.clone(), curve(4.0)),
                ("baseline".into(), f.clone(), curve(8.0)),
            ])?,
        ),
        (
            "bars",
            plot::metric_bars(
                &["1e4", "1e5", "1e6", "1e9"],
                &["PINN", "supervised"],
                &[vec![21.0, 24.5, 28.0, 30.0], vec![18.0, 22.0, 26.5, 31.0]],
                "PSNR (dB)",
            )?,
        ),
        ("complex", plot::complex_image("object", &truth)),
        (
            "halves",
            Figure::single(ImagePanel::new("halves", half_and_half(32, 96))),
        ),
        (
            "long_bars",
            plot::metric_bars(
                &[
                    "amplitude PSNR",
                    "phase PSNR",
                    "amplitude SSIM ×100",
                    "phase FRC50 (px⁻¹ ×100)",
                ],
                &["only"],
                &[vec![25.0, 21.0, -3.0, 12.0]],
                "score",
            )?,
        ),
    ];
    let big = Array2::from_shape_fn((512, 512), |(i, j)| {
        ((i as f32 / 9.0).sin() * (j as f32 / 7.0).cos()).abs()
    });
    let big = Figure::single(ImagePanel::new("512×512", big));
    let t = std::time::Instant::now();
    let png = big.to_png()?;
    eprintln!("512×512 image panel: PNG in {:?} ({} bytes)", t.elapsed(), png.len());
    for (name, fig) in figures {
        fig.save(&dir.join(format!("{name}.png")))?;
        fig.save(&dir.join(format!("{name}.svg")))?;
    }
    Ok(())
}

#[test]
fn notebook_tables_and_the_history_file_round_trip() -> TestResult {
    // history.csv → History → the same records (what `ptycho demo` and bundles rely on)
    let h = history(5, true);
    let back = History::from_csv(&h.to_csv())?;
    assert_eq!(back.epochs.len(), 5);
    for (a, b) in h.epochs.iter().zip(&back.epochs) {
        assert_eq!(a.epoch, b.epoch);
        assert!((a.train_loss - b.train_loss).abs() < 1e-9 * a.train_loss.abs());
        assert!((a.val_loss.unwrap() - b.val_loss.unwrap()).abs() < 1e-9);
    }
    let no_val = History::from_csv(&history(2, false).to_csv())?;
    assert!(no_val.epochs.iter().all(|r| r.val_loss.is_none()));
    assert!(History::from_csv("epoch,loss\n1,2\n").is_err());
    assert!(History::from_csv("epoch,train_loss,val_loss,learning_rate,seconds\n1,x,,1e-3,1\n").is_err());

    // HTML tables: the history, a dataset summary, a table
    let html = h.to_html();
    assert_eq!(html.matches("<tr>").count(), 1 + 5, "{html}");
    assert!(html.contains("train loss") && html.contains("1.00e-3"));
    let ds = simulate(&small_config())?;
    let summary = ds.summary().to_html();
    assert!(summary.contains("patterns") && summary.contains("32×32"), "{summary}");
    let t = h.to_table()?.to_html();
    assert!(t.contains("train_loss") && t.contains("<table"));
    // figures from the data types
    assert_eq!(ds.plot()?.to_png()?.len(), plot::dataset_overview(&ds)?.to_png()?.len());
    Ok(())
}

#[test]
fn probe_modes_are_titled_with_their_power_shares() -> TestResult {
    // powers 9 : 3 : 1 (constant modes of amplitude 3, √3, 1): 69.2 %, 23.1 %, 7.7 %
    let n = 16;
    let mut modes = ndarray::Array3::<Complex32>::zeros((3, n, n));
    for (k, a) in [3.0f32, 3f32.sqrt(), 1.0].iter().enumerate() {
        modes.index_axis_mut(ndarray::Axis(0), k).fill(Complex32::new(0.0, *a));
    }
    let fig = plot::probe_modes(&modes)?;
    assert_eq!(fig.grid(), (1, 3));
    check_figure(&fig, &["mode 1: 69.2 %", "mode 2: 23.1 %", "mode 3: 7.7 %"])?;
    assert!(plot::probe_modes(&ndarray::Array3::zeros((0, n, n))).is_err());
    Ok(())
}

#[test]
fn position_corrections_draw_arrows_and_what_is_left() -> TestResult {
    let given = ndarray::array![[10.0, 10.0], [30.0, 10.0], [20.0, 30.0]];
    // corrected: each moved by (1, 0); truth: corrected plus (5, 5) everywhere (a common
    // offset, invisible) and (0, 2) more for the last one
    let corrected = &given + &ndarray::array![[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]];
    let truth = &corrected + &ndarray::array![[5.0, 5.0], [5.0, 5.0], [5.0, 7.0]];
    let fig = plot::position_corrections(&given, &corrected, Some(&truth))?;
    assert_eq!(fig.grid(), (1, 2));
    // offsets (0, 0, 2) in y less their mean 2/3: RMS = √((4/9 + 4/9 + 16/9)/3) = 0.9428
    let Some(Panel::Scan(right)) = fig.panel(0, 1) else {
        panic!("a scan panel")
    };
    assert!(right.title.contains("0.9428"), "{}", right.title);
    assert_eq!(right.positions_px.len(), 6);
    let Some(Panel::Scan(left)) = fig.panel(0, 0) else {
        panic!("a scan panel")
    };
    assert!(left.title.ends_with("corrected: RMS 1 px"), "{}", left.title);
    check_figure(&fig, &["position correction of 3 positions"])?;
    assert!(plot::position_corrections(&given, &corrected.slice(ndarray::s![..2, ..]).to_owned(), None).is_err());
    Ok(())
}
