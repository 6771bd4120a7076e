//! Times `tara_core::media::compress` on a generated 12-megapixel photo (4032x3024, like a phone
//! camera's: gradients, shapes and sensor-like noise, JPEG q92 4:2:0 with EXIF orientation 6),
//! side by side with the `image` crate alone (decode, Lanczos3, encode q80) and, when it is
//! installed, `vipsthumbnail` (libvips-tools), on one thread.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target cargo build --release -p tara-core --example compress_bench
//! taskset -c 0 /work/target/release/examples/compress_bench [RUNS]
//! ```
//!
//! Prints milliseconds per image (median and best of RUNS, default 10), the output size, the
//! PSNR of each output against a reference resized from the full-size pixels, and the peak
//! memory of one compression measured in a child process (its VmHWM minus that of a child that
//! only reads the input).

use std::time::Instant;

use image::ImageEncoder;

const W: u32 = 4032;
const H: u32 = 3024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--peak") {
        peak_child(&args[2], &args[3]);
        return;
    }
    let runs: usize = args
        .get(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
        .max(1);

    let pixels = photo(W, H);
    let input = with_orientation_6(&encode_q92(&pixels));
    println!(
        "input: {W}x{H} ({:.1} MP) JPEG q92 4:2:0 with EXIF orientation 6, {} KB; {runs} runs, one thread",
        f64::from(W * H) / 1e6,
        input.len() / 1024
    );
    // The reference: Lanczos3 from the full-size pixels, upright, no JPEG loss on the way out.
    let reference = image::imageops::rotate90(&image::imageops::resize(
        &image::RgbImage::from_raw(W, H, pixels).expect("buffer size"),
        1200,
        900,
        image::imageops::FilterType::Lanczos3,
    ));

    let tara = time(runs, || {
        let out = tara_core::media::compress(&input).expect("compress");
        (out.data, out.width, out.height)
    });
    let alone = time(runs, || image_alone(&input));

    let dir = std::env::temp_dir().join(format!("tara-compress-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("input.jpg");
    std::fs::write(&file, &input).expect("write input");
    let base = peak(&file, "none");
    let vips = vips(runs, &file, &dir.join("vips.jpg"));

    println!(
        "{:<30} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "pipeline", "median", "best", "output", "PSNR", "peak mem"
    );
    let rows = [
        ("tara-core (turbojpeg + fir)", Some("tara"), Some(tara)),
        ("image crate alone", Some("image"), Some(alone)),
        ("vipsthumbnail (process)", None, vips),
    ];
    for (name, mode, result) in rows {
        let Some((median, best, (data, w, h))) = result else {
            println!("{name:<30} (not installed: apt-get install libvips-tools)");
            continue;
        };
        let psnr = psnr_against(&reference, &data);
        let mem = match mode {
            Some(mode) => format!(
                "{:.1} MB",
                peak(&file, mode).saturating_sub(base) as f64 / 1024.0
            ),
            None => "-".to_string(),
        };
        println!(
            "{name:<30} {median:>6.1} ms {best:>6.1} ms {w:>4}x{h:<4} {:>3} KB {psnr:>6.2} dB {mem:>9}",
            data.len() / 1024,
        );
    }
    println!(
        "PSNR: against Lanczos3 from the full-size pixels. peak mem: VmHWM of a child doing one \
         compression, minus that of a child that only read the input ({:.1} MB)",
        base as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

type Timed = (f64, f64, (Vec<u8>, u32, u32));

/// `vipsthumbnail` on one thread, when it is installed: the reference the issue measured.
fn vips(runs: usize, input: &std::path::Path, output: &std::path::Path) -> Option<Timed> {
    let run = || {
        let ok = std::process::Command::new("vipsthumbnail")
            .env("VIPS_CONCURRENCY", "1")
            .arg(input)
            .args(["--size", "1200x1200", "-o"])
            .arg(format!("{}[Q=80,strip,optimize_coding]", output.display()))
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| std::fs::read(output).ok()).flatten()
    };
    run()?;
    let (median, best, data) = time(runs, || run().unwrap_or_default());
    let (w, h) = image::load_from_memory(&data)
        .map(|i| (i.width(), i.height()))
        .ok()?;
    Some((median, best, (data, w, h)))
}

/// Runs `f` once to warm up, then `runs` times: (median ms, best ms, last output).
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut out = f();
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        out = f();
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0], out)
}

/// What an app would do with the `image` crate alone: decode, orient, Lanczos3, encode q80.
fn image_alone(input: &[u8]) -> (Vec<u8>, u32, u32) {
    use image::ImageDecoder;
    let mut dec =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(input)).expect("decoder");
    let orientation = dec.orientation().expect("orientation");
    let mut img = image::DynamicImage::from_decoder(dec).expect("decode");
    img.apply_orientation(orientation);
    let (w, h) = (img.width(), img.height());
    let (tw, th) = if w >= h {
        (1200, h * 1200 / w)
    } else {
        (w * 1200 / h, 1200)
    };
    let small = img
        .resize_exact(tw, th, image::imageops::FilterType::Lanczos3)
        .to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .write_image(small.as_raw(), tw, th, image::ExtendedColorType::Rgb8)
        .expect("encode");
    (out, tw, th)
}

/// In a child process: read the input, run one pipeline, print the peak resident set (kB).
fn peak_child(file: &str, mode: &str) {
    let input = std::fs::read(file).expect("read input");
    match mode {
        "tara" => drop(tara_core::media::compress(&input).expect("compress")),
        "image" => drop(image_alone(&input)),
        _ => {}
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("{hwm}");
}

/// Peak memory of a child running `mode`, in kB (0 where /proc is not available).
fn peak(file: &std::path::Path, mode: &str) -> u64 {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .arg("--peak")
        .arg(file)
        .arg(mode)
        .output()
        .expect("run child");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn psnr_against(reference: &image::RgbImage, jpeg: &[u8]) -> f64 {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .expect("decode output")
        .to_rgb8();
    if img.dimensions() != reference.dimensions() {
        return f64::NAN;
    }
    let mse = reference
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / reference.as_raw().len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Photo-like pixels: a sky gradient, a lit "ground" with texture, a few soft discs, and noise.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) % 13) as i32 - 6
    };
    let discs = [
        (0.3, 0.35, 0.12, [220, 180, 60]),
        (0.7, 0.6, 0.2, [40, 110, 60]),
        (0.5, 0.8, 0.1, [150, 40, 50]),
    ];
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        let fy = f64::from(y) / f64::from(h);
        for x in 0..w {
            let fx = f64::from(x) / f64::from(w);
            let mut c = if fy < 0.45 {
                [
                    (90.0 + 80.0 * fy) as i32,
                    (140.0 + 60.0 * fy) as i32,
                    (230.0 - 40.0 * fy) as i32,
                ]
            } else {
                let t = ((fx * 90.0).sin() * (fy * 70.0).cos() * 25.0) as i32;
                [120 + t, (100.0 + 60.0 * fx) as i32 + t, 70 + t / 2]
            };
            for (cx, cy, r, colour) in discs {
                let d = ((fx - cx).powi(2) + (fy - cy).powi(2) * 0.5625).sqrt();
                if d < r {
                    let k = 1.0 - d / r;
                    for i in 0..3 {
                        c[i] = (f64::from(c[i]) * (1.0 - k) + f64::from(colour[i]) * k) as i32;
                    }
                }
            }
            let n = noise();
            px.extend(c.map(|v| (v + n).clamp(0, 255) as u8));
        }
    }
    px
}

fn encode_q92(pixels: &[u8]) -> Vec<u8> {
    let image = turbojpeg::Image {
        pixels,
        width: W as usize,
        pitch: W as usize * 3,
        height: H as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, 92, turbojpeg::Subsamp::Sub2x2)
        .expect("encode input")
        .to_vec()
}

/// Inserts an APP1 EXIF segment holding only Orientation = 6 (little-endian TIFF).
fn with_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend([0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(tiff);
    out.extend(&jpeg[2..]);
    out
}
