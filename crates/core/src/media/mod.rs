//! Image compression before upload.
//!
//! A picture the person picked (JPEG, PNG or WebP) becomes a small JPEG that is safe to send:
//!
//! 1. The header is read first, and an image of more than [`MAX_PIXELS`] is refused before
//!    anything is allocated for it. A JPEG that ends early is refused as [`MediaError::Truncated`]
//!    instead of being sent with a grey lower half.
//! 2. JPEG is decoded by libjpeg-turbo at the smallest scale M/8 whose long side is still at
//!    least [`MAX_LONG_SIDE`] (a 12-megapixel photo is decoded at 3/8), PNG and WebP by the
//!    `image` crate; transparency is flattened onto white.
//! 3. A Lanczos3 resize brings the long side to at most [`MAX_LONG_SIDE`] pixels, then the EXIF
//!    orientation is applied, so the result is upright for every viewer.
//! 4. The result is encoded as baseline JPEG, quality [`JPEG_QUALITY`], 4:2:0 chroma, with no
//!    metadata at all: no EXIF (so no GPS position and no camera serial), no XMP, no ICC profile,
//!    no comments.
//!
//! The work is CPU-bound and synchronous: run it on a blocking thread (`spawn_blocking`). On one
//! core a 12-megapixel photo takes about 60 ms and 14 MB above the input file's own bytes, a
//! third of `vipsthumbnail`'s time for the same size and quality (the `compress_bench` example).
//!
//! ```no_run
//! # fn main() -> Result<(), tara_core::media::MediaError> {
//! use std::path::Path;
//! let out = tara_core::media::compress_file(Path::new("IMG_0042.jpg"), Path::new("/app/data/outgoing"))?;
//! println!("{} is {}x{}, {} bytes", out.path.display(), out.width, out.height, out.bytes);
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

mod jpeg;
mod probe;
mod raster;

/// Images with more pixels than this (width × height) are refused from their header.
pub const MAX_PIXELS: u64 = 50_000_000;

/// The long side of the output, in pixels, at most.
pub const MAX_LONG_SIDE: u32 = 1200;

/// JPEG quality of the output (libjpeg scale, 1 to 100).
pub const JPEG_QUALITY: i32 = 80;

/// Files larger than this are refused before they are read (no picture within [`MAX_PIXELS`]
/// needs more, even as an uncompressed 16-bit PNG).
pub const MAX_INPUT_BYTES: u64 = 512 << 20;

/// A compressed image written to disk by [`compress_file`] or [`compress_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// The JPEG file, in the directory that was given, under a fresh name ending in `.jpg`.
    pub path: PathBuf,
    /// Width in pixels, upright (after the EXIF orientation).
    pub width: u32,
    /// Height in pixels, upright.
    pub height: u32,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// A compressed image in memory, from [`compress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jpeg {
    /// The JPEG file's bytes.
    pub data: Vec<u8>,
    /// Width in pixels, upright.
    pub width: u32,
    /// Height in pixels, upright.
    pub height: u32,
}

/// Why an image could not be compressed. The `Display` text is meant for the person who picked
/// the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The header claims more than [`MAX_PIXELS`]; nothing was decoded.
    #[error(
        "this picture is too large ({width} x {height} pixels); pictures of up to {} megapixels can be sent",
        MAX_PIXELS / 1_000_000
    )]
    TooManyPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The file is bigger than [`MAX_INPUT_BYTES`]; it was not read.
    #[error("this file is too big ({} MB); files of up to {} MB can be sent", bytes >> 20, MAX_INPUT_BYTES >> 20)]
    FileTooBig {
        /// Size of the file.
        bytes: u64,
    },
    /// The file ends before the picture does (an interrupted copy or download).
    #[error("this picture is incomplete: the file ends before the image does (was it fully downloaded?)")]
    Truncated,
    /// Not a JPEG, PNG or WebP picture, or a kind of one that is not supported.
    #[error(
        "this kind of file cannot be sent as a picture ({0}); JPEG, PNG and WebP pictures can"
    )]
    Unsupported(String),
    /// The file is damaged.
    #[error("this picture is damaged and cannot be read ({0})")]
    Corrupt(String),
    /// The encoder or the resizer failed (out of memory, most likely); the input was fine.
    #[error("the picture could not be compressed ({0})")]
    Encoder(String),
    /// Reading the input or writing the output failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Decoded pixels: packed RGB, 8 bits per channel, rows without padding.
#[derive(Debug, Clone)]
pub(crate) struct Rgb {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// A zeroed buffer of `row * rows` bytes, or an error instead of an abort when the allocation
/// fails. Sizes come from headers that were already checked against [`MAX_PIXELS`].
pub(crate) fn zeroed(row: usize, rows: usize) -> Result<Vec<u8>, MediaError> {
    let len = row
        .checked_mul(rows)
        .ok_or_else(|| MediaError::Encoder("image size overflows".into()))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| MediaError::Encoder(format!("cannot allocate {} MB", len >> 20)))?;
    buf.resize(len, 0);
    Ok(buf)
}

/// Compresses an image held in memory; see the [module documentation](self) for what is done.
pub fn compress(input: &[u8]) -> Result<Jpeg, MediaError> {
    let header = probe::probe(input)?;
    let (width, height) = (header.width, header.height);
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(MediaError::TooManyPixels { width, height });
    }
    let (decoded, orientation) = match header.format {
        probe::Format::Jpeg => (
            jpeg::decode(input, &header, MAX_LONG_SIDE)?,
            header.orientation,
        ),
        probe::Format::Png | probe::Format::WebP => raster::decode(input, &header)?,
    };
    // The target size comes from the original size, not the DCT-scaled one (which is rounded up).
    let (w, h) = raster::fit(width, height, MAX_LONG_SIDE);
    let resized = raster::resize(decoded, w, h)?;
    let upright = raster::orient(resized, orientation);
    let data = jpeg::encode(&upright)?;
    Ok(Jpeg {
        data,
        width: upright.width,
        height: upright.height,
    })
}

/// Compresses the image in `input` and writes the JPEG into `out_dir` under a fresh name.
pub fn compress_bytes(input: &[u8], out_dir: &Path) -> Result<Compressed, MediaError> {
    let jpeg = compress(input)?;
    let path = write_new_file(out_dir, &jpeg.data)?;
    Ok(Compressed {
        path,
        width: jpeg.width,
        height: jpeg.height,
        bytes: jpeg.data.len() as u64,
    })
}

/// Compresses the image file at `input` and writes the JPEG into `out_dir` under a fresh name.
/// The input is left as it is.
pub fn compress_file(input: &Path, out_dir: &Path) -> Result<Compressed, MediaError> {
    let read_err = |source| MediaError::Io {
        action: "read",
        path: input.to_path_buf(),
        source,
    };
    let file = File::open(input).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_INPUT_BYTES {
        return Err(MediaError::FileTooBig { bytes: len });
    }
    let mut data = Vec::with_capacity(len as usize);
    // `take` also bounds a file that grows while it is read.
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if data.len() as u64 > MAX_INPUT_BYTES {
        return Err(MediaError::FileTooBig {
            bytes: data.len() as u64,
        });
    }
    compress_bytes(&data, out_dir)
}

/// Writes `data` to a new `img-XXXXXX.jpg` in `dir`: first under a temporary name, synced, then
/// renamed, so the file either is complete or does not exist.
fn write_new_file(dir: &Path, data: &[u8]) -> Result<PathBuf, MediaError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MediaError::Io {
            action: "write",
            path,
            source,
        }
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".img-")
        .suffix(".jpg.part")
        .tempfile_in(dir)
        .map_err(write_err(dir))?;
    tmp.write_all(data).map_err(write_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(write_err(tmp.path()))?;
    let tmp_name = tmp
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    // ".img-abc123.jpg.part" -> "img-abc123.jpg": as unique as the temporary name.
    let name = tmp_name
        .trim_start_matches('.')
        .trim_end_matches(".part")
        .to_string();
    let path = dir.join(name);
    tmp.persist_noclobber(&path).map_err(|e| MediaError::Io {
        action: "write",
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}
