//! What an uploaded image really is: the type from its first bytes, the size from its header.
//! Nothing is decoded beyond the header, so a file claiming huge dimensions costs nothing.

use crate::error::{Error, Result};
use tara_protocol::{ErrorCode, MAX_MEDIA_PIXELS};

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// The real type.
    pub content_type: &'static str,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// The type the bytes start like, if it is one we take.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Checks that `bytes` are the `declared` type and within the pixel limit.
pub fn inspect(declared: &str, bytes: &[u8]) -> Result<Inspection> {
    let accepted = ["image/jpeg", "image/png", "image/webp"];
    if !accepted.contains(&declared) {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            "send the image as image/jpeg, image/png or image/webp",
        ));
    }
    match sniff(bytes) {
        Some(real) if real == declared => {}
        Some(real) => {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                format!("the file is {real}, not {declared} as it claims"),
            ))
        }
        None => {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                format!("the file is not a {declared} image"),
            ))
        }
    }
    let size = imagesize::blob_size(bytes).map_err(|_| {
        Error::new(
            ErrorCode::UnsupportedMediaType,
            "the image header cannot be read",
        )
    })?;
    let (w, h) = (size.width as u64, size.height as u64);
    if w == 0 || h == 0 || w > u32::MAX as u64 || h > u32::MAX as u64 {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            "the image claims impossible dimensions",
        ));
    }
    if w * h > MAX_MEDIA_PIXELS {
        return Err(Error::new(
            ErrorCode::PayloadTooLarge,
            format!("the image is {w}x{h}; at most 50 megapixels are accepted"),
        ));
    }
    Ok(Inspection {
        content_type: sniff(bytes).unwrap_or("image/jpeg"),
        width: w as u32,
        height: h as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0]);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    #[test]
    fn a_png_header_gives_its_size() {
        let i = inspect("image/png", &png_header(640, 480)).expect("valid");
        assert_eq!((i.width, i.height, i.content_type), (640, 480, "image/png"));
    }

    #[test]
    fn a_file_lying_about_its_type_is_refused() {
        let e = inspect("image/jpeg", &png_header(10, 10)).expect_err("png is not jpeg");
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
        let e = inspect("image/png", b"GIF89a.....").expect_err("gif");
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
        let e = inspect("text/plain", b"hello").expect_err("text");
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
    }

    #[test]
    fn huge_claimed_dimensions_are_refused_without_decoding() {
        let e = inspect("image/png", &png_header(50_000, 50_000)).expect_err("2.5 gigapixels");
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        assert!(
            inspect("image/png", &png_header(7000, 7000)).is_ok(),
            "49 megapixels pass"
        );
    }
}
