//! The systemd side: the shipped unit passes `systemd-analyze verify`, and
//! the daemon speaks the notify protocol to a real NOTIFY_SOCKET datagram
//! socket made here: READY=1 once it forwards, WATCHDOG=1 while every worker
//! lives, no keep-alive once a worker is stuck, and a non-zero exit with
//! bond0's carrier down when a worker dies. A missing config exits with
//! EX_CONFIG (78), which the unit does not restart.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{exe, require_root, TwoLinks};

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = std::env::temp_dir().join(format!("xbond-unit-{}", std::process::id()));
    let root = dir.join("root");
    let out = Command::new(exe())
        .args(["install", "--root"])
        .arg(&root)
        .arg("--bin")
        .arg(exe())
        .arg("--ifupdown-dir")
        .arg(dir.join("network"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/xbond@.service")).unwrap();
    assert!(unit.contains(&format!("ExecStart={} run --bond %i", exe().display())));
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
    ] {
        assert!(unit.contains(line), "{line} in the unit");
    }
    // verify wants an instance of the template.
    let inst = dir.join("xbond@bond0.service");
    std::fs::write(&inst, &unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&inst)
        .output()
        .expect("systemd-analyze (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown or bad directives are warnings on stderr with exit 0: any line
    // about our unit is a failure.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("xbond@")).collect();
    assert!(out.status.success() && ours.is_empty(), "verify: {stderr}");
    let hook = std::fs::read_to_string(dir.join("network/if-pre-up.d/xbond")).unwrap();
    assert!(hook.contains(&format!("exec {} ifupdown", exe().display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_config_exits_with_ex_config() {
    let st = Command::new(exe())
        .args(["run", "--config", "/nonexistent/xbond/bond9.toml"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(78));
}

/// A daemon started with NOTIFY_SOCKET and WATCHDOG_USEC, and the socket.
struct Notified {
    t: TwoLinks,
    child: Child,
    sock: UnixDatagram,
    log: std::path::PathBuf,
    control: String,
}

const WATCHDOG_MS: u64 = 400;

impl Notified {
    fn start(prefix: &str, fault: Option<&str>) -> Notified {
        require_root();
        let t = TwoLinks::new(prefix);
        t.far_bridge("10.72.0.2/24");
        let dir = t.lab.dir().to_path_buf();
        let notify = dir.join("notify");
        let sock = UnixDatagram::bind(&notify).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let control = dir.join("x.sock").display().to_string();
        let cfg = dir.join("x.toml");
        std::fs::write(
            &cfg,
            format!(
                "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100\ncontrol_socket = \"{control}\"\n"
            ),
        )
        .unwrap();
        let log = dir.join("x.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &t.host])
            .arg(exe())
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", (WATCHDOG_MS * 1000).to_string())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        if let Some(f) = fault {
            cmd.args(["--inject-fault", f]);
        }
        let child = cmd.spawn().unwrap();
        Notified {
            t,
            child,
            sock,
            log,
            control,
        }
    }

    /// The next datagram within `timeout`, if any.
    fn recv(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    }

    /// Waits for a datagram with line `line`.
    fn expect(&self, line: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(m) = self.recv(deadline - Instant::now()) {
                if m.lines().any(|l| l == line) {
                    return true;
                }
            }
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for READY=1, then gives bond0 its address.
    fn ready_with_address(&self) {
        assert!(
            self.expect("READY=1", Duration::from_secs(20)),
            "READY=1; log:\n{}",
            self.log()
        );
        self.t
            .lab
            .exec(
                &self.t.host,
                &["ip", "addr", "add", "10.72.0.1/24", "dev", "bond0"],
            )
            .unwrap();
    }

    /// One frame from the host through bond0: the fault strikes on it.
    fn send_a_frame(&self) {
        let _ = self
            .t
            .lab
            .exec(&self.t.host, &["ping", "-c", "1", "-W", "1", "10.72.0.2"]);
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ready_comes_once_forwarding_works_and_the_watchdog_is_fed() {
    let n = Notified::start("sn", None);
    n.ready_with_address();
    // Ready means it forwards: the status answers and a ping crosses.
    common::status(&n.control);
    n.t.ping(&n.t.host, "10.72.0.2");
    for _ in 0..3 {
        assert!(
            n.expect("WATCHDOG=1", Duration::from_secs(10)),
            "keep-alives; log:\n{}",
            n.log()
        );
    }
}

#[test]
fn a_stuck_worker_stops_the_keep_alives() {
    let n = Notified::start("sw", Some("worker-stall"));
    n.ready_with_address();
    assert!(n.expect("WATCHDOG=1", Duration::from_secs(10)));
    n.send_a_frame();
    // Read the socket meanwhile, as systemd does.
    let stuck = xbond::lab::wait_for(Duration::from_secs(30), || {
        while n.recv(Duration::from_millis(10)).is_some() {}
        n.log().contains("has been stuck").then_some(())
    });
    assert!(stuck.is_some(), "the stall is seen; log:\n{}", n.log());
    // From the moment the stall is logged, no keep-alive: drain what was in
    // flight, then several watchdog periods pass without one.
    while n.recv(Duration::from_millis(50)).is_some() {}
    let mut msgs = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(WATCHDOG_MS * 4);
    while Instant::now() < deadline {
        if let Some(m) = n.recv(deadline - Instant::now()) {
            msgs.push(m);
        }
    }
    assert!(
        !msgs.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "keep-alives after the stall: {msgs:?}"
    );
    // Silence because of the stall, not because the daemon is gone: it runs
    // and answers (systemd, not xbond, ends it when the watchdog expires).
    let mut n = n;
    assert!(
        n.child.try_wait().unwrap().is_none(),
        "the daemon still runs"
    );
    common::status(&n.control);
}

#[test]
fn a_dead_worker_ends_the_daemon_with_an_error_and_bond0_without_carrier() {
    let mut n = Notified::start("sp", Some("worker-panic"));
    n.ready_with_address();
    n.send_a_frame();
    let status = xbond::lab::wait_for(Duration::from_secs(30), || {
        n.child.try_wait().ok().flatten()
    });
    let status = status.expect("the daemon exits");
    assert!(!status.success(), "non-zero exit: {status}");
    let log = n.log();
    assert!(log.contains("the worker of queue 0 died"), "{log}");
    // bond0 is kept (the unit restarts the bond into it), without carrier.
    let carrier =
        n.t.lab
            .exec(&n.t.host, &["cat", "/sys/class/net/bond0/carrier"])
            .expect("bond0 is kept");
    assert_eq!(carrier.trim(), "0", "bond0 has no carrier");
}
