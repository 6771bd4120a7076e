//! The store the scenario tests run on: SQLite in the data dir (the default), or PostgreSQL
//! with `TARA_TEST_DATABASE=postgres`. Then the first server of a test process starts its own
//! PostgreSQL (`initdb` and `pg_ctl` from the Debian package, in a temp dir, on a free port),
//! shared by every test of the process; each data dir gets a fresh database of its own, named
//! in the file `pg-url` inside it, so a restart on the same dir finds its data again.
//!
//! A watcher process stops that PostgreSQL and removes its folder once the test process is
//! gone (however it ended), so nothing is left running after `cargo test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The file in a data dir that names its database.
const URL_FILE: &str = "pg-url";

/// True when the tests run on PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("TARA_TEST_DATABASE").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// The PostgreSQL database of a data dir, when its tests run on PostgreSQL: all of them with
/// `TARA_TEST_DATABASE=postgres`, or one whose dir was given a database with [`url_for`]
/// (the cluster tests, whose nodes must share one).
pub fn chosen(dir: &Path) -> Option<String> {
    (enabled() || dir.join(URL_FILE).exists()).then(|| url_for(dir))
}

/// Says why a test does not run on PostgreSQL; true if it should stop there.
pub fn skip(reason: &str) -> bool {
    if enabled() {
        eprintln!("skipped on PostgreSQL: {reason}");
        return true;
    }
    false
}

struct Cluster {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    options: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The newest PostgreSQL of the Debian package.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
        .1
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the unprivileged `postgres` user when we are root (PostgreSQL refuses to
/// run as root), as ourselves otherwise.
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn must(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> Cluster {
    let bin = bin_dir();
    let root = std::env::temp_dir().join(format!(
        "tara-pg-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let data = root.join("data");
    std::fs::create_dir_all(&root).expect("pg temp dir");
    if is_root() {
        must(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root),
            "chown the PostgreSQL dir",
        );
    }
    must(
        as_pg_user(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "tara",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]),
        "initdb",
    );
    let port = free_port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        root.display()
    );
    must(
        as_pg_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(root.join("log"))
            .args(["-w", "-o", &options, "start"]),
        "pg_ctl start",
    );
    // Stops it once this process is gone, whatever way it ended.
    let pg_ctl = bin.join("pg_ctl");
    let stop = if is_root() {
        format!(
            "setpriv --reuid=postgres --regid=postgres --clear-groups {} -D {} -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "{} -D {} -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    };
    super::when_gone(
        "",
        &format!("{stop} >/dev/null 2>&1; rm -rf {}", root.display()),
    );
    Cluster {
        port,
        bin,
        data,
        log: root.join("log"),
        options,
    }
}

/// Stops this process's PostgreSQL at once (`-m immediate`: as if its machine went away).
/// Every test of the process loses it: only a test binary of its own may call this.
pub fn stop_server() {
    let c = cluster();
    must(
        as_pg_user(&c.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&c.data)
            .args(["-m", "immediate", "-w", "stop"]),
        "pg_ctl stop",
    );
}

/// Starts this process's PostgreSQL again after [`stop_server`], on the same port and data.
pub fn start_server() {
    let c = cluster();
    must(
        as_pg_user(&c.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&c.data)
            .arg("-l")
            .arg(&c.log)
            .args(["-w", "-o", &c.options, "start"]),
        "pg_ctl start",
    );
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

/// The database of a data dir, created on first use.
pub fn url_for(dir: &Path) -> String {
    let file = dir.join(URL_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url.trim().to_owned();
    }
    let c = cluster();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    must(
        Command::new(c.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &c.port.to_string(), "-U", "tara"])
            .arg(&name),
        "createdb",
    );
    let url = format!("postgres://tara@127.0.0.1:{}/{name}", c.port);
    std::fs::create_dir_all(dir).expect("data dir");
    std::fs::write(&file, &url).expect("write pg-url");
    url
}
