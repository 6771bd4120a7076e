//! A small W3C WebDriver client (just what the end-to-end tests use), and the processes behind
//! it: an X server (Xvfb) and one tauri-driver per app instance.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something the UI should show.
pub const WAIT: Duration = Duration::from_secs(30);

/// The W3C key code of Enter.
pub const ENTER: &str = "\u{E007}";

/// A child process killed (with its whole process group) when dropped.
pub struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).spawn().with_context(|| {
            format!("starting {name} (is it installed? `cargo xtask test` installs it)")
        })?;
        Ok(Self { child, name })
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The group: tauri-driver's WebKitWebDriver and the app it started go too.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// A virtual X display for the windows.
pub struct Display {
    pub name: String,
    _xvfb: Proc,
}

impl Display {
    /// Starts Xvfb on the first free display number from 90.
    pub fn start() -> Result<Self> {
        for n in 90..140 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let name = format!(":{n}");
            let mut xvfb = Proc::spawn(
                "Xvfb",
                Command::new("Xvfb")
                    .args([&name, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return Ok(Self { name, _xvfb: xvfb });
                }
                if xvfb.check_alive().is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        bail!("no X display could be started")
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One app instance driven through its own tauri-driver.
pub struct App {
    http: reqwest::Client,
    base: String,
    session: String,
    pub name: &'static str,
    _driver: Proc,
}

impl App {
    /// Starts tauri-driver and through it the app at `binary` with `args`, its local data in
    /// `data_dir` (TARA_DATA_DIR), on `display`.
    pub async fn launch(
        name: &'static str,
        display: &Display,
        binary: &Path,
        args: &[&str],
        data_dir: &Path,
        log: &Path,
    ) -> Result<Self> {
        let (port, native) = (free_port()?, free_port()?);
        let log_file = std::fs::File::create(log)?;
        let mut driver = Proc::spawn(
            "tauri-driver",
            Command::new(tauri_driver())
                .args([
                    "--port",
                    &port.to_string(),
                    "--native-port",
                    &native.to_string(),
                ])
                .env("DISPLAY", &display.name)
                .env("TARA_DATA_DIR", data_dir)
                .env("RUST_LOG", "info,tara_core=debug")
                .env_remove("WAYLAND_DISPLAY")
                .stdout(log_file.try_clone()?)
                .stderr(log_file),
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            driver.check_alive()?;
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("tauri-driver did not answer on {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "tauri:options": {"application": binary, "args": args}
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = res["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session: {res}"))?
            .to_owned();
        Ok(Self {
            http,
            base,
            session,
            name,
            _driver: driver,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await?.json().await?;
        if let Some(err) = res["value"]["error"].as_str() {
            bail!("{}: {err}: {}", self.name, res["value"]["message"]);
        }
        Ok(res["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Runs `script` (a function body; `arguments` as given) in the page and returns its value.
    pub async fn js(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Every element matching a CSS selector, now.
    pub async fn all(&self, css: &str) -> Result<Vec<String>> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        e.as_object()
                            .and_then(|o| o.values().next())
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether an element is displayed.
    pub async fn displayed(&self, el: &str) -> Result<bool> {
        Ok(self
            .get(&format!("/element/{el}/displayed"))
            .await?
            .as_bool()
            == Some(true))
    }

    /// Waits for a displayed element matching `css`.
    pub async fn find(&self, css: &str) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            for el in self.all(css).await.unwrap_or_default() {
                if self.displayed(&el).await.unwrap_or(false) {
                    return Ok(el);
                }
            }
            if Instant::now() > deadline {
                bail!("{}: nothing displayed matches {css}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no displayed element matches `css`.
    pub async fn gone(&self, css: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut shown = false;
            for el in self.all(css).await.unwrap_or_default() {
                shown |= self.displayed(&el).await.unwrap_or(false);
            }
            if !shown {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{}: {css} is still displayed", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `check` (a JS function body returning a value) returns something truthy,
    /// and returns it. `what` says what was awaited when it never comes.
    pub async fn until(&self, what: &str, check: &str) -> Result<Value> {
        self.until_within(what, check, WAIT).await
    }

    /// [`Self::until`] with its own patience, for what takes longer than usual by design.
    pub async fn until_within(&self, what: &str, check: &str, within: Duration) -> Result<Value> {
        let deadline = Instant::now() + within;
        let mut last;
        loop {
            match self.js(check, json!([])).await {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => last = v,
                Err(e) => last = json!(e.to_string()),
            }
            if Instant::now() > deadline {
                bail!("{}: {what} never happened (last: {last})", self.name);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let el = self.find(css).await?;
        self.post(&format!("/element/{el}/click"), json!({}))
            .await?;
        Ok(())
    }

    /// Types into the element (keys as W3C key codes, e.g. [`ENTER`]).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let el = self.find(css).await?;
        self.post(&format!("/element/{el}/value"), json!({"text": text}))
            .await?;
        Ok(())
    }

    /// Gives a file input a file, as a person picking it would.
    pub async fn attach(&self, css: &str, file: &Path) -> Result<()> {
        let els = self.all(css).await?;
        let el = els.first().ok_or_else(|| anyhow!("no {css}"))?;
        self.post(
            &format!("/element/{el}/value"),
            json!({"text": file.to_string_lossy()}),
        )
        .await?;
        Ok(())
    }

    pub async fn text(&self, css: &str) -> Result<String> {
        let el = self.find(css).await?;
        Ok(self
            .get(&format!("/element/{el}/text"))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Resizes the window (a phone-sized window for the guide).
    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await?;
        Ok(())
    }

    /// Whether a JS dialog (alert) is open: the page ran script it should not have.
    pub async fn alert_open(&self) -> bool {
        self.get("/alert/text").await.is_ok()
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let b64 = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .context("screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Ends the session (closes the app).
    pub async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// tauri-driver from PATH, or where `cargo install` puts it.
fn tauri_driver() -> PathBuf {
    if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tauri-driver"))
            .find(|p| p.is_file())
    }) {
        return p;
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    home.join("bin").join("tauri-driver")
}
