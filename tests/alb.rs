//! balance-alb and balance-tlb on veth links: a switch without any bond
//! configuration (a Linux bridge) with several peers behind it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{status, wait_status, TwoLinks};

fn cfg(layout: &str, mode: &str) -> String {
    format!(
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"{mode}\"\nmiimon = 100\numem_layout = \"{layout}\"\n"
    )
}

/// Adds `n` peers behind the far bridge: namespace pI with eth0 at
/// 10.80.0.(10+I)/24. Returns their namespace names.
fn peers(t: &mut TwoLinks, n: usize) -> Vec<String> {
    let far = t.far.clone();
    (0..n)
        .map(|i| {
            let ns = t.lab.netns(&format!("p{i}")).unwrap();
            let port = format!("q{i}");
            t.lab.veth(&ns, "eth0", &far, &port).unwrap();
            t.lab
                .exec(&far, &["ip", "link", "set", &port, "master", "br0"])
                .unwrap();
            t.lab
                .exec(
                    &ns,
                    &[
                        "ip",
                        "addr",
                        "add",
                        &format!("10.80.0.{}/24", 10 + i),
                        "dev",
                        "eth0",
                    ],
                )
                .unwrap();
            ns
        })
        .collect()
}

fn neigh_mac(t: &TwoLinks, ns: &str, ip: &str) -> String {
    let out = t.lab.exec(ns, &["ip", "neigh", "show", ip]).unwrap();
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn alb_gives_peers_different_slaves_and_moves_them_on_failure(layout: &str) {
    let mut t = TwoLinks::new("al");
    t.far_bridge("10.80.0.2/24");
    let host = t.host.clone();
    let ps = peers(&mut t, 4);
    let sock = t.start(&host, "xa", &cfg(layout, "balance-alb"), "10.80.0.1/24");
    common::assert_layout(&sock, layout);
    let (mac_a0, mac_a1) = (t.mac(&host, "a0"), t.mac(&host, "a1"));
    assert_ne!(mac_a0, mac_a1, "balance-alb slaves keep their own MACs");

    // Each peer resolves the bond's address and talks to it.
    for p in &ps {
        let ping = t.ping(p, "10.80.0.1");
        assert!(ping.contains(" 0% packet loss"), "{p}: {ping}");
    }
    let macs: Vec<String> = ps.iter().map(|p| neigh_mac(&t, p, "10.80.0.1")).collect();
    println!("peers' ARP entries for the bond: {macs:?} (a0 {mac_a0}, a1 {mac_a1})");
    let distinct: BTreeSet<&String> = macs.iter().collect();
    assert!(
        distinct.len() >= 2,
        "peers were spread over the slaves: {macs:?}"
    );
    assert!(
        macs.iter().all(|m| *m == mac_a0 || *m == mac_a1),
        "{macs:?}"
    );

    // Receive traffic arrives over both slaves.
    let before = status(&sock);
    for p in &ps {
        let ping = t
            .lab
            .exec(
                p,
                &["ping", "-c", "20", "-i", "0.01", "-W", "1", "10.80.0.1"],
            )
            .unwrap();
        assert!(ping.contains(" 0% packet loss"), "{ping}");
    }
    let after = status(&sock);
    let rx: Vec<u64> = (0..2)
        .map(|i| after.slaves[i].runtime.rx_frames - before.slaves[i].runtime.rx_frames)
        .collect();
    println!("ALB receive spread over a0/a1: {rx:?}");
    assert!(rx.iter().all(|n| *n >= 20), "both slaves receive: {rx:?}");
    let clients = after.balance.as_ref().unwrap().clients.len();
    assert!(clients >= 4, "{:?}", after.balance);

    // a0 (the active slave, holding the bond MAC) fails: a1 takes the bond
    // MAC over, and every peer is told a1's MAC and keeps reaching the bond.
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.slaves[0].mii_status == "down"
    });
    let mac_a1_now = t.mac(&host, "a1");
    assert_eq!(
        mac_a1_now,
        t.mac(&host, "bond0"),
        "the new active slave carries the bond MAC"
    );
    for p in &ps {
        let moved = xbond::lab::wait_for(Duration::from_secs(3), || {
            (neigh_mac(&t, p, "10.80.0.1") == mac_a1_now).then_some(())
        });
        assert!(
            moved.is_some(),
            "{p} was told a1's MAC {mac_a1_now}: {}",
            neigh_mac(&t, p, "10.80.0.1")
        );
        let ping = t.ping(p, "10.80.0.1");
        assert!(
            ping.contains(" 0% packet loss"),
            "{p} after failover: {ping}"
        );
    }
}

fn tlb_spreads_transmit_load_over_both_slaves(layout: &str) {
    let mut t = TwoLinks::new("tl");
    let host = t.host.clone();
    let far = t.far.clone();
    let sock = t.start(&host, "xa", &cfg(layout, "balance-tlb"), "10.81.0.1/24");
    common::assert_layout(&sock, layout);
    // 8 destinations behind the far side; the sink counts per link.
    t.sink(&far, "sink", &["b0", "b1"], 1, 4000);
    let exe = common::exe().display().to_string();
    t.lab
        .exec(
            &host,
            &[
                &exe,
                "pktgen",
                "send",
                "--iface",
                "bond0",
                "--dst-mac",
                "02:00:00:00:00:99",
                "--dst-ip",
                "10.81.0.100",
                "--dst-ips",
                "8",
                "--flows",
                "8",
                "--count",
                "4000",
                "--rate",
                "10000",
            ],
        )
        .unwrap();
    let r = t.sink_report("sink");
    println!("TLB transmit spread: {:?}", r.per_iface);
    assert_eq!(r.unique, 4000, "{r:?}");
    let share = r.per_iface["b0"] as f64 / r.unique as f64;
    assert!(
        (0.2..=0.8).contains(&share),
        "load spread over both slaves: {:?}",
        r.per_iface
    );
    let s = status(&sock);
    let b = s.balance.unwrap();
    assert!(b.buckets.len() >= 8, "{:?}", b.buckets);
    let on: BTreeSet<&String> = b.buckets.iter().map(|(_, s, _)| s).collect();
    assert_eq!(on.len(), 2, "buckets on both slaves: {:?}", b.buckets);
}

/// Every case twice: with the default layout (one UMEM per queue on veth)
/// and with a UMEM per socket, where every frame crossing between the upper
/// port and a slave is copied once.
mod layouts {
    mod auto {
        #[test]
        fn alb_gives_peers_different_slaves_and_moves_them_on_failure() {
            super::super::alb_gives_peers_different_slaves_and_moves_them_on_failure("auto")
        }
        #[test]
        fn tlb_spreads_transmit_load_over_both_slaves() {
            super::super::tlb_spreads_transmit_load_over_both_slaves("auto")
        }
    }
    mod split {
        #[test]
        fn alb_gives_peers_different_slaves_and_moves_them_on_failure() {
            super::super::alb_gives_peers_different_slaves_and_moves_them_on_failure("split")
        }
        #[test]
        fn tlb_spreads_transmit_load_over_both_slaves() {
            super::super::tlb_spreads_transmit_load_over_both_slaves("split")
        }
    }
}
