//! `cargo xtask cluster [--nodes N] [--server-only]`: Tara as it runs on several machines, on
//! this one. PostgreSQL and Redis from the Debian packages (installed when missing), run as
//! the current user in a data folder rather than as system services; N tara-server nodes (2 by
//! default) sharing them; nginx in front on 127.0.0.1:7700 with WebSocket upgrade and
//! least-connections balancing; then the same two app windows as `cargo xtask run`, talking
//! to nginx. Everything stops on Ctrl-C; the data stays for the next start.
//!
//! docs/deploy.md shows the nginx config this writes ([`nginx_conf`]); a test below keeps the
//! two the same.

use super::deps::is_root;
use super::{
    check, data_home, deps, has_display, open_windows, target_dir, wait_for_health, Running,
};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where nginx listens: the address `cargo xtask run` uses, so the app and README work as is.
const FRONT: &str = "127.0.0.1:7700";
/// PostgreSQL's and Redis's ports, next to it.
const PG_PORT: u16 = 7710;
const REDIS_PORT: u16 = 7711;
/// Node i listens on 127.0.0.1:(7700 + i), i from 1.
const FIRST_NODE_PORT: u16 = 7701;

/// The nginx config for nodes on these ports, with its files under `prefix`.
pub fn nginx_conf(prefix: &str, node_ports: &[u16]) -> String {
    let servers: String = node_ports
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"))
        .collect();
    format!(
        r#"# Written by `cargo xtask cluster`: nginx in front of the tara-server nodes.
daemon off;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 16384;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    # WebSocket upgrade for /api/v1/realtime; plain keep-alive for everything else.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}

    upstream tara {{
        # Realtime connections are long: send a new one to the node holding the fewest.
        least_conn;
{servers}        keepalive 64;
    }}

    server {{
        listen {FRONT};
        # Images up to 10 MiB, as the server takes them.
        client_max_body_size 11m;

        location / {{
            proxy_pass http://tara;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # Sockets stay open for hours; the server pings every 20 s.
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
            # A node that is gone: the next one, for requests that can be repeated.
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"#
    )
}

/// The newest PostgreSQL of the Debian package.
fn pg_bin() -> Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (apt-get install postgresql)")?
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
        .map(|(_, b)| b)
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

/// PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user the
/// Debian package created.
fn pg_command(program: &Path) -> Command {
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

/// Stops PostgreSQL when the cluster stops, however `cluster` ends.
struct Postgres {
    pg_ctl: PathBuf,
    data: PathBuf,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_command()])
            .stdout(Stdio::null())
            .status();
    }
}

impl Postgres {
    /// The shell command that stops it.
    fn stop_command(&self) -> String {
        let stop = format!(
            "{} -D {} -m fast stop",
            self.pg_ctl.display(),
            self.data.display()
        );
        if is_root() {
            format!("setpriv --reuid=postgres --regid=postgres --clear-groups {stop}")
        } else {
            stop
        }
    }
}

/// Ctrl-C ends this process before any destructor runs, and PostgreSQL (a daemon of its own)
/// would outlive it: a watcher in a session of its own stops the children and PostgreSQL once
/// this process is gone, however it ended.
fn watch_over(children: &Running, postgres: &Postgres) -> Result<()> {
    let pids: Vec<String> = children.0.iter().map(|c| c.id().to_string()).collect();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -TERM {pids} 2>/dev/null; {stop} >/dev/null 2>&1",
        me = std::process::id(),
        pids = pids.join(" "),
        stop = postgres.stop_command()
    );
    check(
        "the cluster's watcher",
        Command::new("setsid")
            .args(["-f", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status(),
    )
}

fn start_postgres(root: &Path) -> Result<Postgres> {
    let bin = pg_bin()?;
    // As root, PostgreSQL runs as `postgres`, which cannot enter root's home: its folder is
    // then under /var/tmp (kept across reboots, unlike /tmp).
    let dir = if is_root() {
        PathBuf::from("/var/tmp/tara/cluster/postgres")
    } else {
        root.join("postgres")
    };
    let data = dir.join("data");
    std::fs::create_dir_all(&dir)?;
    if is_root() {
        check(
            "chown the PostgreSQL folder",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status(),
        )?;
    }
    if !data.join("PG_VERSION").exists() {
        println!("creating a PostgreSQL cluster in {}…", data.display());
        check(
            "initdb",
            pg_command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "tara", "--auth=trust", "-E", "UTF8", "--locale=C"])
                .stdout(Stdio::null())
                .status(),
        )?;
    }
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={PG_PORT} -c unix_socket_directories={} -c max_connections=200",
        dir.display()
    );
    let pg = Postgres {
        pg_ctl: bin.join("pg_ctl"),
        data: data.clone(),
    };
    check(
        "pg_ctl start",
        pg_command(&pg.pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-o", &options, "start"])
            .stdout(Stdio::null())
            .status(),
    )?;
    // The database, once; "already exists" on later starts is fine.
    let _ = Command::new(bin.join("createdb"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &PG_PORT.to_string(),
            "-U",
            "tara",
            "tara",
        ])
        .stderr(Stdio::null())
        .status();
    Ok(pg)
}

pub fn cluster(args: &[String]) -> Result<()> {
    let nodes: u16 = match args.iter().position(|a| a == "--nodes") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=9).contains(n))
            .context("--nodes takes a number from 1 to 9")?,
        None => 2,
    };
    let server_only = args.iter().any(|a| a == "--server-only");
    let with_app = !server_only && has_display();
    let services: &[&str] = &["postgresql", "redis-server", "nginx"];
    if with_app {
        deps::debian(&[deps::BUILD, services])?;
    } else {
        deps::debian(&[&["build-essential", "cmake", "nasm"], services])?;
    }
    println!("building…");
    let mut build = super::cargo();
    build.args(["build", "-p", "tara-server"]);
    if with_app {
        build.args(["-p", "tara-app"]);
    }
    check("cargo build", build.status())?;
    let bin = target_dir().join("debug");

    let root = data_home().join("cluster");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let postgres = start_postgres(&root)?;
    let mut running = Running(Vec::new());

    let redis_dir = root.join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    running.0.push(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &REDIS_PORT.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&redis_dir)
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?,
    );
    wait_for_health(&format!("127.0.0.1:{REDIS_PORT}"))?;

    // One data dir for every node: the signing key (tokens from one node are good on all)
    // and uploaded media. On several machines it is a shared folder, or the key is copied.
    let data = root.join("server");
    std::fs::create_dir_all(&data)?;
    let database = format!("postgres://tara@127.0.0.1:{PG_PORT}/tara");
    let redis = format!("redis://127.0.0.1:{REDIS_PORT}");
    let mut ports = Vec::new();
    for i in 0..nodes {
        let port = FIRST_NODE_PORT + i;
        let bind = format!("127.0.0.1:{port}");
        running.0.push(
            Command::new(bin.join("tara-server"))
                .args(["serve", "--bind", &bind, "--dev", "--demo", "--data-dir"])
                .arg(&data)
                .args(["--database-url", &database, "--redis-url", &redis])
                .args(["--node-id", &format!("node-{}", i + 1)])
                // Every request reaches a node from nginx's address: limit per client there.
                .arg("--no-per-ip-limits")
                .spawn()
                .context("starting tara-server")?,
        );
        // One at a time: the first runs the migrations and makes the key the others read.
        wait_for_health(&bind)?;
        ports.push(port);
    }

    let nginx_dir = root.join("nginx");
    for sub in [
        "tmp/body",
        "tmp/proxy",
        "tmp/fastcgi",
        "tmp/uwsgi",
        "tmp/scgi",
    ] {
        let d = nginx_dir.join(sub);
        std::fs::create_dir_all(&d)?;
        // Started as root, nginx's workers run as an unprivileged user: they buffer uploads here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))?;
    }
    let conf = nginx_dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&nginx_dir.to_string_lossy(), &ports))?;
    let nginx = if Path::new("/usr/sbin/nginx").exists() {
        PathBuf::from("/usr/sbin/nginx")
    } else {
        PathBuf::from("nginx")
    };
    let mut test = Command::new(&nginx);
    let error_log = nginx_dir.join("error.log");
    test.arg("-t")
        .arg("-q")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&nginx_dir);
    test.arg("-e").arg(&error_log);
    if !test.status().context("running nginx -t")?.success() {
        bail!("nginx does not accept {}", conf.display());
    }
    running.0.push(
        Command::new(&nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&nginx_dir)
            .arg("-e")
            .arg(&error_log)
            .spawn()
            .context("starting nginx")?,
    );
    wait_for_health(FRONT)?;
    let url = format!("http://{FRONT}");
    if with_app {
        open_windows(&bin, &url, &mut running)?;
    }
    println!(
        "
A Tara cluster is running: nginx on {url} in front of {nodes} nodes ({}),
PostgreSQL on 127.0.0.1:{PG_PORT} (database tara), Redis on 127.0.0.1:{REDIS_PORT};
data in {}. Each node's /api/v1/health names it and its backends.
{}
Log in as the README says for `cargo xtask run`: it is the same address and the same demo.
Ctrl-C stops everything.",
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", "),
        root.display(),
        if with_app {
            "Two app windows are opening: \"Tara — customer\" and \"Tara — guide\"."
        } else {
            "(no app windows: --server-only, or no display)"
        },
    );
    watch_over(&running, &postgres)?;
    // Ends when nginx ends (Ctrl-C reaches the whole foreground group).
    let nginx_at = 1 + nodes as usize;
    let status = running.0[nginx_at].wait();
    check("nginx", status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_deploy_shows_the_nginx_config_the_cluster_runs() {
        let docs = std::fs::read_to_string(super::super::root().join("docs/deploy.md"))
            .expect("docs/deploy.md");
        let conf = nginx_conf("/var/lib/tara/nginx", &[7701, 7702]);
        assert!(
            docs.contains(&conf),
            "docs/deploy.md must show nginx_conf(\"/var/lib/tara/nginx\", [7701, 7702]) as is:\n{conf}"
        );
    }

    #[test]
    fn the_config_balances_by_least_connections_and_upgrades_websockets() {
        let conf = nginx_conf("/x", &[7701, 7702, 7703]);
        assert!(conf.contains("least_conn;"));
        assert!(conf.contains("proxy_set_header Upgrade $http_upgrade;"));
        for p in [7701, 7702, 7703] {
            assert!(conf.contains(&format!("server 127.0.0.1:{p} ")), "{conf}");
        }
        assert!(conf.contains("listen 127.0.0.1:7700;"));
    }
}
