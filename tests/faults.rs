//! Faults under traffic, each with nothing lost that should not be: after
//! each the pool's books balance (every UMEM frame free, in a fill ring or
//! on a TX ring) and the daemon's RSS has grown by less than [`RSS_BOUND`].
//!
//! - a slave deleted while running (hot-unplug), then re-created;
//! - a slave's carrier flapping at 10 Hz for 60 s, with updelay and
//!   downdelay;
//! - `kill -9` of the daemon under traffic, then a start;
//! - floods of LACPDUs and of malformed LACPDUs on one slave;
//! - runt, oversized, truncated and garbage frames at full rate on the
//!   slaves and on the upper port.

mod common;

use std::time::Duration;

use common::{assert_pool_balanced, status, wait_status, TwoLinks};

/// How much the daemon's resident memory may grow across one fault.
const RSS_BOUND: u64 = 32 << 20;

/// The generous bound on anything that must happen (it only catches hangs).
const HANG: Duration = Duration::from_secs(30);

/// The resident set of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = st
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn assert_rss_within(pid: u32, before: u64, what: &str) {
    let after = rss(pid);
    assert!(
        after < before + RSS_BOUND,
        "{what}: RSS grew from {before} to {after} bytes (bound {RSS_BOUND})"
    );
}

/// Active-backup over a0 (primary) and a1 to a bridge with 10.81.0.2.
fn active_backup(t: &mut TwoLinks, prefix: &str) -> String {
    t.far_bridge(&format!("{prefix}.2/24"));
    let host = t.host.clone();
    t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\n",
        &format!("{prefix}.1/24"),
    )
}

#[test]
fn a_deleted_slave_leaves_the_bond_going_over_the_other_and_rejoins_when_recreated() {
    let mut t = TwoLinks::new("fu");
    let sock = active_backup(&mut t, "10.81.0");
    let pid = t.lab.pid("xa").unwrap();
    t.ping(&t.host, "10.81.0.2");
    let before = rss(pid);
    // Hot-unplug: a0 goes (with its peer b0).
    t.lab.exec(&t.host, &["ip", "link", "del", "a0"]).unwrap();
    let s = wait_status(&sock, HANG, |s| {
        s.active.as_deref() == Some("a1")
            && s.runtime
                .notes
                .iter()
                .any(|n| n.contains("slave a0: the interface is gone"))
    });
    assert_eq!(s.slaves[0].mii_status, "down", "{}", s.proc_text());
    t.ping(&t.host, "10.81.0.2");
    // Plugged back: a new a0 (a new index, a new MAC) rejoins; primary
    // a0 (primary_reselect always) is active again and carries the ping.
    t.lab
        .exec(
            &t.host,
            &[
                "ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", &t.far,
            ],
        )
        .unwrap();
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "master", "br0", "up"])
        .unwrap();
    let s = wait_status(&sock, HANG, |s| {
        s.active.as_deref() == Some("a0")
            && s.slaves[0].mii_status == "up"
            && s.runtime.notes.is_empty()
    });
    assert_eq!(s.runtime.data_plane_restarts, 1, "{}", s.proc_text());
    assert!(
        s.proc_text()
            .contains("Data plane restarts: 1 (last: a0 rejoined"),
        "{}",
        s.proc_text()
    );
    // The new a0 carries the bond's MAC, as the old one did.
    assert_eq!(t.mac(&t.host, "a0"), t.mac(&t.host, "bond0"));
    t.ping(&t.host, "10.81.0.2");
    let s = status(&sock);
    assert!(s.slaves[0].runtime.tx_frames > 0, "{}", s.proc_text());
    assert_pool_balanced(&sock);
    assert_rss_within(pid, before, "a slave deleted and re-created");
    // One XDP program on each slave: the old ones went with the old data
    // plane.
    for s in ["a0", "a1"] {
        let text = t
            .lab
            .exec(&t.host, &["ip", "-d", "link", "show", s])
            .unwrap();
        assert_eq!(text.matches("prog/xdp id").count(), 1, "{s}: {text}");
    }
    assert!(t.lab.running("xa"), "the daemon goes on");
}
