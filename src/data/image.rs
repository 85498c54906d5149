//! Grayscale images (PNG) as maps in `[0, 1]`, for objects made from pictures.
use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};

/// Loads an image as luminance in `[0, 1]`, resized (bilinear) to `h × w`
/// when its size differs.
pub fn load_grayscale(path: &Path, h: usize, w: usize) -> Result<Array2<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::format(path, format!("not a readable PNG image: {e}")))?
        .into_luma16();
    let img = if img.width() as usize != w || img.height() as usize != h {
        image::imageops::resize(&img, w as u32, h as u32, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    Ok(Array2::from_shape_fn((h, w), |(y, x)| {
        img.get_pixel(x as u32, y as u32)[0] as f32 / 65535.0
    }))
}
