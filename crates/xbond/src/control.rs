//! The daemon's control socket: a unix stream socket
//! (`/run/xbond/<bond>.sock`), made under a restrictive umask (mode 0600, or
//! 0660 with group `control_group`). A client writes one request line
//! (`status`, `active-slave IF`, `set OPTION VALUE ...`, `enslave IF`,
//! `release IF`) and reads one JSON line back. The peer's credentials
//! (SO_PEERCRED) decide what it may ask: root anything, members of
//! `control_group` the status, anyone else nothing. Requests are bounded in
//! size ([`MAX_REQUEST`]) and clients in number ([`MAX_CLIENTS`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam::channel::{bounded, Receiver, Sender};
use xbond_core::request::{parse_request, Request as Asked};
use xbond_core::status::Status;
use xbond_xdp::sys::Waker;

/// The longest request line, in bytes.
pub const MAX_REQUEST: u64 = xbond_core::request::MAX_REQUEST as u64;

/// Clients served at once; more are refused.
pub const MAX_CLIENTS: usize = 16;

/// What a client may ask, from its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// root: every request.
    Full,
    /// A member of `control_group`: the status.
    Status,
}

/// A request from a client, answered by the control loop.
#[derive(Debug)]
pub struct Request {
    /// What the client asked.
    pub asked: Asked,
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

    /// Answers a change: what it did, or why not.
    pub fn answer(self, r: std::result::Result<serde_json::Value, String>) {
        let v = match r {
            Ok(mut v) => {
                v["ok"] = serde_json::Value::Bool(true);
                v
            }
            Err(e) => serde_json::json!({ "error": e }),
        };
        let _ = self.reply.send(v.to_string());
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
    pub fn bind(path: &str, group: Option<&str>, waker: Arc<Waker>) -> Result<ControlServer> {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            if dir == Path::new("/run/xbond") {
                // 0711 with control_group: its members reach the socket by
                // name, and list nothing.
                let mode = if group.is_some() { 0o711 } else { 0o700 };
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                bail!("{} is in use by a running xbond", path.display());
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        let gid = group.map(group_id).transpose()?;
        // Made 0600 (umask 0177): no window in which others could connect.
        let listener = xbond_xdp::sys::with_umask(0o177, || UnixListener::bind(&path))
            .with_context(|| format!("bind({})", path.display()))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&path, Some(0), Some(gid))
                .with_context(|| format!("chown {} to group {gid}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        }
        let clients = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = bounded::<Request>(16);
        std::thread::Builder::new()
            .name("xbond-control".into())
            .spawn(move || {
                xbond_xdp::privilege::plain_thread();
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let access = match access(&conn, gid) {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = reply(&mut conn, &error_json(&e));
                            continue;
                        }
                    };
                    if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                        clients.fetch_sub(1, Ordering::AcqRel);
                        let _ = reply(
                            &mut conn,
                            &error_json(&format!("busy: {MAX_CLIENTS} clients already connected")),
                        );
                        continue;
                    }
                    let tx = tx.clone();
                    let waker = waker.clone();
                    let mine = clients.clone();
                    // One short-lived thread per client keeps a slow client
                    // from holding up others.
                    let spawned = std::thread::Builder::new()
                        .name("xbond-client".into())
                        .spawn(move || {
                            handle(conn, access, tx, &waker);
                            mine.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        clients.fetch_sub(1, Ordering::AcqRel);
                    }
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

/// The gid of group `name`, from /etc/group.
fn group_id(name: &str) -> Result<u32> {
    let text = std::fs::read_to_string("/etc/group").context("reading /etc/group")?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (n, _, gid) = (f.next()?, f.next()?, f.next()?);
            (n == name).then(|| gid.parse().ok()).flatten()
        })
        .next()
        .with_context(|| format!("control_group {name:?}: no such group in /etc/group"))
}

/// What the peer of `conn` may ask.
fn access(conn: &UnixStream, group: Option<u32>) -> std::result::Result<Access, String> {
    let cred = xbond_xdp::sys::peer_cred(conn.as_raw_fd())
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    if cred.uid == 0 {
        return Ok(Access::Full);
    }
    if group.is_some_and(|g| g == cred.gid) {
        return Ok(Access::Status);
    }
    Err(format!(
        "permission denied: uid {} gid {} is neither root nor in control_group",
        cred.uid, cred.gid
    ))
}

fn error_json(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

fn reply(conn: &mut UnixStream, answer: &str) -> std::io::Result<()> {
    conn.write_all(answer.as_bytes())?;
    conn.write_all(b"\n")
}

fn handle(conn: UnixStream, access: Access, tx: Sender<Request>, waker: &Waker) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut bytes = Vec::new();
    let Ok(reader) = conn.try_clone() else { return };
    // One bounded line: a client cannot make the daemon read without end.
    let read = BufReader::new(reader.take(MAX_REQUEST)).read_until(b'\n', &mut bytes);
    let mut conn = conn;
    if read.is_err() {
        bytes.clear();
    }
    let answer = match parse_request(&bytes) {
        Ok(asked) if asked.changes() && access != Access::Full => error_json(
            "permission denied: only root may change the bond (control_group reads the status)",
        ),
        Ok(asked) => {
            let (rtx, rrx) = bounded(1);
            if tx.send(Request { asked, reply: rtx }).is_err() {
                return;
            }
            waker.wake();
            // A change that starts the data plane again takes a moment.
            rrx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| "{\"error\":\"the daemon did not answer\"}".into())
        }
        Err(e) => error_json(&e),
    };
    let _ = reply(&mut conn, &answer);
}

/// Sends `request` (one line, e.g. `set miimon 200`) to the daemon behind
/// `path` and returns its answer; an answer with `error` is an error.
pub fn request(path: &str, request: &str) -> Result<serde_json::Value> {
    let mut conn = UnixStream::connect(path).with_context(|| {
        format!("connecting to {path}: is xbond running for this bond (and are you root)?")
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(40)))?;
    let _ = conn.write_all(format!("{}\n", request.trim()).as_bytes());
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("parsing the answer from {path}: {line:?}"))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("{e}");
    }
    Ok(v)
}

/// Asks the daemon behind `path` for its status.
pub fn query_status(path: &str) -> Result<Status> {
    let mut conn = UnixStream::connect(path).with_context(|| {
        format!("connecting to {path}: is xbond running for this bond (and are you root)?")
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    // A daemon that refuses the client answers before reading and closes:
    // the write may fail, the answer is still there to read.
    let _ = conn.write_all(b"status\n");
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    if let Ok(err) = serde_json::from_str::<serde_json::Value>(&line) {
        if let Some(e) = err.get("error").and_then(|e| e.as_str()) {
            bail!("xbond answered: {e}");
        }
    }
    serde_json::from_str(&line).with_context(|| format!("parsing the status from {path}"))
}
