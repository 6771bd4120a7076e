//! Everything after (or besides) the JPEG decoder: PNG and WebP through the `image` crate,
//! flattening transparency onto white, the Lanczos3 resize and the EXIF orientation.

use std::io::Cursor;

use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::error::{ImageError, LimitErrorKind};
use image::{ColorType, ImageDecoder, Limits};

use super::probe::{self, Format, Header};
use super::{MediaError, Rgb, MAX_PIXELS};

/// Decodes a PNG or WebP (first frame) whose header was checked, to RGB on a white background.
/// Returns the image and its EXIF orientation.
pub(crate) fn decode(data: &[u8], header: &Header) -> Result<(Rgb, u8), MediaError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(header.width);
    limits.max_image_height = Some(header.height);
    // The decoded image at 16 bits per channel with alpha, plus the decoders' own buffers.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    match header.format {
        Format::Png => {
            let dec = PngDecoder::with_limits(Cursor::new(data), limits).map_err(image_error)?;
            finish(dec, header)
        }
        Format::WebP => {
            let mut dec = WebPDecoder::new(Cursor::new(data)).map_err(image_error)?;
            dec.set_limits(limits).map_err(image_error)?;
            finish(dec, header)
        }
        Format::Jpeg => Err(MediaError::Unsupported(
            "JPEG through the generic decoder".into(),
        )),
    }
}

fn finish(mut dec: impl ImageDecoder, header: &Header) -> Result<(Rgb, u8), MediaError> {
    let (width, height) = dec.dimensions();
    if (width, height) != (header.width, header.height) {
        return Err(MediaError::Corrupt("inconsistent image size".into()));
    }
    let orientation = dec
        .exif_metadata()
        .ok()
        .flatten()
        .and_then(|exif| {
            let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(&exif);
            probe::exif_orientation(tiff)
        })
        .unwrap_or(1);
    let color = dec.color_type();
    let total = usize::try_from(dec.total_bytes())
        .map_err(|_| MediaError::TooManyPixels { width, height })?;
    let mut buf = super::zeroed(total, 1)?;
    dec.read_image(&mut buf).map_err(image_error)?;
    let pixels = if color == ColorType::Rgb8 {
        buf
    } else {
        to_rgb(&buf, color)?
    };
    Ok((
        Rgb {
            pixels,
            width,
            height,
        },
        orientation,
    ))
}

fn image_error(err: ImageError) -> MediaError {
    match err {
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::Truncated
        }
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => MediaError::Corrupt("image size".into()),
            _ => MediaError::Corrupt(format!("image needs too much memory to decode: {l}")),
        },
        ImageError::Unsupported(u) => MediaError::Unsupported(u.to_string()),
        ImageError::Decoding(d) => {
            let msg = d.to_string();
            // png and image-webp say "unexpected end of file" / "EOF" in their own words.
            let lower = msg.to_ascii_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("unexpected end")
            {
                MediaError::Truncated
            } else {
                MediaError::Corrupt(msg)
            }
        }
        other => MediaError::Corrupt(other.to_string()),
    }
}

/// One channel value to 8 bits; 16-bit samples come in native byte order.
fn sample(chunk: &[u8], wide: bool) -> u8 {
    if wide {
        let v = u32::from(u16::from_ne_bytes([chunk[0], chunk[1]]));
        ((v * 255 + 32767) / 65535) as u8
    } else {
        chunk[0]
    }
}

/// Over white: `c * a + 255 * (1 - a)`, in 8 bits.
fn over_white(c: u8, a: u8) -> u8 {
    let (c, a) = (u32::from(c), u32::from(a));
    ((c * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Converts the decoders' layouts to packed RGB8, flattening alpha onto white.
fn to_rgb(buf: &[u8], color: ColorType) -> Result<Vec<u8>, MediaError> {
    let (channels, wide) = match color {
        ColorType::L8 => (1, false),
        ColorType::La8 => (2, false),
        ColorType::Rgb8 => (3, false),
        ColorType::Rgba8 => (4, false),
        ColorType::L16 => (1, true),
        ColorType::La16 => (2, true),
        ColorType::Rgb16 => (3, true),
        ColorType::Rgba16 => (4, true),
        other => return Err(MediaError::Unsupported(format!("pixel format {other:?}"))),
    };
    let step = if wide { 2 } else { 1 };
    let pixel = channels * step;
    let mut rgb = Vec::new();
    rgb.try_reserve_exact(buf.len() / pixel * 3)
        .map_err(|_| MediaError::Corrupt("not enough memory for the image".into()))?;
    for px in buf.chunks_exact(pixel) {
        let s = |i: usize| sample(&px[i * step..], wide);
        let (r, g, b, a) = match channels {
            1 => (s(0), s(0), s(0), 255),
            2 => (s(0), s(0), s(0), s(1)),
            3 => (s(0), s(1), s(2), 255),
            _ => (s(0), s(1), s(2), s(3)),
        };
        if a == 255 {
            rgb.extend([r, g, b]);
        } else {
            rgb.extend([over_white(r, a), over_white(g, a), over_white(b, a)]);
        }
    }
    Ok(rgb)
}

/// The size that fits `max_long` on the long side, keeping the aspect ratio of the original
/// `width` x `height` (each side at least 1 px). Unchanged when it already fits.
pub(crate) fn fit(width: u32, height: u32, max_long: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= max_long {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let s = (u64::from(side) * u64::from(max_long) + u64::from(long) / 2) / u64::from(long);
        s.clamp(1, u64::from(max_long)) as u32
    };
    if width >= height {
        (max_long, scale(height))
    } else {
        (scale(width), max_long)
    }
}

/// Lanczos3 to exactly `width` x `height` (a no-op when the size is already right).
pub(crate) fn resize(src: Rgb, width: u32, height: u32) -> Result<Rgb, MediaError> {
    if (src.width, src.height) == (width, height) {
        return Ok(src);
    }
    let err = |e: &dyn std::fmt::Display| MediaError::Encoder(format!("resize: {e}"));
    let from = FirImage::from_vec_u8(src.width, src.height, src.pixels, PixelType::U8x3)
        .map_err(|e| err(&e))?;
    let mut to = FirImage::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(&from, &mut to, &options)
        .map_err(|e| err(&e))?;
    Ok(Rgb {
        pixels: to.into_vec(),
        width,
        height,
    })
}

/// Turns the stored pixels upright according to the EXIF orientation (1..=8).
pub(crate) fn orient(src: Rgb, orientation: u8) -> Rgb {
    if !(2..=8).contains(&orientation) {
        return src;
    }
    let (w, h) = (src.width as usize, src.height as usize);
    // 5..=8 swap the axes.
    let transposed = orientation >= 5;
    let (dw, dh) = if transposed { (h, w) } else { (w, h) };
    let mut out = vec![0u8; src.pixels.len()];
    for y in 0..h {
        let row = &src.pixels[y * w * 3..(y + 1) * w * 3];
        for x in 0..w {
            // Where stored pixel (x, y) is displayed.
            let (dx, dy) = match orientation {
                2 => (w - 1 - x, y),         // mirrored left-right
                3 => (w - 1 - x, h - 1 - y), // rotated 180
                4 => (x, h - 1 - y),         // mirrored top-bottom
                5 => (y, x),                 // transposed
                6 => (h - 1 - y, x),         // rotate 90 clockwise to display
                7 => (h - 1 - y, w - 1 - x), // transversed
                _ => (y, w - 1 - x),         // 8: rotate 90 counter-clockwise to display
            };
            let at = (dy * dw + dx) * 3;
            out[at..at + 3].copy_from_slice(&row[x * 3..x * 3 + 3]);
        }
    }
    Rgb {
        pixels: out,
        width: dw as u32,
        height: dh as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_sizes() {
        assert_eq!(fit(4000, 3000, 1200), (1200, 900));
        assert_eq!(fit(3000, 4000, 1200), (900, 1200));
        assert_eq!(fit(1200, 800, 1200), (1200, 800));
        assert_eq!(fit(640, 480, 1200), (640, 480));
        assert_eq!(fit(50000, 1, 1200), (1200, 1));
        assert_eq!(fit(1, 50000, 1200), (1, 1200));
        assert_eq!(fit(1080, 2400, 1200), (540, 1200));
    }

    #[test]
    fn orientations_move_the_corner() {
        // 3x2 image, stored top-left pixel is marked.
        let mut pixels = vec![0u8; 3 * 2 * 3];
        pixels[0] = 255;
        let src = Rgb {
            pixels,
            width: 3,
            height: 2,
        };
        // Where the marked pixel must be displayed, and the displayed size.
        let expect = [
            (1, (0, 0), (3, 2)),
            (2, (2, 0), (3, 2)),
            (3, (2, 1), (3, 2)),
            (4, (0, 1), (3, 2)),
            (5, (0, 0), (2, 3)),
            (6, (1, 0), (2, 3)),
            (7, (1, 2), (2, 3)),
            (8, (0, 2), (2, 3)),
        ];
        for (o, (x, y), (w, h)) in expect {
            let out = orient(src.clone(), o);
            assert_eq!((out.width, out.height), (w, h), "orientation {o}");
            let at = ((y * w + x) * 3) as usize;
            assert_eq!(out.pixels[at], 255, "orientation {o}");
            assert_eq!(out.pixels.iter().filter(|&&v| v == 255).count(), 1);
        }
    }

    #[test]
    fn alpha_goes_onto_white() {
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(0, 255), 0);
        assert_eq!(over_white(0, 128), 127);
        let rgba = [10, 20, 30, 255, 0, 0, 0, 0];
        assert_eq!(
            to_rgb(&rgba, ColorType::Rgba8).unwrap(),
            vec![10, 20, 30, 255, 255, 255]
        );
        let la16: Vec<u8> = [0u16, 65535].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(to_rgb(&la16, ColorType::La16).unwrap(), vec![0, 0, 0]);
    }
}
