//! `tara-bench images [--quick] [--out DIR]`: tara-core's image compression beside
//! `vipsthumbnail` (libvips-tools) and ImageMagick's `convert`, each as a process pinned to one
//! core, on the same two inputs: a 12-megapixel photo (4000x3000 JPEG with texture, edges and
//! sensor noise) and an 8-megapixel PNG screenshot of text. For each: wall time (median of the
//! runs), peak resident memory (GNU time's maximum RSS), output bytes, and SSIM against a
//! Lanczos3 downscale of the original pixels at the output's size. Writes `images.json` to the
//! output dir (default bench/results) and prints a Markdown table.
//!
//! `tara-bench compress-one IN OUT` is the tara-core side as a process: what the others are.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tara_bench::{machine, today, Rng};

/// Builds the command that compresses IN into OUT.
type MakeCommand<'a> = dyn Fn(&Path, &Path) -> Command + 'a;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("compress-one") => {
            let (input, output) = (args.get(1), args.get(2));
            let (Some(input), Some(output)) = (input, output) else {
                bail!("usage: tara-bench compress-one IN OUT");
            };
            let data = std::fs::read(input).with_context(|| format!("reading {input}"))?;
            let jpeg = tara_core::media::compress(&data)?;
            std::fs::write(output, &jpeg.data)?;
            Ok(())
        }
        Some("images") => images(&args[1..]),
        _ => bail!("usage: tara-bench images [--quick] [--out DIR] | compress-one IN OUT"),
    }
}

#[derive(Serialize)]
struct Row {
    input: String,
    tool: String,
    median_ms: f64,
    best_ms: f64,
    peak_rss_mb: f64,
    output_bytes: u64,
    width: u32,
    height: u32,
    ssim: f64,
}

#[derive(Serialize)]
struct Report {
    date: String,
    machine: String,
    runs: usize,
    rows: Vec<Row>,
    missing: Vec<String>,
}

fn images(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let out_dir = args
        .windows(2)
        .find(|w| w[0] == "--out")
        .map(|w| PathBuf::from(&w[1]))
        .unwrap_or_else(|| PathBuf::from("bench/results"));
    let runs = if quick { 3 } else { 9 };
    std::fs::create_dir_all(&out_dir)?;
    let work = tempfile::tempdir()?;

    let photo_px = photo(4000, 3000);
    let photo = work.path().join("photo.jpg");
    save(&photo_px, 4000, 3000, &photo, image::ImageFormat::Jpeg)?;
    let shot_px = screenshot(3264, 2448)?;
    let shot = work.path().join("screenshot.png");
    save(&shot_px, 3264, 2448, &shot, image::ImageFormat::Png)?;

    let me = std::env::current_exe()?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (name, file, pixels, (w, h)) in [
        ("photo 4000x3000 JPEG", &photo, &photo_px, (4000, 3000)),
        ("screenshot 3264x2448 PNG", &shot, &shot_px, (3264, 2448)),
    ] {
        let tools: [(&str, Box<MakeCommand>); 3] = [
            (
                "tara-core",
                Box::new(|i: &Path, o: &Path| {
                    let mut c = Command::new(&me);
                    c.arg("compress-one").arg(i).arg(o);
                    c
                }),
            ),
            (
                "vipsthumbnail",
                Box::new(|i: &Path, o: &Path| {
                    let mut c = Command::new("vipsthumbnail");
                    c.env("VIPS_CONCURRENCY", "1")
                        .arg(i)
                        .args(["--size", "1200x1200", "-o"])
                        .arg(format!("{}[Q=80,strip,optimize_coding]", o.display()));
                    c
                }),
            ),
            (
                "convert",
                Box::new(|i: &Path, o: &Path| {
                    let mut c = Command::new("/usr/bin/convert");
                    c.env("MAGICK_THREAD_LIMIT", "1")
                        .arg(i)
                        .args([
                            "-resize",
                            "1200x1200>",
                            "-strip",
                            "-quality",
                            "80",
                            "-sampling-factor",
                            "4:2:0",
                        ])
                        .arg(o);
                    c
                }),
            ),
        ];
        for (tool, make) in &tools {
            let out = work.path().join(format!("{tool}.jpg"));
            match measure(make, file, &out, runs) {
                Ok((median_ms, best_ms, peak_kb)) => {
                    let data = std::fs::read(&out)?;
                    let img = image::load_from_memory(&data)?.to_rgb8();
                    let (ow, oh) = img.dimensions();
                    let reference = image::imageops::resize(
                        &image::RgbImage::from_raw(w, h, pixels.clone()).context("pixels")?,
                        ow,
                        oh,
                        image::imageops::FilterType::Lanczos3,
                    );
                    rows.push(Row {
                        input: name.into(),
                        tool: (*tool).into(),
                        median_ms,
                        best_ms,
                        peak_rss_mb: peak_kb as f64 / 1024.0,
                        output_bytes: data.len() as u64,
                        width: ow,
                        height: oh,
                        ssim: ssim(&reference, &img),
                    });
                }
                Err(e) => missing.push(format!("{tool} on {name}: {e:#}")),
            }
        }
    }
    let report = Report {
        date: today(),
        machine: machine(),
        runs,
        rows,
        missing,
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(out_dir.join("images.json"), &json)?;
    println!("{}", table(&report));
    for m in &report.missing {
        eprintln!("not measured: {m}");
    }
    Ok(())
}

/// Runs the command `runs` times pinned to core 0 under GNU time: (median ms, best ms, peak kB).
fn measure(
    make: &dyn Fn(&Path, &Path) -> Command,
    input: &Path,
    output: &Path,
    runs: usize,
) -> Result<(f64, f64, u64)> {
    let mut times = Vec::new();
    let mut peak = 0u64;
    for _ in 0..runs + 1 {
        let inner = make(input, output);
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", "taskset", "-c", "0"])
            .arg(inner.get_program())
            .args(inner.get_args());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        let start = Instant::now();
        let out = c
            .output()
            .with_context(|| format!("running {:?}", inner.get_program()))?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if !out.status.success() {
            bail!(
                "{:?} failed: {}",
                inner.get_program(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let kb: u64 = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .context("GNU time printed no maximum RSS")?;
        peak = peak.max(kb);
        times.push(ms);
    }
    // The first run warms the page cache and is not counted.
    times.remove(0);
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[0], peak))
}

fn table(r: &Report) -> String {
    let mut s = format!(
        "Images, {} runs each, one core, on {} ({}):\n\n| input | tool | median ms | best ms | peak RSS MB | bytes | size | SSIM | time vs tara-core |\n|---|---|---|---|---|---|---|---|---|\n",
        r.runs, r.machine, r.date
    );
    for row in &r.rows {
        let tara = r
            .rows
            .iter()
            .find(|t| t.input == row.input && t.tool == "tara-core")
            .map(|t| t.median_ms);
        let ratio = tara.map_or("-".into(), |t| format!("{:.2}x", row.median_ms / t));
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {}x{} | {:.4} | {} |\n",
            row.input,
            row.tool,
            row.median_ms,
            row.best_ms,
            row.peak_rss_mb,
            row.output_bytes,
            row.width,
            row.height,
            row.ssim,
            ratio
        );
    }
    s
}

fn save(px: &[u8], w: u32, h: u32, path: &Path, format: image::ImageFormat) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, px.to_vec()).context("pixels")?;
    match format {
        image::ImageFormat::Jpeg => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 92).encode_image(&img)?;
        }
        _ => img.save_with_format(path, format)?,
    }
    Ok(())
}

/// Value noise on a grid of `cell` pixels, smoothly interpolated.
fn value_noise(w: u32, h: u32, cell: u32, rng: &mut Rng) -> Vec<f32> {
    let gw = w / cell + 2;
    let gh = h / cell + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.unit() as f32).collect();
    let mut out = vec![0f32; (w * h) as usize];
    for y in 0..h {
        let gy = y / cell;
        let ty = (y % cell) as f32 / cell as f32;
        let sy = ty * ty * (3.0 - 2.0 * ty);
        for x in 0..w {
            let gx = x / cell;
            let tx = (x % cell) as f32 / cell as f32;
            let sx = tx * tx * (3.0 - 2.0 * tx);
            let at = |i: u32, j: u32| grid[(j * gw + i) as usize];
            let top = at(gx, gy) * (1.0 - sx) + at(gx + 1, gy) * sx;
            let bottom = at(gx, gy + 1) * (1.0 - sx) + at(gx + 1, gy + 1) * sx;
            out[(y * w + x) as usize] = top * (1.0 - sy) + bottom * sy;
        }
    }
    out
}

/// A photo-like scene: sky, hills with fractal texture at several scales (foliage-like detail
/// down to a few pixels), hard-edged buildings, and sensor noise.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let octaves: Vec<(Vec<f32>, f32)> = [(400, 0.45), (90, 0.25), (20, 0.18), (4, 0.12)]
        .iter()
        .map(|&(cell, weight)| (value_noise(w, h, cell, &mut rng), weight))
        .collect();
    let ridge = value_noise(w, 1, 300, &mut rng);
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        let fy = y as f32 / h as f32;
        for x in 0..w {
            let i = (y * w + x) as usize;
            let tex: f32 = octaves.iter().map(|(n, k)| n[i] * k).sum();
            let horizon = 0.35 + 0.2 * ridge[x as usize];
            let mut c = if fy < horizon {
                let t = fy / horizon;
                [
                    70.0 + 90.0 * t + 20.0 * tex,
                    120.0 + 70.0 * t + 15.0 * tex,
                    210.0 - 20.0 * t,
                ]
            } else {
                let shade = 0.55 + 0.6 * tex;
                [90.0 * shade, 130.0 * shade, 60.0 * shade]
            };
            // Buildings: flat walls with windows, the hard edges a resize must keep.
            let bx = x % 520;
            if fy > 0.5 && fy < 0.9 && bx > 60 && bx < 360 {
                let wall = [180.0, 170.0, 150.0];
                let window = (bx / 30) % 2 == 0 && (y / 40) % 2 == 0;
                c = if window { [40.0, 50.0, 70.0] } else { wall };
            }
            let n = (rng.unit() as f32 - 0.5) * 10.0;
            px.extend(c.map(|v| (v + n).clamp(0.0, 255.0) as u8));
        }
    }
    px
}

/// A chat-like screenshot: a sidebar, bubbles and lines of real text in DejaVu Sans at 22 to
/// 34 px, the sizes a phone screenshot has.
fn screenshot(w: u32, h: u32) -> Result<Vec<u8>> {
    use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
    let font_file = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find(|p| Path::new(p).exists())
        .context("DejaVu Sans is missing: apt-get install fonts-dejavu-core")?;
    let bytes = std::fs::read(font_file)?;
    let font = FontRef::try_from_slice(&bytes).context("reading the font")?;
    let mut px = vec![255u8; (w * h * 3) as usize];
    let fill = |x0: u32, y0: u32, x1: u32, y1: u32, c: [u8; 3], px: &mut Vec<u8>| {
        for y in y0..y1.min(h) {
            for x in x0..x1.min(w) {
                let i = ((y * w + x) * 3) as usize;
                px[i..i + 3].copy_from_slice(&c);
            }
        }
    };
    fill(0, 0, 700, h, [38, 42, 58], &mut px);
    fill(700, 0, w, 140, [92, 60, 160], &mut px);
    let words =
        "namaste your chart shows saturn in the tenth house so work asks patience this year \
        venus rising brings kind people tuesday morning is good for the talk we discussed remedies \
        include a short walk at sunrise and writing down three things each evening the moon is \
        waxing which favours new plans";
    let words: Vec<&str> = words.split_whitespace().collect();
    let mut rng = Rng(42);
    let draw = |text: &str, x: f32, y: f32, size: f32, c: [u8; 3], px: &mut Vec<u8>| {
        let scaled = font.as_scaled(PxScale::from(size));
        let mut caret = x;
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            let glyph = id.with_scale_and_position(PxScale::from(size), ab_glyph::point(caret, y));
            caret += scaled.h_advance(id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let (x, y) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                        return;
                    }
                    let i = ((y as u32 * w + x as u32) * 3) as usize;
                    for k in 0..3 {
                        let bg = f32::from(px[i + k]);
                        px[i + k] = (bg + (f32::from(c[k]) - bg) * cov) as u8;
                    }
                });
            }
        }
    };
    for row in 0..40 {
        let y = 200.0 + row as f32 * 56.0;
        let name = words[row % words.len()];
        draw(name, 40.0, y, 30.0, [235, 235, 245], &mut px);
    }
    let mut y = 220u32;
    let mut line = 0usize;
    while y + 200 < h {
        let mine = line % 3 == 1;
        let (x0, bg, fg) = if mine {
            (1700, [222, 245, 214], [20, 40, 20])
        } else {
            (760, [238, 238, 242], [25, 25, 30])
        };
        let lines = 1 + (rng.next_u64() % 3) as u32;
        let size = 22.0 + (rng.next_u64() % 13) as f32;
        let height = lines * (size as u32 + 14) + 30;
        fill(x0, y, x0 + 1400, y + height, bg, &mut px);
        for l in 0..lines {
            let n = 8 + (rng.next_u64() % 6) as usize;
            let start = (rng.next_u64() as usize) % words.len();
            let text: Vec<&str> = (0..n).map(|k| words[(start + k) % words.len()]).collect();
            draw(
                &text.join(" "),
                x0 as f32 + 24.0,
                (y + 20 + l * (size as u32 + 14)) as f32 + size,
                size,
                fg,
                &mut px,
            );
        }
        y += height + 36;
        line += 1;
    }
    Ok(px)
}

/// Mean SSIM of the luma of two same-size images, on 8x8 windows every 4 pixels
/// (Wang et al. 2004, with the usual K1 = 0.01, K2 = 0.03).
fn ssim(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    if a.dimensions() != b.dimensions() {
        return f64::NAN;
    }
    let (w, h) = a.dimensions();
    let luma = |img: &image::RgbImage| -> Vec<f64> {
        img.pixels()
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect()
    };
    let (la, lb) = (luma(a), luma(b));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    let mut count = 0u64;
    let mut y = 0;
    while y + 8 <= h {
        let mut x = 0;
        while x + 8 <= w {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for j in y..y + 8 {
                for i in x..x + 8 {
                    let k = (j * w + i) as usize;
                    let (p, q) = (la[k], lb[k]);
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let n = 64.0;
            let (ma, mb) = (sa / n, sb / n);
            let va = saa / n - ma * ma;
            let vb = sbb / n - mb * mb;
            let cov = sab / n - ma * mb;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
            x += 4;
        }
        y += 4;
    }
    total / count.max(1) as f64
}
