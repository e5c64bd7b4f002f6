//! Every RX queue served: slaves with 4 queues (multi-queue veth, where a
//! frame's TX queue at one end, picked by its flow hash, is its RX queue at
//! the other), `queues = "auto"`, traffic of many flows both ways: every
//! queue carries frames and XDP drops none for want of a socket. A count
//! below the slaves' queues is refused, naming the slave and the fix. A
//! worker's coalescing takes a moderate stream in batches.

mod common;

use common::{assert_pool_balanced, status, TwoLinks};
use xbond::lab::Lab;

const QUEUES: u32 = 4;

fn four_queue_links(prefix: &str) -> TwoLinks {
    common::require_root();
    let mut lab = Lab::new(prefix).expect("lab");
    let host = lab.netns("host").expect("netns host");
    let far = lab.netns("far").expect("netns far");
    lab.veth_queues(&host, "a0", &far, "b0", QUEUES)
        .expect("veth a0-b0");
    lab.veth_queues(&host, "a1", &far, "b1", QUEUES)
        .expect("veth a1-b1");
    TwoLinks { lab, host, far }
}

#[test]
fn auto_serves_every_queue_and_drops_nothing_for_want_of_a_socket() {
    let mut t = four_queue_links("mq");
    t.far_bridge("10.68.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    let cfg = "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-xor\"\n\
               miimon = 100\nxmit_hash_policy = \"layer3+4\"\nqueues = \"auto\"\n";
    let sock = t.start(&host, "xq", cfg, "10.68.0.1/24");
    let s = status(&sock);
    assert_eq!(s.runtime.queues.len(), QUEUES as usize, "{:?}", s.runtime);
    assert!(s.proc_text().contains("4 queue(s)"), "{}", s.proc_text());

    // Many flows each way: the senders' flow hashes spread them over the
    // TX queues, and so over the other end's RX queues.
    let bond_mac = t.mac(&host, "bond0");
    let br = t.mac(&far, "br0");
    t.sink(&far, "sink1", &["b0", "b1"], 1, 4000);
    t.send(&host, "bond0", &br, 64, 4000, 20_000, 1);
    let r = t.sink_report("sink1");
    assert_eq!(r.unique, 4000, "host -> far: {r:?}");
    t.sink(&host, "sink2", &["bond0"], 2, 4000);
    t.send(&far, "br0", &bond_mac, 64, 4000, 20_000, 2);
    let r = t.sink_report("sink2");
    assert_eq!(r.unique, 4000, "far -> host: {r:?}");

    let s = status(&sock);
    for (i, q) in s.runtime.queues.iter().enumerate() {
        assert!(
            q.from_host > 0,
            "queue {i} carried host traffic: {:?}",
            s.runtime.queues
        );
        assert!(
            q.to_host > 0,
            "queue {i} carried far traffic: {:?}",
            s.runtime.queues
        );
    }
    for sl in &s.slaves {
        assert_eq!(
            sl.runtime.rx_dropped_no_socket, 0,
            "{}: {:?}",
            sl.name, sl.runtime
        );
    }
    let ping = t.ping(&host, "10.68.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    assert_pool_balanced(&sock);
}

#[test]
fn fewer_queues_than_the_slaves_have_is_refused_with_the_fix() {
    let t = four_queue_links("mr");
    let cfg = t.lab.dir().join("bond0.toml");
    std::fs::write(
        &cfg,
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100\n\
         queues = 2\n",
    )
    .unwrap();
    let exe = common::exe().display().to_string();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &t.host, &exe, "run", "--config"])
        .arg(&cfg)
        .output()
        .expect("xbond runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {err}");
    for part in [
        "a0",
        "4 RX queues",
        "queues = 2",
        "auto",
        "ethtool -L a0 combined 2",
    ] {
        assert!(err.contains(part), "{part:?} in: {err}");
    }
    let links = t.lab.exec(&t.host, &["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("bond0"), "nothing made: {links}");
}

/// Sets the RX and TX queues in use on `iface` (`ethtool -L`).
fn channels(t: &TwoLinks, ns: &str, iface: &str, n: u32) {
    let n = n.to_string();
    t.lab
        .exec(ns, &["ethtool", "-L", iface, "rx", &n, "tx", &n])
        .unwrap_or_else(|e| panic!("ethtool -L {iface}: {e:#}"));
}

#[test]
fn a_queue_count_changed_while_running_is_named_and_the_bond_goes_on() {
    let mut t = four_queue_links("mc");
    t.far_bridge("10.69.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    for (ns, iface) in [(&host, "a0"), (&host, "a1"), (&far, "b0"), (&far, "b1")] {
        channels(&t, ns, iface, 2);
    }
    let cfg = "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\n\
               primary = \"a0\"\nmiimon = 100\n";
    let sock = t.start(&host, "xc", cfg, "10.69.0.1/24");
    assert_eq!(
        status(&sock).runtime.queues.len(),
        2,
        "auto serves the 2 in use"
    );

    // a0 gets 4 queues while xbond serves 2: named, with the fix.
    channels(&t, &host, "a0", 4);
    let s = common::wait_status(&sock, std::time::Duration::from_secs(10), |s| {
        s.runtime
            .notes
            .iter()
            .any(|n| n.contains("slave a0 now has 4 RX queues but xbond serves 2"))
    });
    assert!(
        s.proc_text()
            .contains("Warning: slave a0 now has 4 RX queues"),
        "{}",
        s.proc_text()
    );
    // Back to 2: the line goes, and the bond carries traffic as before.
    channels(&t, &host, "a0", 2);
    common::wait_status(&sock, std::time::Duration::from_secs(10), |s| {
        s.runtime.notes.is_empty()
    });
    let ping = t.ping(&host, "10.69.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    assert_pool_balanced(&sock);
}

#[test]
fn the_af_xdp_generator_and_sink_on_four_queues_carry_every_flow_through_every_worker() {
    // The benchmark's generator and sink (`pktgen --engine af_xdp --queues
    // 4`): flow f leaves bond0 on TX queue f % 4, so arrives on the
    // data-plane end's RX queue f % 4, which worker f % 4 serves and sends
    // on the same queue of a slave; the sink counts on every queue of b0 and
    // b1.
    let mut t = four_queue_links("mg");
    let host = t.host.clone();
    let far = t.far.clone();
    let cfg = "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-xor\"\n\
               miimon = 100\nxmit_hash_policy = \"layer3+4\"\n";
    let sock = t.start(&host, "xg", cfg, "10.66.0.1/24");
    let before: Vec<u64> = status(&sock)
        .runtime
        .queues
        .iter()
        .map(|q| q.from_host)
        .collect();
    t.lab
        .start_sink_xdp(common::exe(), &far, "sink", &["b0", "b1"], 3, QUEUES, 700)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let exe = common::exe().display().to_string();
    t.lab
        .exec(
            &host,
            &[
                &exe,
                "pktgen",
                "send",
                "--engine",
                "af_xdp",
                "--queues",
                "4",
                "--iface",
                "bond0",
                "--dst-mac",
                "02:00:00:00:00:99",
                "--flows",
                "64",
                "--count",
                "4000",
                "--rate",
                "20000",
                "--stream",
                "3",
            ],
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let r = t.sink_report("sink");
    assert_eq!((r.unique, r.duplicates), (4000, 0), "{r:?}");
    // 64 flows in turn: 1000 frames a queue (and whatever else the host
    // sent meanwhile).
    let s = status(&sock);
    for (i, (q, b)) in s.runtime.queues.iter().zip(&before).enumerate() {
        assert!(
            q.from_host - b >= 1000,
            "queue {i} carried its 16 flows: {:?}",
            s.runtime.queues
        );
    }
}

#[test]
fn coalescing_waits_after_small_passes_and_loses_nothing() {
    // `--coalesce-us 1000` with no busy polling: a pass that took a few
    // frames is followed by a coalescing wait (counted, and in the status),
    // and a moderate stream still arrives whole. (How many frames a pass
    // then takes is the benchmark's to measure, not a test's.)
    let mut t = TwoLinks::new("mc");
    let (host, far) = (t.host.clone(), t.far.clone());
    let cfg = "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\n\
               primary = \"a0\"\nmiimon = 100\n";
    let sock = t
        .lab
        .start_xbond_with(
            common::exe(),
            &host,
            "xc",
            cfg,
            &["--busy-poll-us", "0", "--coalesce-us", "1000"],
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    common::wait_status(&sock, std::time::Duration::from_secs(20), |s| {
        s.active.as_deref() == Some("a0")
    });
    let before = status(&sock).runtime.queues[0].clone();
    t.sink(&far, "sink", &["b0"], 4, 3000);
    t.send(&host, "bond0", "02:00:00:00:00:99", 8, 3000, 10_000, 4);
    let r = t.sink_report("sink");
    assert_eq!((r.unique, r.lost, r.duplicates), (3000, 0, 0), "{r:?}");
    let s = status(&sock);
    let q = &s.runtime.queues[0];
    assert!(q.from_host - before.from_host >= 3000, "{q:?}");
    assert!(q.coalesce_waits > before.coalesce_waits, "{q:?}");
    assert!(
        s.proc_text().contains(", coalescing waits "),
        "{}",
        s.proc_text()
    );
}
