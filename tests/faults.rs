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

/// `xbond pktgen inject` in `ns`: `count` frames of `kind` on `iface` at
/// `rate` frames/s (0: flat out); returns the frames sent.
fn inject(t: &TwoLinks, ns: &str, iface: &str, kind: &str, count: u64, rate: u64) -> u64 {
    inject_timed(t, ns, iface, kind, count, rate).0
}

/// As [`inject`]; also the seconds the sending took.
fn inject_timed(
    t: &TwoLinks,
    ns: &str,
    iface: &str,
    kind: &str,
    count: u64,
    rate: u64,
) -> (u64, f64) {
    let exe = common::exe().display().to_string();
    let out = t
        .lab
        .exec(
            ns,
            &[
                &exe,
                "pktgen",
                "inject",
                "--iface",
                iface,
                "--kind",
                kind,
                "--count",
                &count.to_string(),
                "--rate",
                &rate.to_string(),
            ],
        )
        .unwrap();
    let r: xbond::pktgen::SendReport = serde_json::from_str(out.trim()).unwrap();
    (r.sent, r.seconds)
}

/// The thread of `pid` named `name`, and its CPU time so far (utime +
/// stime, in clock ticks).
fn thread_cpu(pid: u32, name: &str) -> u64 {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = t.unwrap().path();
        if std::fs::read_to_string(dir.join("comm")).unwrap().trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        return f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    }
    panic!("no thread {name} in {pid}")
}

fn lacp_cfg(a: &str, b: &str) -> String {
    format!(
        "name = \"bond0\"\nslaves = [\"{a}\", \"{b}\"]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"fast\"\nxmit_hash_policy = \"layer3+4\"\n"
    )
}

fn port(s: &xbond_core::status::Status, i: usize) -> xbond_core::lacp::PortStatus {
    s.slaves[i].lacp.clone().expect("802.3ad port")
}

#[test]
fn floods_of_lacpdus_and_of_malformed_ones_on_one_slave_leave_the_other_aggregated() {
    use xbond_core::lacp::MuxState;
    let mut t = TwoLinks::new("fl");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(&host, "xa", &lacp_cfg("a0", "a1"), "10.82.0.1/24");
    t.start(&far, "xb", &lacp_cfg("b0", "b1"), "10.82.0.2/24");
    let both = |s: &xbond_core::status::Status| {
        (0..2).all(|i| port(s, i).mux == MuxState::CollectingDistributing)
    };
    let s = wait_status(&sock, HANG, both);
    let pid = t.lab.pid("xa").unwrap();
    let a1 = port(&s, 1);
    let before_rss = rss(pid);
    let cpu0 = thread_cpu(pid, "xbond-bond0");
    let t0 = std::time::Instant::now();
    // From the far side of a0 only: 10 000 LACPDUs/s from another system for
    // 3 s, then as many malformed ones.
    let valid = inject(&t, &far, "b0", "lacpdu", 30_000, 10_000);
    // The first flood read to its end (the counters stand still), so that
    // what follows counts the second alone.
    let quiet = || {
        let c = port(&status(&sock), 0).counters;
        (c.lacpdu_rx, c.illegal_rx, c.over_budget_rx)
    };
    let mut last = quiet();
    xbond::lab::wait_for(HANG, || {
        std::thread::sleep(Duration::from_millis(300));
        let now = quiet();
        let still = now == last;
        last = now;
        still.then_some(())
    })
    .expect("the flood's frames read");
    let c0 = port(&status(&sock), 0).counters;
    let (malformed, took) = inject_timed(&t, &far, "b0", "lacpdu-malformed", 30_000, 10_000);
    let cpu = thread_cpu(pid, "xbond-bond0") - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    // Clock ticks are USER_HZ, 100 a second: ticks per second is percent.
    eprintln!(
        "figure: control thread CPU {:.1} % of a core over {secs:.1} s of floods ({valid} LACPDUs, {malformed} malformed, 10 000/s)",
        cpu as f64 / secs
    );
    // The malformed ones were counted on a0: read as illegal up to the
    // port's budget of 100 a second, the rest dropped unread as over
    // budget (all that got past the socket's buffer).
    let s = wait_status(&sock, HANG, |s| {
        port(s, 0).counters.illegal_rx > c0.illegal_rx
    });
    let c = port(&s, 0).counters;
    let (illegal, over) = (
        c.illegal_rx - c0.illegal_rx,
        c.over_budget_rx - c0.over_budget_rx,
    );
    // At most a budget per second the flood lasted (and the partial ones
    // at either end).
    let windows = took.ceil() as u64 + 2;
    assert!(
        illegal <= windows * 100 && over > 0,
        "illegal {illegal}, over budget {over}, {took:.1} s"
    );
    // Over budget also drops the real partner's few LACPDUs in those
    // seconds (3 a second at most): a0's partner times out meanwhile.
    assert!(
        illegal + over <= malformed + 20,
        "{illegal} + {over} of {malformed}"
    );
    // a1 never noticed: same aggregator and partner, no churn, still
    // collecting and distributing; the bond carries traffic.
    let s = wait_status(&sock, HANG, |s| {
        port(s, 1).mux == MuxState::CollectingDistributing
    });
    let now = port(&s, 1);
    assert_eq!(now.aggregator_id, a1.aggregator_id, "{}", s.proc_text());
    assert_eq!(
        (now.partner_system, now.partner_key, now.partner_port),
        (a1.partner_system, a1.partner_key, a1.partner_port)
    );
    assert_eq!(
        (now.actor_churned, now.partner_churned),
        (a1.actor_churned, a1.partner_churned)
    );
    assert!(s.mii_status);
    t.ping(&host, "10.82.0.2");
    // Once the floods end a0 aggregates with its real partner again.
    wait_status(&sock, HANG, both);
    assert_pool_balanced(&sock);
    assert_rss_within(pid, before_rss, "LACPDU floods");
    assert!(t.lab.running("xa"));
}

#[test]
fn truncated_and_garbage_frames_at_full_rate_on_slaves_and_bond0_are_survived() {
    let mut t = TwoLinks::new("fg");
    let sock = active_backup(&mut t, "10.83.0");
    let (host, far) = (t.host.clone(), t.far.clone());
    let pid = t.lab.pid("xa").unwrap();
    let before = rss(pid);
    let mut sent = 0;
    for kind in ["truncated", "garbage"] {
        for (ns, iface) in [(&far, "b0"), (&far, "b1"), (&host, "bond0")] {
            sent += inject(&t, ns, iface, kind, 20_000, 0);
        }
    }
    assert!(sent > 100_000, "{sent} frames sent");
    // Nothing panicked: the bond forwards, both ways, and its books close.
    t.ping(&host, "10.83.0.2");
    let s = status(&sock);
    assert_eq!(s.active.as_deref(), Some("a0"), "{}", s.proc_text());
    assert!(s.slaves.iter().all(|s| s.mii_status == "up"));
    assert_pool_balanced(&sock);
    assert_rss_within(pid, before, "garbage at full rate");
    assert!(t.lab.running("xa"));
}

#[test]
fn a_carrier_flapping_at_10_hz_for_60_s_honours_downdelay_and_updelay() {
    let mut t = TwoLinks::new("ff");
    t.far_bridge("10.84.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\nupdelay = 5000\ndowndelay = 5000\n",
        "10.84.0.1/24",
    );
    wait_status(&sock, HANG, |s| {
        s.active.as_deref() == Some("a0") && s.slaves.iter().all(|s| s.mii_status == "up")
    });
    let pid = t.lab.pid("xa").unwrap();
    let before = rss(pid);
    // Traffic all along: a stream from bond0 to the bridge.
    let exe = common::exe().display().to_string();
    let bridge_mac = t.mac(&far, "br0");
    t.lab
        .spawn(
            &host,
            "stream",
            &[
                &exe,
                "pktgen",
                "send",
                "--iface",
                "bond0",
                "--dst-mac",
                &bridge_mac,
                "--count",
                "600000",
                "--rate",
                "5000",
            ],
        )
        .unwrap();
    // 300 periods of 100 ms (50 ms down, 50 ms up): 30 s at 10 Hz, longer
    // when the machine is busy; what counts is that no period comes near
    // the delays (5 s).
    let flap = |periods: u64| {
        for _ in 0..periods {
            for state in ["down", "up"] {
                t.lab
                    .exec(&far, &["ip", "link", "set", "b0", state])
                    .unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    // 30 s of flapping on the active slave: no down period lasts downdelay
    // (5 s), so a0 is never taken down and stays active.
    flap(300);
    let s = status(&sock);
    assert_eq!(s.active.as_deref(), Some("a0"), "{}", s.proc_text());
    assert_eq!(s.slaves[0].link_failure_count, 0, "{}", s.proc_text());
    // Down for good: after downdelay a1 takes over.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, HANG, |s| s.active.as_deref() == Some("a1"));
    // 30 s more of flapping: no up period lasts updelay, so a0 never comes
    // back and a1 stays active.
    flap(300);
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    let s = status(&sock);
    assert_eq!(s.active.as_deref(), Some("a1"), "{}", s.proc_text());
    // Down, or "going back" if its last up period had begun.
    assert_ne!(s.slaves[0].mii_status, "up", "{}", s.proc_text());
    assert_eq!(s.slaves[0].link_failure_count, 1, "{}", s.proc_text());
    // Consistent at the end: a0 up for good comes back after updelay and,
    // as primary, is active again.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    let s = wait_status(&sock, HANG, |s| {
        s.active.as_deref() == Some("a0") && s.slaves.iter().all(|s| s.mii_status == "up")
    });
    assert_eq!(s.slaves[0].link_failure_count, 1, "{}", s.proc_text());
    t.lab.stop("stream").unwrap();
    t.ping(&host, "10.84.0.2");
    assert_pool_balanced(&sock);
    assert_rss_within(pid, before, "60 s of carrier flapping");
    let log = std::fs::read_to_string(t.lab.dir().join("xa.log")).unwrap();
    assert!(
        log.contains(
            "bond0: (slave a0): link status down for active interface, disabling it in 5000 ms"
        ) && log.contains("bond0: (slave a0): link status up, enabling it in 5000 ms"),
        "{log}"
    );
    // Committed once down (after the first 30 s) and up twice (at start
    // and at the end): hundreds of carrier changes, no other commit.
    let count = |what: &str| {
        log.matches(&format!("(slave a0): link status definitely {what}"))
            .count()
    };
    assert_eq!((count("down"), count("up")), (1, 2), "{log}");
}

#[test]
fn after_kill_9_under_traffic_a_start_resumes_with_no_stale_programs_or_sockets() {
    let mut t = TwoLinks::new("fk");
    let sock = active_backup(&mut t, "10.85.0");
    let (host, far) = (t.host.clone(), t.far.clone());
    let ifindex = |t: &TwoLinks| {
        t.lab
            .exec(&host, &["cat", "/sys/class/net/bond0/ifindex"])
            .unwrap()
    };
    let bond0 = ifindex(&t);
    let exe = common::exe().display().to_string();
    let bond_mac = t.mac(&host, "bond0");
    // Traffic into the bond from the far side all along.
    t.lab
        .spawn(
            &far,
            "stream",
            &[
                &exe,
                "pktgen",
                "send",
                "--iface",
                "br0",
                "--dst-mac",
                &bond_mac,
                "--count",
                "100000",
                "--rate",
                "5000",
            ],
        )
        .unwrap();
    wait_status(&sock, HANG, |s| s.slaves[0].runtime.rx_frames > 1000);
    let programs = |t: &TwoLinks| -> Vec<String> {
        ["a0", "a1", "xb-bond0"]
            .iter()
            .map(|i| {
                let text = t.lab.exec(&host, &["ip", "-d", "link", "show", i]).unwrap();
                text.split("prog/xdp id ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or("none")
                    .to_string()
            })
            .collect()
    };
    let old = programs(&t);
    assert!(old.iter().all(|p| p != "none"), "{old:?}");
    t.lab.kill("xa").unwrap();
    // bond0 is kept through the crash.
    assert_eq!(ifindex(&t), bond0);
    let sock = t
        .lab
        .start_xbond(
            common::exe(),
            &host,
            "xa",
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\n",
        )
        .expect("xbond starts again");
    assert_eq!(ifindex(&t), bond0, "the same bond0 adopted");
    t.ping(&host, "10.85.0.2");
    let s = wait_status(&sock, HANG, |s| s.runtime.queues[0].to_host > 100);
    assert_eq!(s.active.as_deref(), Some("a0"));
    // One program per interface, none of them the old ones.
    let new = programs(&t);
    for (o, n) in old.iter().zip(&new) {
        assert!(n != "none" && n != o, "old {old:?} new {new:?}");
    }
    // The new sockets bound to every queue: a socket the killed daemon had
    // left bound would have made its queue busy (EBUSY). (The kernel here
    // has no XDP socket diagnostics for `ss --xdp` to list them.)
    let bound: Vec<_> = s.runtime.queues.iter().flat_map(|q| &q.sockets).collect();
    assert_eq!(bound.len(), 3, "{}", s.proc_text());
    for k in bound {
        assert_eq!(k.xdp_bind, "copy", "{}", s.proc_text());
        assert!(
            k.refused.iter().all(|r| !r.contains("busy")),
            "{}",
            s.proc_text()
        );
    }
    t.lab.stop("stream").unwrap();
    assert_pool_balanced(&sock);
}

#[test]
fn runts_oversized_and_garbage_from_an_in_process_upper_are_counted_and_dropped() {
    use xbond::runtime::{Runtime, RuntimeOptions, Upper};
    let t = TwoLinks::new("fi");
    t.far_bridge("10.86.0.2/24");
    let netns = std::path::PathBuf::from(format!("/run/netns/{}", t.host));
    let state = t.lab.dir().join("app0.sock").display().to_string();
    // The bond runs in this test's process, in a thread moved into the
    // host namespace (the threads it starts are born there).
    let report = std::thread::spawn(move || {
        xbond_xdp::sys::enter_netns(&netns).expect("setns");
        let cfg = xbond_core::config::BondConfig::from_toml_str(&format!(
            "name = \"app0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-rr\"\nmiimon = 100\ncontrol_socket = \"{state}\"\n"
        ))
        .unwrap();
        let rt = Runtime::start(
            cfg,
            RuntimeOptions {
                upper: Upper::Channel,
                control_socket: false,
                systemd: false,
                ..RuntimeOptions::default()
            },
        )
        .expect("the bond starts");
        let ch = rt.upper_channel().expect("in-process upper").clone();
        let max = rt.status().unwrap().runtime.max_frame as usize;
        let put = |f: Vec<u8>| {
            let mut f = Some(f);
            while let Some(frame) = f.take() {
                if ch.send(frame.clone()).is_err() {
                    std::thread::yield_now();
                    f = Some(frame);
                }
            }
        };
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let (mut runts, mut oversized, mut garbage) = (0u64, 0u64, 0u64);
        for i in 0..30_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match i % 3 {
                // 0 to 13 bytes: shorter than an Ethernet header.
                0 => {
                    put(vec![0xab; (rng % 14) as usize]);
                    runts += 1;
                }
                // Longer than the bond's MTU allows.
                1 => {
                    put(vec![0xcd; max + 1 + (rng % 2000) as usize]);
                    oversized += 1;
                }
                // Garbage of a length that crosses.
                _ => {
                    let len = 14 + (rng % (max as u64 - 13)) as usize;
                    put((0..len).map(|k| (rng >> (k % 56)) as u8).collect());
                    garbage += 1;
                }
            }
        }
        let want = (runts, oversized);
        let s = xbond::lab::wait_for(HANG, || {
            let s = rt.status().unwrap();
            let r = &s.runtime;
            let books = r.pool_free + r.pool_in_fill + r.pool_in_tx == r.pool_total;
            ((r.malformed, r.oversize) == want && books && r.pool_in_tx == 0).then_some(s)
        });
        let last = rt.status().unwrap();
        rt.stop().expect("a clean stop");
        (s.is_some(), want, garbage, last.proc_text())
    })
    .join()
    .expect("the bond's thread");
    let (ok, (runts, oversized), garbage, text) = report;
    assert!(
        ok,
        "{runts} runts and {oversized} oversized frames counted, books closed ({garbage} garbage frames crossed):\n{text}"
    );
}
