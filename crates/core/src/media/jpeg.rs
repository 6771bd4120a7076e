//! JPEG through libjpeg-turbo: decoding at a reduced scale (the DCT does most of the shrinking,
//! so a 12-megapixel photo is never held at full size) and the final encoding.

use turbojpeg::{Colorspace, Compressor, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp};

use super::probe::Header;
use super::{MediaError, Rgb, JPEG_QUALITY};

/// Most progressive scans a JPEG may have. Real encoders write about ten; a file with thousands
/// makes decoding take minutes (the "progressive JPEG" denial of service libjpeg-turbo documents).
const MAX_SCANS: u32 = 500;

/// The smallest scale M/8 (M in 1..=8) at which the long side is still at least `min_long`
/// pixels, so that the final Lanczos resize always shrinks and never enlarges.
pub(crate) fn scale_eighths(long_side: u32, min_long: u32) -> u32 {
    let long = u64::from(long_side);
    (1..=8u32)
        .find(|&m| (long * u64::from(m)).div_ceil(8) >= u64::from(min_long))
        .unwrap_or(8)
}

/// What became of a libjpeg-turbo call that returned an error.
enum Failure {
    /// A warning about a harmless oddity; the image was decoded in full.
    Harmless,
    /// The data ends before the picture does (libjpeg filled the rest with grey).
    Truncated,
    /// A real error: the output is incomplete.
    Fatal(String),
}

/// libjpeg-turbo reports warnings the same way as errors, by message only; sort them.
fn classify(err: turbojpeg::Error) -> Failure {
    let turbojpeg::Error::TurboJpegError(msg) = err else {
        return Failure::Fatal(err.to_string());
    };
    const TRUNCATED: [&str; 2] = [
        "Premature end of JPEG file",
        "premature end of data segment",
    ];
    // Warnings (JWRN_* in jerror.h) after which the whole image has been decoded correctly.
    const HARMLESS: [&str; 7] = [
        "extraneous bytes before marker",
        "unknown JFIF revision number",
        "Unknown Adobe color transform code",
        "bad ICC marker",
        "Inconsistent progression sequence",
        "Invalid SOS parameters for sequential JPEG",
        "Application transferred too many scanlines",
    ];
    if TRUNCATED.iter().any(|t| msg.contains(t)) {
        Failure::Truncated
    } else if HARMLESS.iter().any(|h| msg.contains(h)) {
        Failure::Harmless
    } else {
        Failure::Fatal(msg)
    }
}

fn fail(err: turbojpeg::Error) -> MediaError {
    match classify(err) {
        Failure::Truncated => MediaError::Truncated,
        Failure::Fatal(msg) => MediaError::Corrupt(msg),
        Failure::Harmless => MediaError::Corrupt("unexpected warning".into()),
    }
}

/// Decodes to RGB at the smallest DCT scale whose long side is still at least `min_long`
/// (or at full size when the image is smaller than that). `header` was checked by the caller.
pub(crate) fn decode(data: &[u8], header: &Header, min_long: u32) -> Result<Rgb, MediaError> {
    let Some(layout) = &header.jpeg else {
        return Err(MediaError::Corrupt("not a JPEG".into()));
    };
    if !layout.has_end(data) {
        return Err(MediaError::Truncated);
    }
    // Without metadata and stray bytes the header reads without warnings: the turbojpeg crate
    // cannot tell a warning in the header from an error, and would not decode at all.
    let data = &layout.clean(data)[..];
    let eighths = if layout.lossless {
        8 // lossless JPEG cannot be scaled in the DCT
    } else {
        scale_eighths(header.width.max(header.height), min_long)
    };
    let factor = ScalingFactor::new(eighths as usize, 8);
    let mut dec = Decompressor::new().map_err(fail)?;
    dec.set_scaling_factor(factor).map_err(fail)?;
    dec.set_scan_limit(MAX_SCANS).map_err(fail)?;
    let info = dec.read_header(data).map_err(fail)?;
    // libjpeg must see the size that was checked against the limit, not another frame's.
    if (info.width, info.height) != (header.width as usize, header.height as usize) {
        return Err(MediaError::Corrupt("inconsistent JPEG frame size".into()));
    }
    let cmyk = matches!(info.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk {
        PixelFormat::CMYK
    } else {
        PixelFormat::RGB
    };
    let scaled = info.scaled(factor);
    let (width, height) = (scaled.width, scaled.height);
    let pitch = width * format.size();
    let mut pixels = super::zeroed(pitch, height)?;
    let image = Image {
        pixels: &mut pixels[..],
        width,
        pitch,
        height,
        format,
    };
    if let Err(err) = dec.decompress(data, image) {
        match classify(err) {
            // The header read without a warning just above, so this one came from the scans,
            // and libjpeg went on to decode them to the end.
            Failure::Harmless => {}
            Failure::Truncated => return Err(MediaError::Truncated),
            Failure::Fatal(msg) if msg.contains("Unsupported color conversion") => {
                return Err(MediaError::Unsupported(format!("JPEG colour space: {msg}")))
            }
            Failure::Fatal(msg) => return Err(MediaError::Corrupt(msg)),
        }
    }
    if cmyk {
        pixels = cmyk_to_rgb(&pixels);
    }
    // Both sizes are at most the 16-bit JPEG limit.
    Ok(Rgb {
        pixels,
        width: width as u32,
        height: height as u32,
    })
}

/// CMYK as Adobe writes it (inverted: 255 is no ink), the only kind seen in practice, to RGB.
/// No colour management: good enough for the rare CMYK file someone sends in a chat.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = u32::from(px[3]);
        for &c in &px[..3] {
            rgb.push(((u32::from(c) * k + 127) / 255) as u8);
        }
    }
    rgb
}

/// Baseline JPEG, quality [`JPEG_QUALITY`], 4:2:0, optimised Huffman tables, no metadata
/// (libjpeg-turbo writes only the JFIF header).
pub(crate) fn encode(image: &Rgb) -> Result<Vec<u8>, MediaError> {
    let enc = |e: turbojpeg::Error| MediaError::Encoder(e.to_string());
    let mut c = Compressor::new().map_err(enc)?;
    c.set_quality(JPEG_QUALITY).map_err(enc)?;
    c.set_subsamp(Subsamp::Sub2x2).map_err(enc)?;
    c.set_optimize(true).map_err(enc)?;
    let width = image.width as usize;
    let source = Image {
        pixels: &image.pixels[..],
        width,
        pitch: width * 3,
        height: image.height as usize,
        format: PixelFormat::RGB,
    };
    c.compress_to_vec(source).map_err(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_choice() {
        // The smallest M/8 that keeps at least 1200 px on the long side.
        assert_eq!(scale_eighths(4000, 1200), 3); // 1500
        assert_eq!(scale_eighths(4032, 1200), 3); // 1512
        assert_eq!(scale_eighths(2400, 1200), 4); // 1200 exactly
        assert_eq!(scale_eighths(2401, 1200), 4); // 1201
        assert_eq!(scale_eighths(2399, 1200), 4); // 1200, rounded up by libjpeg
        assert_eq!(scale_eighths(9600, 1200), 1);
        assert_eq!(scale_eighths(50000, 1200), 1);
        assert_eq!(scale_eighths(1300, 1200), 8);
        assert_eq!(scale_eighths(1200, 1200), 8);
        assert_eq!(scale_eighths(800, 1200), 8);
        assert_eq!(scale_eighths(1, 1200), 8);
    }

    #[test]
    fn warnings_are_sorted() {
        let e = |m: &str| turbojpeg::Error::TurboJpegError(m.into());
        assert!(matches!(
            classify(e("Premature end of JPEG file")),
            Failure::Truncated
        ));
        assert!(matches!(
            classify(e("Corrupt JPEG data: premature end of data segment")),
            Failure::Truncated
        ));
        assert!(matches!(
            classify(e(
                "Corrupt JPEG data: 3 extraneous bytes before marker 0xd9"
            )),
            Failure::Harmless
        ));
        assert!(matches!(
            classify(e("Corrupt JPEG data: bad Huffman code")),
            Failure::Fatal(_)
        ));
        assert!(matches!(
            classify(e("Bogus marker length")),
            Failure::Fatal(_)
        ));
    }

    #[test]
    fn cmyk_inverted() {
        assert_eq!(
            cmyk_to_rgb(&[255, 255, 255, 255, 0, 0, 0, 0]),
            vec![255, 255, 255, 0, 0, 0]
        );
        assert_eq!(cmyk_to_rgb(&[255, 0, 255, 255]), vec![255, 0, 255]);
    }
}
