//! Link monitoring and failover on real veth links: loss under a steady
//! stream when the active slave's peer goes down, recovery per
//! primary_reselect, updelay, the bond's carrier, and a clean exit.

mod common;

use std::time::{Duration, Instant};

use common::{status, wait_status, TwoLinks};

/// The loss bound asserted for a carrier-event failover. The kernel bond with
/// miimon=100 loses up to 100 ms; xbond acts on the netlink event.
const MAX_LOST_FRAMES: u64 = 200; // 20 ms at 10 kpps

fn ab(extra: &str) -> String {
    format!("name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100\nprimary = \"a0\"\n{extra}\n")
}

#[test]
fn failover_under_a_stream_loses_few_frames_and_primary_returns() {
    let mut t = TwoLinks::new("fo");
    t.far_bridge("10.60.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(&host, "xa", &ab(""), "10.60.0.1/24");
    assert_eq!(status(&sock).active.as_deref(), Some("a0"));
    let br = t.mac(&far, "br0");

    const RATE: u64 = 10_000;
    const COUNT: u64 = 30_000;
    t.sink(&far, "sink", &["b0", "b1"], 1, COUNT);
    let exe = common::exe().display().to_string();
    let (c, r) = (COUNT.to_string(), RATE.to_string());
    t.lab
        .spawn(
            &host,
            "sender",
            &[
                &exe,
                "pktgen",
                "send",
                "--iface",
                "bond0",
                "--dst-mac",
                &br,
                "--count",
                &c,
                "--rate",
                &r,
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    t.lab.wait("sender", Duration::from_secs(30)).unwrap();
    let rep = t.sink_report("sink");
    let ms = rep.lost as f64 * 1000.0 / RATE as f64;
    println!(
        "failover loss: {} frames = {ms:.2} ms at {RATE} frames/s ({rep:?})",
        rep.lost
    );
    assert!(
        rep.per_iface["b0"] > 0 && rep.per_iface["b1"] > 0,
        "traffic moved: {rep:?}"
    );
    assert!(
        rep.lost <= MAX_LOST_FRAMES,
        "lost {} frames ({ms} ms)",
        rep.lost
    );

    let s = status(&sock);
    assert_eq!(s.active.as_deref(), Some("a1"));
    assert_eq!(s.slaves[0].link_failure_count, 1);
    let text = s.proc_text();
    assert!(text.contains("Currently Active Slave: a1\n"), "{text}");
    assert!(
        text.contains("Slave Interface: a0\nMII Status: down\n"),
        "{text}"
    );
    let ping = t.ping(&host, "10.60.0.2");
    assert!(ping.contains(" 0% packet loss"), "after failover: {ping}");

    // primary_reselect always: a0 takes over again when it returns.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a0")
    });
    let ping = t.ping(&host, "10.60.0.2");
    assert!(ping.contains(" 0% packet loss"), "after recovery: {ping}");
}

#[test]
fn failover_announces_the_bond_with_a_gratuitous_arp_on_the_new_slave() {
    let mut t = TwoLinks::new("ga");
    t.far_bridge("10.64.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    // IPv6 off on bond0, so that nothing but the GARP can teach the bridge.
    for key in ["all", "default"] {
        let kv = format!("net.ipv6.conf.{key}.disable_ipv6=1");
        t.lab.exec(&host, &["sysctl", "-qw", &kv]).unwrap();
    }
    let sock = t.start(&host, "xa", &ab(""), "10.64.0.1/24");
    let bond_mac = t.mac(&host, "bond0");
    let ping = t.ping(&host, "10.64.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    // Let the daemon see the address (refreshed every second).
    std::thread::sleep(Duration::from_millis(1200));
    let fdb = |t: &TwoLinks| {
        t.lab
            .exec(&far, &["bridge", "fdb", "show", "br", "br0"])
            .unwrap()
    };
    assert!(
        fdb(&t).contains(&format!("{bond_mac} dev b0")),
        "{}",
        fdb(&t)
    );
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a1")
    });
    let learned = xbond::lab::wait_for(Duration::from_secs(2), || {
        fdb(&t)
            .contains(&format!("{bond_mac} dev b1"))
            .then_some(())
    });
    assert!(
        learned.is_some(),
        "the bridge learned the bond on b1 from the GARP: {}",
        fdb(&t)
    );
}

#[test]
fn primary_reselect_failure_keeps_the_backup_active() {
    let mut t = TwoLinks::new("rs");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(
        &host,
        "xa",
        &ab("primary_reselect = \"failure\""),
        "10.61.0.1/24",
    );
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a1")
    });
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    let s = wait_status(&sock, Duration::from_secs(3), |s| {
        s.slaves[0].mii_status == "up"
    });
    assert_eq!(
        s.active.as_deref(),
        Some("a1"),
        "failure: the backup stays active"
    );
    // Only when a1 fails does a0 take over.
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a0")
    });
}

#[test]
fn updelay_is_honoured_before_a_returning_link_is_used() {
    let mut t = TwoLinks::new("ud");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(&host, "xa", &ab("updelay = 600"), "10.62.0.1/24");
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a1")
    });
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    let t0 = Instant::now();
    let s = wait_status(&sock, Duration::from_secs(1), |s| {
        s.slaves[0].mii_status == "going back"
    });
    assert_eq!(s.active.as_deref(), Some("a1"), "a0 waits for updelay");
    assert!(s.proc_text().contains("Up Delay (ms): 600\n"));
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a0")
    });
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(550),
        "a0 came back after only {waited:?}"
    );
}

#[test]
fn a_bond_started_with_every_slave_down_has_no_carrier_until_one_comes_up() {
    let mut t = TwoLinks::new("sd");
    let (host, far) = (t.host.clone(), t.far.clone());
    for p in ["b0", "b1"] {
        t.lab.exec(&far, &["ip", "link", "set", p, "down"]).unwrap();
    }
    let sock = t.start(&host, "xa", &ab(""), "10.65.0.1/24");
    let carrier = |t: &TwoLinks| {
        t.lab
            .exec(&host, &["cat", "/sys/class/net/bond0/carrier"])
            .unwrap()
            .trim()
            == "1"
    };
    let s = status(&sock);
    assert!(!s.mii_status && s.active.is_none(), "{}", s.proc_text());
    assert!(
        !carrier(&t),
        "bond0 must not claim carrier with no usable slave"
    );
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "up"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.mii_status && s.active.as_deref() == Some("a1")
    });
    assert!(xbond::lab::wait_for(Duration::from_secs(2), || carrier(&t).then_some(())).is_some());
}

#[test]
fn bond_carrier_follows_the_slaves_and_exit_restores_the_slaves() {
    let mut t = TwoLinks::new("cx");
    let (host, far) = (t.host.clone(), t.far.clone());
    let mac_a1 = t.mac(&host, "a1");
    let sock = t.start(&host, "xa", &ab(""), "10.63.0.1/24");
    assert_ne!(t.mac(&host, "a1"), mac_a1, "slaves carry the bond MAC");
    let carrier = |t: &TwoLinks| {
        t.lab
            .exec(&host, &["cat", "/sys/class/net/bond0/carrier"])
            .unwrap()
            .trim()
            == "1"
    };
    assert!(carrier(&t));
    for p in ["b0", "b1"] {
        t.lab.exec(&far, &["ip", "link", "set", p, "down"]).unwrap();
    }
    let s = wait_status(&sock, Duration::from_secs(3), |s| !s.mii_status);
    assert!(s.proc_text().contains("MII Status: down\n"));
    assert!(
        xbond::lab::wait_for(Duration::from_secs(2), || (!carrier(&t)).then_some(())).is_some(),
        "bond0 lost carrier"
    );
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "up"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.mii_status && s.active.as_deref() == Some("a1")
    });
    assert!(
        xbond::lab::wait_for(Duration::from_secs(2), || carrier(&t).then_some(())).is_some(),
        "bond0 carrier back"
    );

    assert!(t.lab.stop("xa").unwrap(), "xbond exits cleanly on SIGTERM");
    // bond0 stays, as a kernel bond does when its daemon-less driver idles:
    // without the daemon it has no carrier.
    let links = t.lab.exec(&host, &["ip", "-o", "link"]).unwrap();
    assert!(
        links.contains("bond0") && links.contains("xb-bond0"),
        "upper port kept: {links}"
    );
    assert!(!carrier(&t), "bond0 has no carrier while no daemon runs");
    assert_eq!(t.mac(&host, "a1"), mac_a1, "slave MAC restored");
}
