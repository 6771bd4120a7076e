//! Reading what an image claims to be, before any pixel is decoded: the container format, the
//! dimensions from the header, and (for JPEG) the EXIF orientation and the coding details the
//! decoder needs. Everything here works on the bytes in place and allocates nothing that depends
//! on the input.

use std::ops::Range;

use super::MediaError;

/// A container format this module can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    WebP,
}

/// What the header of an image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1..=8 (1 when absent or unreadable). Only read here for JPEG; the PNG
    /// and WebP decoders report their own.
    pub orientation: u8,
    /// JPEG only: where its parts are.
    pub jpeg: Option<JpegLayout>,
}

/// Where the parts of a JPEG file are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JpegLayout {
    /// The header segments the decoder needs (tables, frame, restart interval, JFIF 1.x, Adobe),
    /// markers included, in order. Left out: EXIF, XMP, ICC and other APPn segments, comments,
    /// and stray bytes between segments, which libjpeg would report as warnings.
    pub keep: Vec<Range<usize>>,
    /// Offset of the first SOS marker: the scans and everything after them.
    pub scan: usize,
    /// Lossless coding (SOF3 and friends), which cannot be decoded at reduced scale.
    pub lossless: bool,
}

impl JpegLayout {
    /// The file as the decoder should see it: SOI, the kept segments, then the scans as they are.
    pub fn clean(&self, data: &[u8]) -> Vec<u8> {
        let header: usize = self.keep.iter().map(|r| r.len()).sum();
        let mut out = Vec::with_capacity(2 + header + (data.len() - self.scan));
        out.extend([0xFF, 0xD8]);
        for range in &self.keep {
            out.extend(&data[range.clone()]);
        }
        out.extend(&data[self.scan..]);
        out
    }

    /// True when the scans are followed by an end-of-image marker. Inside entropy-coded data a
    /// 0xFF byte is always followed by 0x00 or a restart marker, so an EOI after the first scan
    /// header is the real end (embedded thumbnails sit before it): without one, the file was cut
    /// short.
    pub fn has_end(&self, data: &[u8]) -> bool {
        data[self.scan..]
            .windows(2)
            .rev()
            .any(|w| w == [0xFF, 0xD9])
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Identifies the format and reads the dimensions from the header.
pub(crate) fn probe(data: &[u8]) -> Result<Header, MediaError> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return probe_jpeg(data);
    }
    if data.starts_with(PNG_SIGNATURE) {
        return probe_png(data);
    }
    if data.len() >= 12 && &data[0..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        return probe_webp(data);
    }
    // A file that is the beginning of a signature we know was cut short.
    let prefixes: [&[u8]; 3] = [&[0xFF, 0xD8, 0xFF], PNG_SIGNATURE, b"RIFF"];
    if data.is_empty()
        || prefixes
            .iter()
            .any(|p| data.len() < p.len() && p.starts_with(data))
    {
        return Err(MediaError::Truncated);
    }
    Err(MediaError::Unsupported(describe_unknown(data)))
}

/// Names the formats people are likely to pick by mistake, for the error message.
fn describe_unknown(data: &[u8]) -> String {
    let ftyp = data.get(4..8) == Some(b"ftyp");
    let brand = data.get(8..12).unwrap_or_default();
    let name = if ftyp
        && [
            &b"heic"[..],
            b"heix",
            b"hevc",
            b"heim",
            b"heis",
            b"mif1",
            b"msf1",
        ]
        .contains(&brand)
    {
        "HEIC/HEIF"
    } else if ftyp && (brand == b"avif" || brand == b"avis") {
        "AVIF"
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        "GIF"
    } else if data.starts_with(b"BM") {
        "BMP"
    } else if data.starts_with(b"II*\0") || data.starts_with(b"MM\0*") {
        "TIFF"
    } else if data.starts_with(b"%PDF") {
        "PDF"
    } else if data.starts_with(b"<svg") || data.starts_with(b"<?xml") {
        "SVG"
    } else {
        "not a recognised image"
    };
    name.to_string()
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn le24(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 3)?;
    Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
}

fn corrupt(what: &str) -> MediaError {
    MediaError::Corrupt(what.to_string())
}

/// Walks the JPEG markers up to the first scan: the frame header gives the size and coding, the
/// first EXIF APP1 segment gives the orientation. The entropy-coded data is not read here.
fn probe_jpeg(data: &[u8]) -> Result<Header, MediaError> {
    let mut pos = 2; // after SOI
    let mut orientation = None;
    let mut frame = None;
    let mut keep = Vec::new();
    loop {
        // Markers are 0xFF followed by a code, after any number of 0xFF fill bytes. Other bytes
        // here are garbage that libjpeg skips too (with a warning).
        while data.get(pos).is_some_and(|&b| b != 0xFF) {
            pos += 1;
        }
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = data.get(pos) else {
            return Err(MediaError::Truncated);
        };
        pos += 1;
        match marker {
            // Markers without a length: TEM, RSTn. (A stray SOI or 0xFF00 is broken.)
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 | 0x00 => return Err(corrupt("unexpected JPEG marker")),
            0xD9 => return Err(corrupt("JPEG ends before any image data")),
            _ => {}
        }
        let Some(len) = be16(data, pos) else {
            return Err(MediaError::Truncated);
        };
        let len = usize::from(len);
        if len < 2 {
            return Err(corrupt("JPEG segment length"));
        }
        let Some(body) = data.get(pos + 2..pos + len) else {
            return Err(MediaError::Truncated);
        };
        // The segment from its marker (one 0xFF) to its end.
        let segment = pos - 2..pos + len;
        match marker {
            // SOFn: every frame header except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if frame.is_some() {
                    return Err(corrupt("JPEG has more than one frame header"));
                }
                if body.len() < 6 {
                    return Err(corrupt("JPEG frame header too short"));
                }
                let precision = body[0];
                let height = u32::from(u16::from_be_bytes([body[1], body[2]]));
                let width = u32::from(u16::from_be_bytes([body[3], body[4]]));
                let components = body[5];
                if matches!(marker, 0xC5..=0xC7 | 0xCD..=0xCF) {
                    return Err(MediaError::Unsupported("hierarchical JPEG".into()));
                }
                if precision != 8 {
                    return Err(MediaError::Unsupported(format!("{precision}-bit JPEG")));
                }
                if !matches!(components, 1 | 3 | 4) {
                    return Err(MediaError::Unsupported(format!(
                        "JPEG with {components} colour components"
                    )));
                }
                if height == 0 {
                    // DNL-defined height: almost never used, and libjpeg does not support it.
                    return Err(MediaError::Unsupported(
                        "JPEG without a height in its header".into(),
                    ));
                }
                if width == 0 {
                    return Err(corrupt("JPEG width is 0"));
                }
                frame = Some((width, height, matches!(marker, 0xC3 | 0xCB)));
                keep.push(segment);
            }
            0xE1 if orientation.is_none() && body.starts_with(b"Exif\0\0") => {
                orientation = Some(exif_orientation(&body[6..]).unwrap_or(1));
            }
            // JFIF 1.x (it tells libjpeg the colours are YCbCr); other versions make a warning.
            0xE0 if body.len() >= 7 && body.starts_with(b"JFIF\0") && body[5] == 1 => {
                keep.push(segment)
            }
            // Adobe (it tells libjpeg whether the colours are transformed), with a known transform.
            0xEE if body.len() >= 12 && body.starts_with(b"Adobe") && body[11] <= 2 => {
                keep.push(segment)
            }
            // Other APPn segments and comments: metadata, not needed to decode.
            0xE0..=0xEF | 0xFE => {}
            0xDA => {
                // Start of scan: the header is over.
                let Some((width, height, lossless)) = frame else {
                    return Err(corrupt("JPEG scan before its frame header"));
                };
                return Ok(Header {
                    format: Format::Jpeg,
                    width,
                    height,
                    orientation: orientation.unwrap_or(1),
                    jpeg: Some(JpegLayout {
                        keep,
                        scan: pos - 2,
                        lossless,
                    }),
                });
            }
            // Tables (DQT, DHT, DAC), restart interval (DRI), and anything else libjpeg reads.
            _ => keep.push(segment),
        }
        pos += len;
    }
}

/// The Orientation tag (0x0112) of IFD0 in a TIFF structure (the APP1 body after "Exif\0\0").
/// None when the structure is unreadable or the tag absent or out of range.
pub(crate) fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(0..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    for i in 0..count {
        let entry = ifd.checked_add(2 + 12 * i)?;
        if u16_at(entry)? != 0x0112 {
            continue;
        }
        let value = match u16_at(entry + 2)? {
            3 => u32::from(u16_at(entry + 8)?), // SHORT, as the standard says
            4 => u32_at(entry + 8)?,            // LONG, written by a few tools
            _ => return None,
        };
        return u8::try_from(value).ok().filter(|v| (1..=8).contains(v));
    }
    None
}

/// PNG: the IHDR chunk must come first and holds the size.
fn probe_png(data: &[u8]) -> Result<Header, MediaError> {
    let (Some(len), Some(kind)) = (be32(data, 8), data.get(12..16)) else {
        return Err(MediaError::Truncated);
    };
    if kind != b"IHDR" || len != 13 {
        return Err(corrupt("PNG does not start with its header chunk"));
    }
    let (Some(width), Some(height)) = (be32(data, 16), be32(data, 20)) else {
        return Err(MediaError::Truncated);
    };
    if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(corrupt("PNG dimensions"));
    }
    Ok(Header {
        format: Format::Png,
        width,
        height,
        orientation: 1,
        jpeg: None,
    })
}

/// WebP: the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended, with the canvas size).
fn probe_webp(data: &[u8]) -> Result<Header, MediaError> {
    let (Some(riff_len), Some(kind)) = (data.get(4..8), data.get(12..16)) else {
        return Err(MediaError::Truncated);
    };
    // The RIFF header gives the size of the rest of the file (a missing pad byte is tolerated).
    let riff_len = u32::from_le_bytes([riff_len[0], riff_len[1], riff_len[2], riff_len[3]]);
    if (data.len() as u64) + 1 < u64::from(riff_len) + 8 {
        return Err(MediaError::Truncated);
    }
    let dims = match kind {
        b"VP8 " => {
            // Frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height.
            match data.get(23..26) {
                None => return Err(MediaError::Truncated),
                Some(code) if code != [0x9D, 0x01, 0x2A] => {
                    return Err(corrupt("WebP VP8 start code"))
                }
                Some(_) => {}
            }
            let Some(b) = data.get(26..30) else {
                return Err(MediaError::Truncated);
            };
            (
                u32::from(u16::from_le_bytes([b[0], b[1]]) & 0x3FFF),
                u32::from(u16::from_le_bytes([b[2], b[3]]) & 0x3FFF),
            )
        }
        b"VP8L" => {
            let Some(b) = data.get(20..25) else {
                return Err(MediaError::Truncated);
            };
            if b[0] != 0x2F {
                return Err(corrupt("WebP lossless signature"));
            }
            let bits = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => {
            let (Some(w), Some(h)) = (le24(data, 24), le24(data, 27)) else {
                return Err(MediaError::Truncated);
            };
            (w + 1, h + 1)
        }
        _ => return Err(corrupt("WebP chunk")),
    };
    if dims.0 == 0 || dims.1 == 0 {
        return Err(corrupt("WebP dimensions"));
    }
    Ok(Header {
        format: Format::WebP,
        width: dims.0,
        height: dims.1,
        orientation: 1,
        jpeg: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff_with_orientation(big: bool, value: u16) -> Vec<u8> {
        let mut t = Vec::new();
        let w16 = |t: &mut Vec<u8>, v: u16| {
            t.extend(if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let w32 = |t: &mut Vec<u8>, v: u32| {
            t.extend(if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        t.extend(if big { b"MM\0*" } else { b"II*\0" });
        w32(&mut t, 8);
        w16(&mut t, 2);
        // an unrelated tag first (ImageWidth), then Orientation
        w16(&mut t, 0x0100);
        w16(&mut t, 4);
        w32(&mut t, 1);
        w32(&mut t, 640);
        w16(&mut t, 0x0112);
        w16(&mut t, 3);
        w32(&mut t, 1);
        w16(&mut t, value);
        w16(&mut t, 0);
        w32(&mut t, 0);
        t
    }

    #[test]
    fn orientation_both_byte_orders() {
        for big in [true, false] {
            for v in 1..=8 {
                assert_eq!(
                    exif_orientation(&tiff_with_orientation(big, v)),
                    Some(v as u8)
                );
            }
            assert_eq!(exif_orientation(&tiff_with_orientation(big, 9)), None);
            assert_eq!(exif_orientation(&tiff_with_orientation(big, 0)), None);
        }
    }

    #[test]
    fn orientation_never_reads_out_of_bounds() {
        let t = tiff_with_orientation(true, 6);
        for cut in 0..t.len() {
            let _ = exif_orientation(&t[..cut]);
        }
        // IFD offset pointing far away, and an entry count larger than the data.
        let mut far = t.clone();
        far[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(exif_orientation(&far), None);
        let mut many = t;
        many[8..10].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(exif_orientation(&many), Some(6));
    }

    #[test]
    fn jpeg_metadata_and_stray_bytes_are_left_out_of_the_decoder_input() {
        let mut j = vec![0xFF, 0xD8];
        j.extend([0xFF, 0xE0, 0, 16]);
        j.extend(b"JFIF\0\x02\x01\0\0\x01\0\x01\0\0"); // JFIF 2.1: libjpeg warns
        j.extend([0xFF, 0xE1, 0, 8]);
        j.extend(b"Exif\0\0");
        j.extend([0xFF, 0xFE, 0, 5, b'h', b'i', b'!']); // comment
        j.extend([0x00, 0x42]); // stray bytes
        let sof = [0xFF, 0xC0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0];
        j.extend(sof);
        let sos = [0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0xFF, 0xD9];
        j.extend(sos);
        let h = probe(&j).unwrap();
        let clean = h.jpeg.unwrap().clean(&j);
        assert_eq!(clean, [&[0xFF, 0xD8][..], &sof, &sos].concat());
    }

    #[test]
    fn sniffing() {
        assert!(matches!(probe(b""), Err(MediaError::Truncated)));
        assert!(matches!(probe(&[0xFF, 0xD8]), Err(MediaError::Truncated)));
        assert!(matches!(probe(b"\x89PN"), Err(MediaError::Truncated)));
        assert!(matches!(probe(b"GIF89a......"), Err(MediaError::Unsupported(f)) if f == "GIF"));
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert!(matches!(probe(heic), Err(MediaError::Unsupported(f)) if f == "HEIC/HEIF"));
        assert!(matches!(
            probe(b"hello world"),
            Err(MediaError::Unsupported(_))
        ));
    }

    #[test]
    fn jpeg_header_cut_anywhere_is_truncated_not_a_panic() {
        // SOI, APP0 (JFIF), SOF0 100x50 3 components, SOS.
        let mut j = vec![0xFF, 0xD8];
        j.extend([0xFF, 0xE0, 0, 16]);
        j.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        j.extend([
            0xFF, 0xC0, 0, 17, 8, 0, 50, 0, 100, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
        ]);
        j.extend([0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0]);
        let h = probe(&j).unwrap();
        assert_eq!(
            (h.format, h.width, h.height, h.orientation),
            (Format::Jpeg, 100, 50, 1)
        );
        for cut in 3..j.len() - 1 {
            assert!(
                matches!(probe(&j[..cut]), Err(MediaError::Truncated)),
                "cut at {cut}"
            );
        }
        let layout = h.jpeg.unwrap();
        assert!(!layout.has_end(&j));
        assert_eq!(layout.clean(&j), j, "nothing to leave out");
        j.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD9]);
        assert!(layout.has_end(&j));
    }
}
