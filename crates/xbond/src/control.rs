//! The daemon's control socket: a root-only unix stream socket
//! (`/run/xbond/<bond>.sock`, mode 0600 in a 0700 directory). A client writes
//! one request line (`status`) and reads one JSON line back.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam::channel::{bounded, Receiver, Sender};
use xbond_core::status::Status;
use xbond_xdp::sys::Waker;

/// A request from a client, answered by the control loop.
#[derive(Debug)]
pub struct Request {
    reply: Sender<String>,
}

impl Request {
    /// Answers with the status.
    pub fn reply(self, status: &Status) {
        let text =
            serde_json::to_string(status).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        // The client may have gone; nothing to do then.
        let _ = self.reply.send(text);
    }
}

/// The listening socket; removed on drop.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    rx: Receiver<Request>,
}

impl ControlServer {
    /// Binds the socket at `path` and starts accepting clients.
    /// Each request wakes the control loop through `waker`.
    pub fn bind(path: &str, waker: Arc<Waker>) -> Result<ControlServer> {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if dir == Path::new("/run/xbond") {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                bail!("{} is in use by a running xbond", path.display());
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind({})", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, rx) = bounded::<Request>(16);
        std::thread::Builder::new()
            .name("xbond-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let tx = tx.clone();
                    let waker = waker.clone();
                    // One short-lived thread per client keeps a slow client
                    // from holding up others.
                    let _ = std::thread::Builder::new()
                        .name("xbond-client".into())
                        .spawn(move || handle(conn, tx, &waker));
                }
            })
            .context("spawning the control thread")?;
        Ok(ControlServer { path, rx })
    }

    /// Requests waiting for the control loop.
    pub fn requests(&self) -> Receiver<Request> {
        self.rx.clone()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn handle(conn: UnixStream, tx: Sender<Request>, waker: &Waker) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let Ok(reader) = conn.try_clone() else { return };
    if BufReader::new(reader).read_line(&mut line).is_err() {
        return;
    }
    let answer = match line.trim() {
        "status" => {
            let (rtx, rrx) = bounded(1);
            if tx.send(Request { reply: rtx }).is_err() {
                return;
            }
            waker.wake();
            rrx.recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| "{\"error\":\"the daemon did not answer\"}".into())
        }
        other => format!("{{\"error\":\"unknown request {other:?}; valid: status\"}}"),
    };
    let mut conn = conn;
    let _ = conn.write_all(answer.as_bytes());
    let _ = conn.write_all(b"\n");
}

/// Asks the daemon behind `path` for its status.
pub fn query_status(path: &str) -> Result<Status> {
    let mut conn = UnixStream::connect(path).with_context(|| {
        format!("connecting to {path}: is xbond running for this bond (and are you root)?")
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(b"status\n")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    if let Ok(err) = serde_json::from_str::<serde_json::Value>(&line) {
        if let Some(e) = err.get("error").and_then(|e| e.as_str()) {
            bail!("xbond answered: {e}");
        }
    }
    serde_json::from_str(&line).with_context(|| format!("parsing the status from {path}"))
}
