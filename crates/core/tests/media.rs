//! Image compression before upload: every input is generated here (EXIF by hand), and every
//! output is checked byte by byte where it matters (markers, sampling factors, no metadata).

use std::time::{Duration, Instant};

use image::{ExtendedColorType, ImageEncoder, RgbaImage};
use tara_core::media::{self, MediaError};

// ---------------------------------------------------------------- inputs

/// A deterministic xorshift, for noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u8
    }
}

const RED_CORNER: u32 = 400;

/// Photo-like RGB: gradients plus noise, with a pure red square in the stored top-left corner.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            if x < RED_CORNER && y < RED_CORNER {
                px.extend([255, 0, 0]);
                continue;
            }
            let n = noise.next() / 8;
            px.extend([
                (40 + x * 160 / w) as u8 + n,
                (60 + y * 150 / h) as u8 + n,
                (90 + ((x + y) % 97)) as u8 + n,
            ]);
        }
    }
    px
}

fn tj_encode(
    pixels: &[u8],
    w: u32,
    h: u32,
    format: turbojpeg::PixelFormat,
    subsamp: turbojpeg::Subsamp,
) -> Vec<u8> {
    let image = turbojpeg::Image {
        pixels,
        width: w as usize,
        pitch: w as usize * format.size(),
        height: h as usize,
        format,
    };
    turbojpeg::compress(image, 92, subsamp).unwrap().to_vec()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    tj_encode(
        &photo(w, h),
        w,
        h,
        turbojpeg::PixelFormat::RGB,
        turbojpeg::Subsamp::Sub2x2,
    )
}

/// An APP1 "Exif" segment, big-endian TIFF: IFD0 with Orientation and a GPS IFD pointer, and a
/// GPS IFD with latitude 28°36'51.23" N, longitude 77°12'34.56" E.
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut t = Vec::new();
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend(tag.to_be_bytes());
        t.extend(kind.to_be_bytes());
        t.extend(count.to_be_bytes());
        t.extend(value);
    };
    t.extend(b"MM\0*");
    t.extend(8u32.to_be_bytes());
    // IFD0 at 8: 2 entries -> 2 + 24 + 4 = 30 bytes, GPS IFD at 38.
    t.extend(2u16.to_be_bytes());
    let o = orientation.to_be_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, 4, 1, 38u32.to_be_bytes());
    t.extend(0u32.to_be_bytes());
    // GPS IFD at 38: 4 entries -> 2 + 48 + 4 = 54 bytes, values at 92 and 116.
    t.extend(4u16.to_be_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, 92u32.to_be_bytes());
    entry(&mut t, 0x0003, 2, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, 5, 3, 116u32.to_be_bytes());
    t.extend(0u32.to_be_bytes());
    for (num, den) in [
        (28u32, 1u32),
        (36, 1),
        (5123, 100),
        (77, 1),
        (12, 1),
        (3456, 100),
    ] {
        t.extend(num.to_be_bytes());
        t.extend(den.to_be_bytes());
    }
    assert_eq!(t.len(), 140);
    let mut seg = vec![0xFF, 0xE1];
    seg.extend(((2 + 6 + t.len()) as u16).to_be_bytes());
    seg.extend(b"Exif\0\0");
    seg.extend(t);
    seg
}

/// Puts `segment` right after SOI.
fn with_segment(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend(segment);
    out.extend(&jpeg[2..]);
    out
}

fn png(img: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Inserts a PNG chunk right after IHDR (which ends at byte 33).
fn with_png_chunk(png: &[u8], kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut chunk = (body.len() as u32).to_be_bytes().to_vec();
    chunk.extend(kind);
    chunk.extend(body);
    chunk.extend(crc32(&chunk[4..]).to_be_bytes());
    let mut out = png[..33].to_vec();
    out.extend(chunk);
    out.extend(&png[33..]);
    out
}

/// Offset of the first marker `code` in a JPEG's header segments (up to SOS), and its body.
fn segment(jpeg: &[u8], code: u8) -> Option<&[u8]> {
    let mut pos = 2;
    while pos + 4 <= jpeg.len() {
        assert_eq!(jpeg[pos], 0xFF, "marker expected at {pos}");
        let marker = jpeg[pos + 1];
        let len = u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
        if marker == code {
            return Some(&jpeg[pos + 4..pos + 2 + len]);
        }
        if marker == 0xDA {
            return None;
        }
        pos += 2 + len;
    }
    None
}

fn markers(jpeg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 2;
    while pos + 4 <= jpeg.len() {
        let marker = jpeg[pos + 1];
        out.push(marker);
        if marker == 0xDA {
            break;
        }
        pos += 2 + u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
    }
    out
}

/// Checks what every output must be: a baseline JPEG with 3 components sampled 4:2:0, of the
/// reported size, with no APP segment but JFIF, complete, and decodable.
fn assert_clean_jpeg(out: &media::Jpeg) -> turbojpeg::Image<Vec<u8>> {
    let data = &out.data;
    assert_eq!(&data[..2], &[0xFF, 0xD8]);
    assert_eq!(&data[data.len() - 2..], &[0xFF, 0xD9]);
    let sof = segment(data, 0xC0).expect("a baseline SOF0 frame");
    assert_eq!(sof[0], 8, "8-bit");
    let h = u16::from_be_bytes([sof[1], sof[2]]) as u32;
    let w = u16::from_be_bytes([sof[3], sof[4]]) as u32;
    assert_eq!((w, h), (out.width, out.height));
    assert_eq!(sof[5], 3, "three components");
    // Component id, sampling factors (H<<4 | V), table: Y 2x2, Cb 1x1, Cr 1x1 = 4:2:0.
    assert_eq!(
        (sof[7], sof[10], sof[13]),
        (0x22, 0x11, 0x11),
        "4:2:0 sampling"
    );
    for m in markers(data) {
        assert!(
            m == 0xE0 || !(0xE1..=0xEF).contains(&m),
            "APP{} segment in output",
            m - 0xE0
        );
        assert_ne!(m, 0xFE, "comment in output");
    }
    assert!(!data.windows(4).any(|w| w == b"Exif"), "EXIF in output");
    let img = turbojpeg::decompress(data, turbojpeg::PixelFormat::RGB).unwrap();
    assert_eq!(
        (img.width as u32, img.height as u32),
        (out.width, out.height)
    );
    img
}

fn pixel(img: &turbojpeg::Image<Vec<u8>>, x: usize, y: usize) -> [u8; 3] {
    let at = y * img.pitch + x * 3;
    [img.pixels[at], img.pixels[at + 1], img.pixels[at + 2]]
}

fn is_red([r, g, b]: [u8; 3]) -> bool {
    r > 200 && g < 60 && b < 60
}

// ---------------------------------------------------------------- tests

#[test]
fn photo_with_exif_orientation_6_and_gps_comes_out_upright_small_and_clean() {
    let input = with_segment(&jpeg(4000, 3000), &exif_app1(6));
    assert!(input.windows(4).any(|w| w == b"Exif"));
    let out = media::compress(&input).unwrap();
    assert_eq!(
        (out.width, out.height),
        (900, 1200),
        "long side 1200, rotated upright"
    );
    let img = assert_clean_jpeg(&out);
    // Orientation 6: the stored top-left is displayed top-right. The 400 px square is 120 px now.
    assert!(
        is_red(pixel(&img, 900 - 60, 60)),
        "{:?}",
        pixel(&img, 840, 60)
    );
    for (x, y) in [(60, 60), (60, 1140), (840, 1140)] {
        assert!(!is_red(pixel(&img, x, y)), "red at ({x}, {y})");
    }
    // The GPS rationals do not survive anywhere in the file.
    assert!(!out
        .data
        .windows(8)
        .any(|w| w == [0, 0, 0x14, 0x03, 0, 0, 0, 100]));
}

#[test]
fn every_orientation_is_applied() {
    // Where the stored top-left red square (320 px once resized) must be seen, for each
    // orientation: (on the right, at the bottom), and the upright size.
    let base = jpeg(1500, 1000);
    let corners = [
        (1, (false, false), (1200, 800)),
        (2, (true, false), (1200, 800)),
        (3, (true, true), (1200, 800)),
        (4, (false, true), (1200, 800)),
        (5, (false, false), (800, 1200)),
        (6, (true, false), (800, 1200)),
        (7, (true, true), (800, 1200)),
        (8, (false, true), (800, 1200)),
    ];
    for (o, (right, bottom), size) in corners {
        let out = media::compress(&with_segment(&base, &exif_app1(o))).unwrap();
        assert_eq!((out.width, out.height), size, "orientation {o}");
        let img = assert_clean_jpeg(&out);
        let x = if right { size.0 as usize - 40 } else { 40 };
        let y = if bottom { size.1 as usize - 40 } else { 40 };
        assert!(
            is_red(pixel(&img, x, y)),
            "orientation {o}: {:?} at ({x}, {y})",
            pixel(&img, x, y)
        );
    }
}

#[test]
fn compress_file_writes_a_new_jpeg_into_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("IMG_0001.JPG");
    std::fs::write(&input, with_segment(&jpeg(2000, 1500), &exif_app1(1))).unwrap();
    let out_dir = dir.path().join("outgoing");
    std::fs::create_dir(&out_dir).unwrap();

    let a = media::compress_file(&input, &out_dir).unwrap();
    let b = media::compress_file(&input, &out_dir).unwrap();
    assert_ne!(a.path, b.path, "each call writes its own file");
    assert_eq!(a.path.parent(), Some(out_dir.as_path()));
    assert_eq!(a.path.extension().unwrap(), "jpg");
    assert_eq!((a.width, a.height), (1200, 900));
    let written = std::fs::read(&a.path).unwrap();
    assert_eq!(written.len() as u64, a.bytes);
    assert_clean_jpeg(&media::Jpeg {
        data: written,
        width: a.width,
        height: a.height,
    });
    // Nothing but the two outputs is left behind (no temporary files).
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 2);

    let bytes = media::compress_bytes(&std::fs::read(&input).unwrap(), &out_dir).unwrap();
    assert_eq!((bytes.width, bytes.height), (1200, 900));

    let missing = media::compress_file(&dir.path().join("nope.jpg"), &out_dir).unwrap_err();
    assert!(
        matches!(missing, MediaError::Io { action: "read", .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("nope.jpg"), "{missing}");
    let no_dir = media::compress_file(&input, &dir.path().join("no/such/dir")).unwrap_err();
    assert!(
        matches!(
            no_dir,
            MediaError::Io {
                action: "write",
                ..
            }
        ),
        "{no_dir:?}"
    );
}

#[test]
fn png_with_alpha_is_flattened_onto_white() {
    // Left half opaque blue, right half fully transparent (its colour must not show), a
    // half-transparent black band at the bottom.
    let img = RgbaImage::from_fn(1600, 1000, |x, y| {
        if y >= 800 {
            image::Rgba([0, 0, 0, 128])
        } else if x < 800 {
            image::Rgba([0, 0, 255, 255])
        } else {
            image::Rgba([255, 0, 0, 0])
        }
    });
    let out = media::compress(&png(&img)).unwrap();
    assert_eq!((out.width, out.height), (1200, 750));
    let dec = assert_clean_jpeg(&out);
    let [r, g, b] = pixel(&dec, 300, 300);
    assert!(r < 30 && g < 30 && b > 220, "opaque blue: {:?}", [r, g, b]);
    for v in pixel(&dec, 900, 300) {
        assert!(v > 245, "transparent is white: {:?}", pixel(&dec, 900, 300));
    }
    for v in pixel(&dec, 600, 700) {
        assert!(
            (118..=138).contains(&v),
            "half black over white is mid grey: {v}"
        );
    }
}

#[test]
fn png_orientation_from_exif_chunk_is_applied() {
    let img = RgbaImage::from_fn(300, 200, |x, y| {
        if x < 50 && y < 50 {
            image::Rgba([255, 0, 0, 255])
        } else {
            image::Rgba([200, 200, 200, 255])
        }
    });
    let app1 = exif_app1(8);
    let tiff = &app1[10..]; // after marker, length and "Exif\0\0"
    let input = with_png_chunk(&png(&img), b"eXIf", tiff);
    let out = media::compress(&input).unwrap();
    assert_eq!((out.width, out.height), (200, 300));
    let dec = assert_clean_jpeg(&out);
    // Orientation 8: the stored top-left is displayed bottom-left.
    assert!(is_red(pixel(&dec, 20, 280)), "{:?}", pixel(&dec, 20, 280));
}

#[test]
fn sixteen_bit_and_grey_png_and_lossless_webp_work() {
    let grey16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(640, 480, |x, _| {
        image::Luma([(x * 100) as u16])
    });
    let mut png16 = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png16)
        .write_image(
            &grey16
                .as_raw()
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<u8>>(),
            640,
            480,
            ExtendedColorType::L16,
        )
        .unwrap();
    let out = media::compress(&png16).unwrap();
    assert_eq!((out.width, out.height), (640, 480));
    assert_clean_jpeg(&out);

    let rgba = RgbaImage::from_fn(2400, 600, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 200])
    });
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(rgba.as_raw(), 2400, 600, ExtendedColorType::Rgba8)
        .unwrap();
    let out = media::compress(&webp).unwrap();
    assert_eq!((out.width, out.height), (1200, 300));
    assert_clean_jpeg(&out);
}

#[test]
fn grey_and_cmyk_jpegs_come_out_as_colour_420() {
    let grey: Vec<u8> = (0..1600 * 1200).map(|i| (i % 251) as u8).collect();
    let input = tj_encode(
        &grey,
        1600,
        1200,
        turbojpeg::PixelFormat::GRAY,
        turbojpeg::Subsamp::Gray,
    );
    let out = media::compress(&input).unwrap();
    assert_eq!((out.width, out.height), (1200, 900));
    assert_clean_jpeg(&out);

    // CMYK as Adobe stores it (inverted): 255 everywhere is white paper.
    let cmyk = vec![255u8; 800 * 600 * 4];
    let input = tj_encode(
        &cmyk,
        800,
        600,
        turbojpeg::PixelFormat::CMYK,
        turbojpeg::Subsamp::None,
    );
    let out = media::compress(&input).unwrap();
    let dec = assert_clean_jpeg(&out);
    assert!(
        pixel(&dec, 400, 300).iter().all(|&v| v > 245),
        "{:?}",
        pixel(&dec, 400, 300)
    );
}

#[test]
fn progressive_jpeg_works() {
    let (w, h) = (3000, 2000);
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_progressive(true).unwrap();
    c.set_quality(90).unwrap();
    let pixels = photo(w, h);
    let input = c
        .compress_to_vec(turbojpeg::Image {
            pixels: &pixels[..],
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap();
    let out = media::compress(&input).unwrap();
    assert_eq!((out.width, out.height), (1200, 800));
    let dec = assert_clean_jpeg(&out);
    assert!(is_red(pixel(&dec, 40, 40)));

    // Cut in the middle of its scans: refused too.
    let cut = &input[..input.len() * 2 / 3];
    assert!(matches!(media::compress(cut), Err(MediaError::Truncated)));
}

/// Oddities that libjpeg reports as warnings but decodes fine (JFIF 2.x, stray bytes between
/// segments, metadata of all kinds) give the right picture, not an error and not a black one.
#[test]
fn jpeg_with_odd_but_harmless_headers_decodes() {
    let base = jpeg(1600, 1200);
    let mut app0 = vec![0xFF, 0xE0, 0, 16];
    app0.extend(b"JFIF\0\x02\x01\0\0\x01\0\x01\0\0");
    let mut icc = vec![0xFF, 0xE2, 0, 20];
    icc.extend(b"ICC_PROFILE\0\x01\x01garbag");
    let comment = [0xFF, 0xFE, 0, 9, b'L', b'a', b't', b' ', b'2', b'8', b'N'];
    let stray = [0x00, 0x13, 0x37];
    let mut input = with_segment(
        &base,
        &[app0, exif_app1(3), icc, comment.to_vec(), stray.to_vec()].concat(),
    );
    // and stray bytes after the scan, before EOI
    let end = input.len() - 2;
    input.splice(end..end, [0x55, 0x66]);
    let out = media::compress(&input).unwrap();
    assert_eq!((out.width, out.height), (1200, 900));
    let dec = assert_clean_jpeg(&out);
    assert!(!out.data.windows(11).any(|w| w == b"ICC_PROFILE"));
    // Orientation 3: the red corner is bottom-right, the rest is the photo, not black.
    assert!(
        is_red(pixel(&dec, 1160, 860)),
        "{:?}",
        pixel(&dec, 1160, 860)
    );
    assert!(
        pixel(&dec, 600, 300).iter().all(|&v| v > 40),
        "{:?}",
        pixel(&dec, 600, 300)
    );
}

#[test]
fn small_images_are_not_enlarged() {
    let out = media::compress(&jpeg(640, 480)).unwrap();
    assert_eq!((out.width, out.height), (640, 480));
    assert_clean_jpeg(&out);
    let out = media::compress(&jpeg(1, 1)).unwrap();
    assert_eq!((out.width, out.height), (1, 1));
    assert_clean_jpeg(&out);
    // A panorama keeps at least one pixel on its short side.
    let out = media::compress(&jpeg(12000, 8)).unwrap();
    assert_eq!((out.width, out.height), (1200, 1));
}

#[test]
fn truncated_jpeg_is_refused() {
    let whole = jpeg(2000, 1500);
    for cut in [whole.len() / 2, whole.len() - 2, whole.len() * 9 / 10] {
        let err = media::compress(&whole[..cut]).unwrap_err();
        assert!(
            matches!(err, MediaError::Truncated),
            "cut at {cut}: {err:?}"
        );
    }
    // Even when someone closes the file with an end marker, the missing data is noticed.
    let mut patched = whole[..whole.len() / 2].to_vec();
    patched.extend([0xFF, 0xD9]);
    let err = media::compress(&patched).unwrap_err();
    assert!(matches!(err, MediaError::Truncated), "{err:?}");
    assert!(err.to_string().contains("incomplete"), "{err}");
    // Cut inside the header.
    assert!(matches!(
        media::compress(&whole[..300]),
        Err(MediaError::Truncated)
    ));
}

#[test]
fn truncated_png_and_webp_are_refused() {
    let img = RgbaImage::from_fn(500, 400, |x, y| {
        image::Rgba([(x * y % 256) as u8, x as u8, y as u8, 255])
    });
    let whole = png(&img);
    let err = media::compress(&whole[..whole.len() / 2]).unwrap_err();
    assert!(matches!(err, MediaError::Truncated), "{err:?}");

    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(img.as_raw(), 500, 400, ExtendedColorType::Rgba8)
        .unwrap();
    let err = media::compress(&webp[..webp.len() / 2]).unwrap_err();
    assert!(matches!(err, MediaError::Truncated), "{err:?}");
}

/// A valid 1x1 JPEG whose frame header is patched to claim `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut data = jpeg(1, 1);
    let sof = data.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    data[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    data[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    data
}

#[test]
fn header_claiming_50000x50000_is_refused_promptly() {
    let start = Instant::now();
    let err = media::compress(&jpeg_claiming(50000, 50000)).unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::TooManyPixels {
                width: 50000,
                height: 50000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("50000 x 50000"), "{err}");

    // The same for PNG (IHDR patched; the CRC is not even looked at) and WebP (VP8X canvas).
    let mut png = png(&RgbaImage::new(1, 1));
    png[16..20].copy_from_slice(&50000u32.to_be_bytes());
    png[20..24].copy_from_slice(&50000u32.to_be_bytes());
    assert!(matches!(
        media::compress(&png),
        Err(MediaError::TooManyPixels {
            width: 50000,
            height: 50000
        })
    ));
    let mut webp = b"RIFF\x16\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    webp.extend([0x4F, 0xC3, 0x00, 0x4F, 0xC3, 0x00]); // 49999 + 1, twice
    assert!(matches!(
        media::compress(&webp),
        Err(MediaError::TooManyPixels {
            width: 50000,
            height: 50000
        })
    ));

    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn header_of_12000x12000_is_refused() {
    // 144 megapixels > 50; the `image` crate's default limits would let this through.
    let err = media::compress(&jpeg_claiming(12000, 12000)).unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::TooManyPixels {
                width: 12000,
                height: 12000
            }
        ),
        "{err:?}"
    );
    // Just under the limit is not refused for its size (it then fails as the truncated file it is).
    let err = media::compress(&jpeg_claiming(7000, 7000)).unwrap_err();
    assert!(
        matches!(err, MediaError::Truncated | MediaError::Corrupt(_)),
        "{err:?}"
    );
}

#[test]
fn unsupported_and_garbage_inputs_are_errors() {
    assert!(matches!(
        media::compress(b"GIF89a\x01\0\x01\0"),
        Err(MediaError::Unsupported(_))
    ));
    assert!(matches!(
        media::compress(b"not an image at all"),
        Err(MediaError::Unsupported(_))
    ));
    assert!(matches!(media::compress(b""), Err(MediaError::Truncated)));
    let err = media::compress(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic").unwrap_err();
    assert!(err.to_string().contains("HEIC"), "{err}");
}

/// Random damage to small valid files of each format: any error is fine, a panic or a hang is not.
#[test]
fn damaged_files_never_panic() {
    let small = RgbaImage::from_fn(64, 48, |x, y| {
        image::Rgba([x as u8 * 4, y as u8 * 5, 100, (x * y) as u8])
    });
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(small.as_raw(), 64, 48, ExtendedColorType::Rgba8)
        .unwrap();
    let mut progressive = turbojpeg::Compressor::new().unwrap();
    progressive.set_progressive(true).unwrap();
    let pixels = photo(96, 64);
    let progressive = progressive
        .compress_to_vec(turbojpeg::Image {
            pixels: &pixels[..],
            width: 96,
            pitch: 96 * 3,
            height: 64,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap();
    let seeds = [
        with_segment(&jpeg(96, 64), &exif_app1(6)),
        progressive,
        png(&small),
        webp,
    ];
    let mut noise = Noise(42);
    for seed in &seeds {
        for round in 0..300 {
            let mut data = seed.clone();
            let edits = 1 + round % 8;
            for _ in 0..edits {
                let at = (usize::from(noise.next()) << 8 | usize::from(noise.next())) % data.len();
                data[at] = noise.next();
            }
            if round % 5 == 0 {
                let len = (usize::from(noise.next()) << 8 | usize::from(noise.next())) % data.len();
                data.truncate(len);
            }
            let _ = media::compress(&data);
        }
    }
}

/// Black text-like strokes on white (a screenshot) stay black and crisp after the shrink: the
/// filter must not wash thin strokes out to grey.
#[test]
fn screenshot_text_stays_legible() {
    // 1920x1080 -> 1200x675 (0.625). Horizontal strokes 3 px thick every 16 px, vertical strokes
    // 3 px wide every 16 px in the right half: the size of UI text stems.
    let img = RgbaImage::from_fn(1920, 1080, |x, y| {
        let stroke = if x < 960 { y % 16 < 3 } else { x % 16 < 3 };
        if stroke {
            image::Rgba([0, 0, 0, 255])
        } else {
            image::Rgba([255, 255, 255, 255])
        }
    });
    let out = media::compress(&png(&img)).unwrap();
    assert_eq!((out.width, out.height), (1200, 675));
    let dec = assert_clean_jpeg(&out);
    let luma = |x: usize, y: usize| {
        let [r, g, b] = pixel(&dec, x, y);
        (u32::from(r) * 3 + u32::from(g) * 6 + u32::from(b)) / 10
    };
    // Each output period is 10 px: along it, the darkest pixel is near black, the lightest
    // near white.
    for start in (100..600).step_by(10) {
        let column: Vec<u32> = (start..start + 10).map(|y| luma(300, y)).collect();
        let row: Vec<u32> = (start + 600..start + 610).map(|x| luma(x, 300)).collect();
        for line in [column, row] {
            let (min, max) = (*line.iter().min().unwrap(), *line.iter().max().unwrap());
            assert!(min < 60 && max > 220, "strokes washed out: {line:?}");
        }
    }
}

/// PSNR of the output against a reference made from the full-size pixels, to catch a bad
/// decode scale or filter: a photo must stay close to what the `image` crate gets with Lanczos3
/// from full resolution.
#[test]
fn quality_matches_a_full_resolution_resize() {
    let (w, h) = (2400, 1800);
    let pixels = photo(w, h);
    let input = tj_encode(
        &pixels,
        w,
        h,
        turbojpeg::PixelFormat::RGB,
        turbojpeg::Subsamp::Sub2x2,
    );
    let out = media::compress(&input).unwrap();
    let dec = assert_clean_jpeg(&out);
    let full = image::RgbImage::from_raw(w, h, pixels).unwrap();
    let reference =
        image::imageops::resize(&full, 1200, 900, image::imageops::FilterType::Lanczos3);
    let mse: f64 = reference
        .as_raw()
        .iter()
        .zip(dec.pixels.iter())
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / reference.as_raw().len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / mse).log10();
    assert!(psnr > 30.0, "PSNR {psnr:.1} dB");
}
