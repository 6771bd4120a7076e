//! `--cluster`: a PostgreSQL and a Redis of the run's own (Debian's `postgresql` and
//! `redis-server`), on free loopback ports in the run's folder, for two server nodes to share.
//! PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| what.to_owned())?;
    if !out.status.success() {
        bail!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub struct Postgres {
    pub url: String,
    pg_ctl: PathBuf,
    data: PathBuf,
}

impl Postgres {
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

    /// initdb in `dir`, then start it (fsync on, as in production).
    pub fn start(dir: &Path) -> Result<Self> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (apt-get install postgresql)")?
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        let bin = versions
            .pop()
            .context("no initdb under /usr/lib/postgresql")?
            .1;
        std::fs::create_dir_all(dir)?;
        if is_root() {
            run(
                Command::new("chown").arg("postgres:postgres").arg(dir),
                "chown the PostgreSQL folder",
            )?;
        }
        let data = dir.join("data");
        run(
            Self::as_pg_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "tara", "--auth=trust", "-E", "UTF8", "--locale=C"]),
            "initdb",
        )?;
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c max_connections=200",
            dir.display()
        );
        let pg_ctl = bin.join("pg_ctl");
        run(
            Self::as_pg_user(&pg_ctl)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-w", "-o", &options, "start"]),
            "pg_ctl start",
        )?;
        let pg = Self {
            url: format!("postgres://tara@127.0.0.1:{port}/postgres"),
            pg_ctl,
            data,
        };
        Ok(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::as_pg_user(&self.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub fn start(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut r = Self {
            port: free_port()?,
            dir: dir.to_path_buf(),
            child: None,
        };
        r.restart()?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    pub fn restart(&mut self) -> Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server starts (apt-get install redis-server)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("redis-server did not listen on {}", self.port)
    }

    /// SIGKILL: everything it held is gone, as when its machine dies.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
