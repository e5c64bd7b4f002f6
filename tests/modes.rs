//! Each static mode on real veth links in network namespaces: frames sent
//! into bond0 reach the far side on the links the mode promises, frames from
//! the far side reach the host, and ping over bond0 works.

mod common;

use common::{assert_pool_balanced, status, TwoLinks};

fn cfg(layout: &str, mode: &str, extra: &str) -> String {
    format!(
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"{mode}\"\nmiimon = 100\numem_layout = \"{layout}\"\n{extra}\n"
    )
}

fn active_backup_uses_only_the_active_link_and_delivers_once(layout: &str) {
    let mut t = TwoLinks::new("ab");
    t.far_bridge("10.55.0.2/24");
    let host = t.host.clone();
    let far = t.far.clone();
    let sock = t.start(
        &host,
        "xa",
        &cfg(layout, "active-backup", "primary = \"a1\""),
        "10.55.0.1/24",
    );
    common::assert_layout(&sock, layout);
    let s = status(&sock);
    assert_eq!(s.active.as_deref(), Some("a1"), "primary a1 is active");
    assert!(s.proc_text().contains("Currently Active Slave: a1\n"));

    // host -> far: only a1's far end sees the stream.
    let br = t.mac(&far, "br0");
    t.sink(&far, "sink1", &["b0", "b1"], 1, 2000);
    t.send(&host, "bond0", &br, 8, 2000, 20_000, 1);
    let r = t.sink_report("sink1");
    assert_eq!(r.per_iface["b1"], 2000, "{r:?}");
    assert_eq!(r.per_iface["b0"], 0, "{r:?}");

    // far -> host, to broadcast: the bridge floods it to both slaves; the
    // host gets each frame once, from the active slave only.
    t.sink(&host, "sink2", &["bond0"], 2, 1000);
    t.send(&far, "br0", "ff:ff:ff:ff:ff:ff", 4, 1000, 20_000, 2);
    let r = t.sink_report("sink2");
    assert_eq!((r.unique, r.duplicates), (1000, 0), "{r:?}");
    let s = status(&sock);
    assert!(
        s.slaves[0].runtime.rx_dropped_inactive >= 1000,
        "a0 drops: {:?}",
        s.slaves[0].runtime
    );

    let ping = t.ping(&host, "10.55.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    assert_pool_balanced(&sock);
}

fn balance_rr_alternates_links_and_carries_traffic_both_ways(layout: &str) {
    let mut t = TwoLinks::new("rr");
    let host = t.host.clone();
    let far = t.far.clone();
    let sock_a = t.start(&host, "xa", &cfg(layout, "balance-rr", ""), "10.56.0.1/24");
    common::assert_layout(&sock_a, layout);

    t.sink(&far, "sink1", &["b0", "b1"], 1, 1000);
    t.send(&host, "bond0", "02:00:00:00:00:99", 1, 1000, 20_000, 1);
    let r = t.sink_report("sink1");
    assert_eq!(r.unique, 1000, "{r:?}");
    assert!(r.per_iface["b0"].abs_diff(r.per_iface["b1"]) <= 2, "{r:?}");
    assert!(r.alternation > 0.95, "round robin alternates: {r:?}");

    // A second xbond in the same mode on the far side: a static LAG partner.
    let _sock_b = t.start(
        &far,
        "xb",
        &cfg(layout, "balance-rr", "")
            .replace("a0", "b0")
            .replace("a1", "b1"),
        "10.56.0.2/24",
    );
    let ping = t.ping(&host, "10.56.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    let mac_a = t.mac(&host, "bond0");
    t.sink(&host, "sink2", &["bond0"], 2, 1000);
    t.send(&far, "bond0", &mac_a, 1, 1000, 20_000, 2);
    let r = t.sink_report("sink2");
    assert_eq!((r.unique, r.duplicates), (1000, 0), "{r:?}");
    let s = status(&sock_a);
    assert!(
        s.slaves.iter().all(|sl| sl.runtime.rx_frames >= 400),
        "both links deliver: {s:?}"
    );
    assert_pool_balanced(&sock_a);
}

fn balance_xor_keeps_each_flow_on_one_link_and_spreads_flows(layout: &str) {
    let mut t = TwoLinks::new("xo");
    let host = t.host.clone();
    let far = t.far.clone();
    let sock_a = t.start(
        &host,
        "xa",
        &cfg(layout, "balance-xor", "xmit_hash_policy = \"layer3+4\""),
        "10.57.0.1/24",
    );
    common::assert_layout(&sock_a, layout);

    t.sink(&far, "sink1", &["b0", "b1"], 1, 2560);
    t.send(&host, "bond0", "02:00:00:00:00:99", 256, 2560, 20_000, 1);
    let r = t.sink_report("sink1");
    assert_eq!(r.unique, 2560, "{r:?}");
    assert_eq!(r.flows, 256);
    assert_eq!(
        r.flows_on_several_ifaces, 0,
        "a flow stays on one link: {r:?}"
    );
    let share = r.per_iface["b0"] as f64 / r.unique as f64;
    assert!(
        (0.35..=0.65).contains(&share),
        "256 flows spread: b0 share {share}"
    );

    let _sock_b = t.start(
        &far,
        "xb",
        &cfg(layout, "balance-xor", "xmit_hash_policy = \"layer3+4\"")
            .replace("a0", "b0")
            .replace("a1", "b1"),
        "10.57.0.2/24",
    );
    let ping = t.ping(&host, "10.57.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    let mac_a = t.mac(&host, "bond0");
    t.sink(&host, "sink2", &["bond0"], 2, 1000);
    t.send(&far, "bond0", &mac_a, 64, 1000, 20_000, 2);
    let r = t.sink_report("sink2");
    assert_eq!((r.unique, r.duplicates, r.reordered), (1000, 0, 0), "{r:?}");
    assert_pool_balanced(&sock_a);
}

fn broadcast_copies_to_every_link_and_the_partner_delivers_once(layout: &str) {
    let mut t = TwoLinks::new("bc");
    let host = t.host.clone();
    let far = t.far.clone();
    let sock_a = t.start(&host, "xa", &cfg(layout, "broadcast", ""), "10.58.0.1/24");
    common::assert_layout(&sock_a, layout);

    t.sink(&far, "sink1", &["b0", "b1"], 1, 500);
    t.send(&host, "bond0", "02:00:00:00:00:99", 4, 500, 10_000, 1);
    let r = t.sink_report("sink1");
    assert_eq!((r.per_iface["b0"], r.per_iface["b1"]), (500, 500), "{r:?}");

    let sock_b = t.start(
        &far,
        "xb",
        &cfg(layout, "broadcast", "")
            .replace("a0", "b0")
            .replace("a1", "b1"),
        "10.58.0.2/24",
    );
    let ping = t.ping(&host, "10.58.0.2");
    assert!(
        ping.contains(" 0% packet loss") && !ping.contains("DUP!"),
        "{ping}"
    );
    let mac_a = t.mac(&host, "bond0");
    t.sink(&host, "sink2", &["bond0"], 2, 500);
    t.send(&far, "bond0", &mac_a, 4, 500, 10_000, 2);
    let r = t.sink_report("sink2");
    assert_eq!(
        (r.unique, r.duplicates),
        (500, 0),
        "each frame delivered once: {r:?}"
    );
    let dups: u64 = status(&sock_a)
        .slaves
        .iter()
        .map(|s| s.runtime.rx_dropped_duplicate)
        .sum();
    assert!(dups >= 500, "the second copies were suppressed: {dups}");
    assert_pool_balanced(&sock_a);
    assert_pool_balanced(&sock_b);
}

/// Every case twice: with the default layout (one UMEM per queue on veth)
/// and with a UMEM per socket, where every frame crossing between the upper
/// port and a slave is copied once.
mod layouts {
    mod auto {
        #[test]
        fn active_backup_uses_only_the_active_link_and_delivers_once() {
            super::super::active_backup_uses_only_the_active_link_and_delivers_once("auto")
        }
        #[test]
        fn balance_rr_alternates_links_and_carries_traffic_both_ways() {
            super::super::balance_rr_alternates_links_and_carries_traffic_both_ways("auto")
        }
        #[test]
        fn balance_xor_keeps_each_flow_on_one_link_and_spreads_flows() {
            super::super::balance_xor_keeps_each_flow_on_one_link_and_spreads_flows("auto")
        }
        #[test]
        fn broadcast_copies_to_every_link_and_the_partner_delivers_once() {
            super::super::broadcast_copies_to_every_link_and_the_partner_delivers_once("auto")
        }
    }
    mod split {
        #[test]
        fn active_backup_uses_only_the_active_link_and_delivers_once() {
            super::super::active_backup_uses_only_the_active_link_and_delivers_once("split")
        }
        #[test]
        fn balance_rr_alternates_links_and_carries_traffic_both_ways() {
            super::super::balance_rr_alternates_links_and_carries_traffic_both_ways("split")
        }
        #[test]
        fn balance_xor_keeps_each_flow_on_one_link_and_spreads_flows() {
            super::super::balance_xor_keeps_each_flow_on_one_link_and_spreads_flows("split")
        }
        #[test]
        fn broadcast_copies_to_every_link_and_the_partner_delivers_once() {
            super::super::broadcast_copies_to_every_link_and_the_partner_delivers_once("split")
        }
    }
}
