//! Jumbo frames, in every mode: bond0's MTU goes down to the slaves and to
//! its veth peer, at start and when it changes while xbond runs, and
//! 9000-byte frames cross the bond both ways (AF_XDP multi-buffer: a frame
//! spans several UMEM buffers); a frame longer than bond0's MTU allows is counted and dropped;
//! the slaves get their own MTU back when xbond stops.

mod common;

use std::time::Duration;

use common::{assert_pool_balanced, status, wait_status, TwoLinks};
/// Actor state bit: Distributing.
const DISTRIBUTING: u8 = 0x20;

fn mtu(t: &TwoLinks, ns: &str, iface: &str) -> u32 {
    let path = format!("/sys/class/net/{iface}/mtu");
    t.lab
        .exec(ns, &["cat", &path])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn set_mtu(t: &TwoLinks, ns: &str, iface: &str, mtu: u32) {
    t.lab
        .exec(ns, &["ip", "link", "set", iface, "mtu", &mtu.to_string()])
        .unwrap();
}

/// Pings `dst` from `ns` with `size` bytes of payload, never fragmented.
fn ping_df(t: &TwoLinks, ns: &str, dst: &str, size: u32) -> Result<String, String> {
    let size = size.to_string();
    let _ = t.lab.exec(ns, &["ping", "-c", "1", "-W", "2", dst]);
    t.lab
        .exec(
            ns,
            &[
                "ping", "-M", "do", "-s", &size, "-c", "3", "-i", "0.2", "-W", "3", dst,
            ],
        )
        .map_err(|e| format!("{e:#}"))
}

/// Raises bond0's MTU to 9000 while xbond runs and waits until xbond has
/// passed it down (the status says so, and the slaves carry it).
fn raise_to_9000(t: &TwoLinks, ns: &str, sock: &str, slaves: [&str; 2]) {
    set_mtu(t, ns, "bond0", 9000);
    let s = wait_status(sock, Duration::from_secs(10), |s| s.runtime.mtu == 9000);
    assert_eq!(s.runtime.max_frame, 9018, "{}", s.proc_text());
    assert!(s.runtime.notes.is_empty(), "{:?}", s.runtime.notes);
    for k in s.runtime.queues.iter().flat_map(|q| &q.sockets) {
        assert!(k.multi_buffer, "{}: {}", k.iface, s.proc_text());
    }
    for sl in slaves {
        assert_eq!(mtu(t, ns, sl), 9000, "{sl} follows bond0");
    }
}

#[test]
fn active_backup_carries_9000_byte_frames_both_ways_and_drops_longer_ones() {
    let mut t = TwoLinks::new("jb");
    let (host, far) = (t.host.clone(), t.far.clone());
    for p in ["b0", "b1"] {
        set_mtu(&t, &far, p, 9000);
    }
    t.far_bridge("10.81.0.2/24");
    set_mtu(&t, &far, "br0", 9000);
    set_mtu(&t, &host, "a0", 1400);
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\n",
        "10.81.0.1/24",
    );
    // At start the slaves take bond0's MTU.
    assert_eq!(status(&sock).runtime.mtu, 1500);
    assert_eq!(mtu(&t, &host, "a0"), 1500, "a0 takes bond0's MTU at start");
    assert!(
        ping_df(&t, &host, "10.81.0.2", 8972).is_err(),
        "no 9000-byte frame leaves bond0 at MTU 1500"
    );

    raise_to_9000(&t, &host, &sock, ["a0", "a1"]);
    let peer = status(&sock).runtime.peer_name;
    assert_eq!(mtu(&t, &host, &peer), 9000, "bond0's peer follows");
    for (from, to) in [(&host, "10.81.0.2"), (&far, "10.81.0.1")] {
        let out = ping_df(&t, from, to, 8972).unwrap_or_else(|e| panic!("from {from}: {e}"));
        assert!(out.contains(" 0% packet loss"), "{out}");
    }
    // Across a failover too.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(10), |s| {
        s.active.as_deref() == Some("a1")
    });
    let out = ping_df(&t, &host, "10.81.0.2", 8972).unwrap();
    assert!(out.contains(" 0% packet loss"), "{out}");

    // An MTU above what multi-buffer carries: named with the limit, and
    // the bond goes on with frames up to that limit.
    set_mtu(&t, &host, "bond0", 30000);
    let s = wait_status(&sock, Duration::from_secs(10), |s| s.runtime.mtu == 30000);
    assert_eq!(s.runtime.max_frame, 28672, "{}", s.proc_text());
    assert!(
        s.proc_text().contains(
            "Warning: MTU 30000 needs frames of 30018 bytes, but the AF_XDP sockets carry 28672"
        ),
        "{}",
        s.proc_text()
    );
    let out = ping_df(&t, &host, "10.81.0.2", 8972).unwrap();
    assert!(out.contains(" 0% packet loss"), "{out}");

    // A slave that takes longer frames than bond0 allows (its MTU raised
    // by hand): what arrives longer than bond0's MTU is counted and dropped.
    set_mtu(&t, &host, "bond0", 4000);
    wait_status(&sock, Duration::from_secs(10), |s| s.runtime.mtu == 4000);
    set_mtu(&t, &host, "a1", 9000);
    let before = status(&sock).runtime.oversize;
    assert!(ping_df(&t, &far, "10.81.0.1", 8972).is_err());
    let s = wait_status(&sock, Duration::from_secs(10), |s| {
        s.runtime.oversize >= before + 3
    });
    assert!(
        s.proc_text()
            .contains("MTU: 4000 (frames up to 4018 bytes cross)"),
        "{}",
        s.proc_text()
    );
    assert_pool_balanced(&sock);

    // Stopped, xbond gives the slaves the MTU they had before it started.
    assert!(t.lab.stop("xa").unwrap(), "xbond exits cleanly");
    assert_eq!(mtu(&t, &host, "a0"), 1400, "a0 gets its own MTU back");
    assert_eq!(mtu(&t, &host, "a1"), 1500, "a1 too");
}

#[test]
fn lacp_bonds_carry_9000_byte_frames_both_ways() {
    let mut t = TwoLinks::new("jl");
    let (host, far) = (t.host.clone(), t.far.clone());
    let cfg = "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"802.3ad\"\nlacp_rate = \"fast\"\nxmit_hash_policy = \"layer3+4\"\nmiimon = 100\n";
    let sock_a = t.start(&host, "xa", cfg, "10.82.0.1/24");
    let sock_b = t.start(
        &far,
        "xb",
        &cfg.replace("a0", "b0").replace("a1", "b1"),
        "10.82.0.2/24",
    );
    raise_to_9000(&t, &host, &sock_a, ["a0", "a1"]);
    raise_to_9000(&t, &far, &sock_b, ["b0", "b1"]);
    for sock in [&sock_a, &sock_b] {
        wait_status(sock, Duration::from_secs(20), |s| {
            s.slaves.iter().all(|sl| {
                sl.lacp
                    .as_ref()
                    .is_some_and(|p| p.actor_state & DISTRIBUTING != 0)
            })
        });
    }
    for (from, to) in [(&host, "10.82.0.2"), (&far, "10.82.0.1")] {
        let out = ping_df(&t, from, to, 8972).unwrap_or_else(|e| panic!("from {from}: {e}"));
        assert!(out.contains(" 0% packet loss"), "{out}");
    }
    assert_pool_balanced(&sock_a);
    assert_pool_balanced(&sock_b);
}

#[test]
fn broadcast_copies_9000_byte_frames_to_every_link() {
    let mut t = TwoLinks::new("jc");
    let (host, far) = (t.host.clone(), t.far.clone());
    let cfg = "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"broadcast\"\nmiimon = 100\n";
    let sock_a = t.start(&host, "xa", cfg, "10.83.0.1/24");
    let sock_b = t.start(
        &far,
        "xb",
        &cfg.replace("a0", "b0").replace("a1", "b1"),
        "10.83.0.2/24",
    );
    raise_to_9000(&t, &host, &sock_a, ["a0", "a1"]);
    raise_to_9000(&t, &far, &sock_b, ["b0", "b1"]);
    let before = status(&sock_a);
    let out = ping_df(&t, &host, "10.83.0.2", 8972).unwrap();
    assert!(out.contains(" 0% packet loss"), "{out}");
    // Each echo request left on both links: one of them a copy, spanning as
    // many buffers as the original.
    let after = status(&sock_a);
    for i in 0..2 {
        let sent = after.slaves[i].runtime.tx_frames - before.slaves[i].runtime.tx_frames;
        assert!(sent >= 3, "slave {i} sent {sent}");
    }
    assert_pool_balanced(&sock_a);
    assert_pool_balanced(&sock_b);
}

#[test]
fn balance_rr_and_balance_xor_bonds_carry_9000_byte_frames_both_ways() {
    for (i, mode) in ["balance-rr", "balance-xor"].into_iter().enumerate() {
        let mut t = TwoLinks::new("js");
        let (host, far) = (t.host.clone(), t.far.clone());
        let cfg = format!(
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"{mode}\"\nmiimon = 100\n\
             xmit_hash_policy = \"layer3+4\"\n"
        );
        let (a, b) = (format!("10.86.{i}.1"), format!("10.86.{i}.2"));
        let sock_a = t.start(&host, "xa", &cfg, &format!("{a}/24"));
        let sock_b = t.start(
            &far,
            "xb",
            &cfg.replace("a0", "b0").replace("a1", "b1"),
            &format!("{b}/24"),
        );
        raise_to_9000(&t, &host, &sock_a, ["a0", "a1"]);
        raise_to_9000(&t, &far, &sock_b, ["b0", "b1"]);
        for (from, to) in [(&host, &b), (&far, &a)] {
            let out = ping_df(&t, from, to, 8972).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert!(out.contains(" 0% packet loss"), "{mode}: {out}");
        }
        assert_pool_balanced(&sock_a);
        assert_pool_balanced(&sock_b);
    }
}

#[test]
fn balance_tlb_and_balance_alb_carry_9000_byte_frames_through_a_switch() {
    for (i, mode) in ["balance-tlb", "balance-alb"].into_iter().enumerate() {
        let mut t = TwoLinks::new("jt");
        let (host, far) = (t.host.clone(), t.far.clone());
        for p in ["b0", "b1"] {
            set_mtu(&t, &far, p, 9000);
        }
        let (a, b) = (format!("10.87.{i}.1"), format!("10.87.{i}.2"));
        t.far_bridge(&format!("{b}/24"));
        set_mtu(&t, &far, "br0", 9000);
        let cfg = format!(
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"{mode}\"\nmiimon = 100\n"
        );
        let sock = t.start(&host, "xa", &cfg, &format!("{a}/24"));
        raise_to_9000(&t, &host, &sock, ["a0", "a1"]);
        for (from, to) in [(&host, &b), (&far, &a)] {
            let out = ping_df(&t, from, to, 8972).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert!(out.contains(" 0% packet loss"), "{mode}: {out}");
        }
        assert_pool_balanced(&sock);
    }
}
