//! Shared pieces of the integration tests: two namespaces joined by two veth
//! links, xbond started inside them, and the pktgen sender and sink. The
//! namespaces, the bridge, ping and the sink are the library's
//! (`xbond::lab`); the failover tests use its failover lab whole.
#![allow(dead_code)] // Not every test file uses every helper.

use std::path::Path;
use std::time::Duration;

use xbond::lab::Lab;
use xbond::pktgen::SinkReport;
use xbond_core::status::Status;

pub fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xbond"))
}

pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "integration tests build network namespaces and need root"
    );
}

/// Namespace "host" (slaves a0, a1) and namespace "far" (b0, b1).
pub struct TwoLinks {
    pub lab: Lab,
    pub host: String,
    pub far: String,
}

impl TwoLinks {
    pub fn new(prefix: &str) -> TwoLinks {
        require_root();
        let mut lab = Lab::new(prefix).expect("lab");
        let host = lab.netns("host").expect("netns host");
        let far = lab.netns("far").expect("netns far");
        lab.veth(&host, "a0", &far, "b0").expect("veth a0-b0");
        lab.veth(&host, "a1", &far, "b1").expect("veth a1-b1");
        TwoLinks { lab, host, far }
    }

    /// Puts b0 and b1 in a bridge with address `addr`: a switch without a
    /// LAG, and a neighbour behind it (the failover lab's bridge, with its
    /// fixed MAC).
    pub fn far_bridge(&self, addr: &str) {
        self.lab
            .bridge(&self.far, &["b0", "b1"], addr)
            .expect("bridge br0");
    }

    /// Starts xbond in `ns` with `config` (name, slaves and options) and puts
    /// `addr` on the bond. Returns the control socket.
    pub fn start(&mut self, ns: &str, name: &str, config: &str, addr: &str) -> String {
        let ns = ns.to_string();
        let sock = self
            .lab
            .start_xbond(exe(), &ns, name, config)
            .expect("xbond starts");
        self.lab
            .exec(&ns, &["ip", "addr", "add", addr, "dev", "bond0"])
            .unwrap();
        sock
    }

    pub fn mac(&self, ns: &str, iface: &str) -> String {
        self.lab
            .mac(ns, iface)
            .unwrap_or_else(|e| panic!("MAC of {iface}: {e}"))
    }

    /// Starts a sink (process `name`) on `ifaces` in `ns`; returns once it
    /// listens.
    pub fn sink(&mut self, ns: &str, name: &str, ifaces: &[&str], stream: u32, expect: u64) {
        self.lab
            .start_sink(exe(), ns, name, ifaces, stream, expect)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    pub fn sink_report(&mut self, name: &str) -> SinkReport {
        self.lab
            .sink_report(name)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Sends `count` frames of `flows` flows from `iface` in `ns`, at `rate`
    /// frames/s, and waits for the sender to finish.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        ns: &str,
        iface: &str,
        dst_mac: &str,
        flows: u32,
        count: u64,
        rate: u64,
        stream: u32,
    ) {
        let exe = exe().display().to_string();
        let (f, c, r, s) = (
            flows.to_string(),
            count.to_string(),
            rate.to_string(),
            stream.to_string(),
        );
        self.lab
            .exec(
                ns,
                &[
                    &exe,
                    "pktgen",
                    "send",
                    "--iface",
                    iface,
                    "--dst-mac",
                    dst_mac,
                    "--flows",
                    &f,
                    "--count",
                    &c,
                    "--rate",
                    &r,
                    "--stream",
                    &s,
                ],
            )
            .unwrap();
    }

    pub fn ping(&self, ns: &str, dst: &str) -> String {
        self.lab
            .ping(ns, dst, 5)
            .unwrap_or_else(|e| panic!("ping {dst} from {ns} failed: {e}"))
    }
}

pub fn status(sock: &str) -> Status {
    xbond::control::query_status(sock).expect("status")
}

/// Waits until the status satisfies `f`.
pub fn wait_status(sock: &str, timeout: Duration, f: impl Fn(&Status) -> bool) -> Status {
    let mut last = None;
    let ok = xbond::lab::wait_for(timeout, || {
        let s = status(sock);
        let hit = f(&s);
        last = Some(s.clone());
        hit.then_some(s)
    });
    ok.unwrap_or_else(|| {
        panic!(
            "status never matched; last:\n{}",
            last.map(|s| s.proc_text()).unwrap_or_default()
        )
    })
}

/// The pool books of every worker close: each frame is free, in a fill ring
/// or on a TX ring.
pub fn assert_pool_balanced(sock: &str) {
    let s = wait_status(sock, Duration::from_secs(3), |s| {
        let r = &s.runtime;
        r.pool_free + r.pool_in_fill + r.pool_in_tx == r.pool_total && r.pool_in_tx == 0
    });
    assert!(s.runtime.pool_total > 0);
}

/// Runs a command in the root namespace and returns its stdout.
pub fn run(args: &[&str]) -> String {
    xbond::lab::cmd(args).unwrap_or_else(|e| panic!("{e}"))
}

/// The sockets of every queue have the memory layout `layout` asked for:
/// a UMEM each with "split", one shared UMEM otherwise (veth binds copy
/// mode only, so "auto" shares).
#[allow(dead_code)] // Not every test binary checks layouts.
pub fn assert_layout(sock: &str, layout: &str) {
    let s = status(sock);
    let sockets: Vec<_> = s.runtime.queues.iter().flat_map(|q| &q.sockets).collect();
    assert!(!sockets.is_empty(), "{}", s.proc_text());
    for k in sockets {
        assert_eq!(
            k.own_umem,
            layout == "split",
            "{}: {}",
            k.iface,
            s.proc_text()
        );
        assert_eq!(k.xdp_bind, "copy", "veth: {}", s.proc_text());
    }
}

/// Runs `cmd` to the end: (exit status, stdout then stderr).
pub fn output(cmd: &mut std::process::Command) -> (i32, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}
