//! `cargo xtask bench [NAME…] [--quick]`: the benchmarks that compare Tara with a peer in the
//! same run. Raw results go to bench/results/NAME.json; the table of each in BENCHMARKS.md is
//! rewritten between its `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers.
//!
//! Built so far: `images` (tara-core beside vipsthumbnail and ImageMagick), `outbox` and
//! `history` (against the goals: they have no peer to run beside). The relay,
//! connections, resume-storm and app benchmarks of the benchmark issue are not built yet; asking
//! for one says so and fails rather than print a figure nobody measured.

use anyhow::{bail, Context, Result};

/// What each benchmark needs from Debian.
const IMAGES_DEPS: &[&str] = &["libvips-tools", "imagemagick", "time", "fonts-dejavu-core"];

/// Every benchmark name the issue lists, and whether it is built.
const NAMES: &[(&str, bool)] = &[
    ("relay", false),
    ("connections", false),
    ("resume", false),
    ("outbox", true),
    ("images", true),
    ("history", true),
    ("app", false),
];

pub fn bench(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut names: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    for n in &names {
        match NAMES.iter().find(|(name, _)| name == n) {
            None => bail!(
                "no benchmark {n:?}; the names are {}",
                NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
            Some((_, false)) => bail!("the {n} benchmark is not built yet"),
            Some(_) => {}
        }
    }
    if names.is_empty() {
        names = NAMES
            .iter()
            .filter(|(_, built)| *built)
            .map(|(n, _)| *n)
            .collect();
        let missing: Vec<&str> = NAMES.iter().filter(|(_, b)| !b).map(|(n, _)| *n).collect();
        eprintln!("not built yet, so not run: {}", missing.join(", "));
    }
    let root = super::root();
    let results = root.join("bench/results");
    std::fs::create_dir_all(&results)?;
    let out = results.to_string_lossy().to_string();
    for name in names {
        let (bin, mut args): (&str, Vec<&str>) = match name {
            "images" => {
                super::deps::debian(&[IMAGES_DEPS])?;
                let mut a = vec!["images", "--out", &out];
                if quick {
                    a.push("--quick");
                }
                ("tara-bench", a)
            }
            "outbox" => (
                "tara-load",
                vec!["--outbox", "10000", "--runs", if quick { "1" } else { "3" }],
            ),
            "history" => (
                "tara-load",
                if quick {
                    vec![
                        "--history",
                        "100000",
                        "--consultations",
                        "1000",
                        "--seconds",
                        "3",
                    ]
                } else {
                    vec![
                        "--history",
                        "1000000",
                        "--consultations",
                        "10000",
                        "--seconds",
                        "10",
                    ]
                },
            ),
            _ => bail!("the {name} benchmark has no runner"),
        };
        if bin == "tara-load" {
            args.extend(["--report", &out]);
        }
        let output = super::cargo()
            .args([
                "run",
                "--release",
                "-q",
                "-p",
                "tara-bench",
                "--bin",
                bin,
                "--",
            ])
            .args(&args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {bin}"))?;
        if !output.status.success() {
            bail!("the {name} benchmark failed ({})", output.status);
        }
        let table = if bin == "tara-load" {
            // Its stdout carries the server's lines too; the table is in the file.
            let file = results.join(format!("{name}.md"));
            std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
        } else {
            String::from_utf8_lossy(&output.stdout).to_string()
        };
        print!("{table}");
        rewrite(&root.join("BENCHMARKS.md"), name, &table)?;
    }
    Ok(())
}

/// Replaces what stands between the markers of `name` in `file`.
fn rewrite(file: &std::path::Path, name: &str, table: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let (Some(a), Some(b)) = (text.find(&begin), text.find(&end)) else {
        bail!("{} has no {begin} … {end} markers", file.display());
    };
    let new = format!(
        "{}{begin}\n{}\n{}",
        &text[..a],
        table.trim_end(),
        &text[b..]
    );
    std::fs::write(file, new)?;
    Ok(())
}
