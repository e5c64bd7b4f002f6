//! Link monitoring and failover on real veth links, in the library's failover
//! lab (the one `xbond failover-test`, the demo and the benchmark use):
//! traffic moves to the backup when the active slave's peer goes down,
//! recovery per primary_reselect, updelay, the bond's carrier, and a clean
//! exit.

mod common;

use std::time::{Duration, Instant};

use common::{exe, require_root, status, wait_status};
use xbond::failover::{Detection, FailoverLab, FailoverTopology, Run, NEIGHBOUR};
use xbond::lab::wait_for;

/// The topology, for what must hold before the bond starts.
fn topology() -> FailoverTopology {
    require_root();
    FailoverTopology::new(exe()).expect("failover topology")
}

/// The lab with the bond started: carrier detection (miimon 100), primary
/// eth0, and `extra` options.
fn lab(extra: &str) -> FailoverLab {
    topology()
        .start(&FailoverLab::config_with(Detection::Carrier, extra))
        .expect("xbond starts")
}

fn link(fl: &FailoverLab, port: &str, state: &str) {
    fl.lab
        .exec(&fl.sw, &["ip", "link", "set", port, state])
        .unwrap();
}

fn carrier(fl: &FailoverLab) -> bool {
    fl.lab
        .exec(&fl.host, &["cat", "/sys/class/net/bond0/carrier"])
        .unwrap()
        .trim()
        == "1"
}

fn ping(fl: &FailoverLab) -> String {
    fl.lab
        .ping(&fl.host, NEIGHBOUR, 5)
        .unwrap_or_else(|e| panic!("ping {NEIGHBOUR}: {e}"))
}

#[test]
fn failover_under_a_stream_moves_the_traffic_and_primary_returns() {
    require_root();
    let mut fl = FailoverLab::new(exe(), Detection::Carrier).expect("failover lab");
    let r = fl
        .measure(&Run {
            detection: Detection::Carrier,
            rate: 10_000,
            count: 30_000,
            cut_after: Duration::from_secs(1),
            per_port: true,
        })
        .expect("failover run");
    // The loss is reported, not asserted: it depends on the machine's load.
    println!(
        "failover loss: {} frames = {:.2} ms at {} frames/s ({r:?})",
        r.failover_lost, r.lost_ms, r.rate
    );
    assert!(
        r.per_port["sw-p0"] > 0 && r.per_port["sw-p1"] > 0,
        "traffic moved from sw-p0 to sw-p1: {r:?}"
    );
    assert!(
        r.per_link[0] > 0 && r.per_link[1] > 0,
        "the bond sent on eth0, then on eth1: {r:?}"
    );
    // The cut is timed, frames came (through eth1) after it, and the
    // window's loss is split whole: what had been sent before the cut and
    // what after, and the dead slave's share of it.
    let x = r.split.expect("the carrier cut is timed");
    assert!(x.first_frame_us.is_some(), "no frame after the cut: {r:?}");
    // 30 000 frames: fewer than the generator's late rounds kept, so every
    // sending time is known however late it ran.
    assert!(x.sent_times_known, "{r:?}");
    assert_eq!(
        x.in_flight_at_cut + x.sent_after_cut,
        r.failover_lost,
        "{r:?}"
    );
    assert!(x.to_dead_slave <= r.failover_lost, "{r:?}");

    let s = status(&fl.sock);
    assert_eq!(s.active.as_deref(), Some("eth1"));
    assert_eq!(s.slaves[0].link_failure_count, 1);
    let text = s.proc_text();
    assert!(text.contains("Currently Active Slave: eth1\n"), "{text}");
    assert!(
        text.contains("Slave Interface: eth0\nMII Status: down\n"),
        "{text}"
    );
    let p = ping(&fl);
    assert!(p.contains(" 0% packet loss"), "after failover: {p}");

    // primary_reselect always: eth0 takes over again when it returns.
    link(&fl, "sw-p0", "up");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("eth0")
    });
    let p = ping(&fl);
    assert!(p.contains(" 0% packet loss"), "after recovery: {p}");
}

#[test]
fn failover_announces_the_bond_with_a_gratuitous_arp_on_the_new_slave() {
    let t = topology();
    // IPv6 off on bond0, so that nothing but the GARP can teach the bridge.
    for key in ["all", "default"] {
        let kv = format!("net.ipv6.conf.{key}.disable_ipv6=1");
        t.lab.exec(&t.host, &["sysctl", "-qw", &kv]).unwrap();
    }
    let fl = t
        .start(&FailoverLab::config(Detection::Carrier))
        .expect("xbond starts");
    let bond_mac = fl.lab.mac(&fl.host, "bond0").unwrap();
    let p = ping(&fl);
    assert!(p.contains(" 0% packet loss"), "{p}");
    // Let the daemon see the address (refreshed every second).
    std::thread::sleep(Duration::from_millis(1200));
    let fdb = || {
        fl.lab
            .exec(&fl.sw, &["bridge", "fdb", "show", "br", "br0"])
            .unwrap()
    };
    assert!(
        fdb().contains(&format!("{bond_mac} dev sw-p0")),
        "{}",
        fdb()
    );
    link(&fl, "sw-p0", "down");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("eth1")
    });
    let learned = wait_for(Duration::from_secs(2), || {
        fdb()
            .contains(&format!("{bond_mac} dev sw-p1"))
            .then_some(())
    });
    assert!(
        learned.is_some(),
        "the bridge learned the bond on sw-p1 from the GARP: {}",
        fdb()
    );
}

#[test]
fn primary_reselect_failure_keeps_the_backup_active() {
    let fl = lab("primary_reselect = \"failure\"");
    link(&fl, "sw-p0", "down");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("eth1")
    });
    link(&fl, "sw-p0", "up");
    let s = wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.slaves[0].mii_status == "up"
    });
    assert_eq!(
        s.active.as_deref(),
        Some("eth1"),
        "failure: the backup stays active"
    );
    // Only when eth1 fails does eth0 take over.
    link(&fl, "sw-p1", "down");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("eth0")
    });
}

#[test]
fn updelay_is_honoured_before_a_returning_link_is_used() {
    let fl = lab("updelay = 600");
    link(&fl, "sw-p0", "down");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("eth1")
    });
    // Taken before the link comes up, so a slow machine can only make the
    // wait look longer.
    let t0 = Instant::now();
    link(&fl, "sw-p0", "up");
    let s = wait_status(&fl.sock, Duration::from_secs(1), |s| {
        s.slaves[0].mii_status == "going back"
    });
    assert_eq!(s.active.as_deref(), Some("eth1"), "eth0 waits for updelay");
    assert!(s.proc_text().contains("Up Delay (ms): 600\n"));
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("eth0")
    });
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(550),
        "eth0 came back after only {waited:?}"
    );
}

#[test]
fn a_bond_started_with_every_slave_down_has_no_carrier_until_one_comes_up() {
    let t = topology();
    for p in ["sw-p0", "sw-p1"] {
        t.lab
            .exec(&t.sw, &["ip", "link", "set", p, "down"])
            .unwrap();
    }
    let fl = t
        .start(&FailoverLab::config(Detection::Carrier))
        .expect("xbond starts");
    let s = status(&fl.sock);
    assert!(!s.mii_status && s.active.is_none(), "{}", s.proc_text());
    assert!(
        !carrier(&fl),
        "bond0 must not claim carrier with no usable slave"
    );
    link(&fl, "sw-p1", "up");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.mii_status && s.active.as_deref() == Some("eth1")
    });
    assert!(wait_for(Duration::from_secs(2), || carrier(&fl).then_some(())).is_some());
}

#[test]
fn bond_carrier_follows_the_slaves_and_exit_restores_the_slaves() {
    let t = topology();
    let mac_eth1 = t.lab.mac(&t.host, "eth1").unwrap();
    let mut fl = t
        .start(&FailoverLab::config(Detection::Carrier))
        .expect("xbond starts");
    let mac = |fl: &FailoverLab| fl.lab.mac(&fl.host, "eth1").unwrap();
    let ipv6_off = |fl: &FailoverLab| {
        let key = "/proc/sys/net/ipv6/conf/eth1/disable_ipv6";
        fl.lab.exec(&fl.host, &["cat", key]).unwrap().trim() == "1"
    };
    assert_ne!(mac(&fl), mac_eth1, "slaves carry the bond MAC");
    assert!(
        ipv6_off(&fl),
        "a slave has no IPv6 of its own, as under a kernel bond"
    );
    assert!(carrier(&fl));
    for p in ["sw-p0", "sw-p1"] {
        link(&fl, p, "down");
    }
    let s = wait_status(&fl.sock, Duration::from_secs(3), |s| !s.mii_status);
    assert!(s.proc_text().contains("MII Status: down\n"));
    assert!(
        wait_for(Duration::from_secs(2), || (!carrier(&fl)).then_some(())).is_some(),
        "bond0 lost carrier"
    );
    link(&fl, "sw-p1", "up");
    wait_status(&fl.sock, Duration::from_secs(3), |s| {
        s.mii_status && s.active.as_deref() == Some("eth1")
    });
    assert!(
        wait_for(Duration::from_secs(2), || carrier(&fl).then_some(())).is_some(),
        "bond0 carrier back"
    );

    assert!(
        fl.lab.stop("xbond").unwrap(),
        "xbond exits cleanly on SIGTERM"
    );
    // bond0 stays, as a kernel bond does when its daemon-less driver idles:
    // without the daemon it has no carrier.
    let links = fl.lab.exec(&fl.host, &["ip", "-o", "link"]).unwrap();
    assert!(
        links.contains("bond0") && links.contains("xb-bond0"),
        "upper port kept: {links}"
    );
    assert!(!carrier(&fl), "bond0 has no carrier while no daemon runs");
    assert_eq!(mac(&fl), mac_eth1, "slave MAC restored");
    assert!(!ipv6_off(&fl), "the slave's IPv6 is back");
}

/// `xbond failover-test --bond bond0 ...` inside `ns`: (success, output).
fn live_test(t: &common::TwoLinks, sock: &str, target: &str, extra: &[&str]) -> (bool, String) {
    let (code, text) = common::output(
        std::process::Command::new("ip")
            .args(["netns", "exec", &t.host])
            .arg(exe())
            .args([
                "failover-test",
                "--bond",
                "bond0",
                "--socket",
                sock,
                "--target",
                target,
            ])
            .args(extra),
    );
    (code == 0, text)
}

#[test]
fn the_runbook_test_on_a_running_bond_reports_the_takeover_and_the_primary_as_configured() {
    for (reselect, back) in [("always", true), ("failure", false)] {
        let mut t = common::TwoLinks::new("fr");
        t.far_bridge("10.96.0.2/24");
        let host = t.host.clone();
        let sock = t.start(
            &host,
            "xa",
            &format!("name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nprimary_reselect = \"{reselect}\"\nmiimon = 100\n"),
            "10.96.0.1/24",
        );
        wait_status(&sock, Duration::from_secs(20), |s| {
            s.active.as_deref() == Some("a0") && s.slaves.iter().all(|x| x.mii_status == "up")
        });
        // Without --yes nothing is touched.
        let (ok, text) = live_test(&t, &sock, "10.96.0.2", &[]);
        assert!(!ok && text.contains("Rerun with --yes"), "{text}");
        let s = status(&sock);
        assert_eq!(
            (s.active.as_deref(), s.slaves[0].link_failure_count),
            (Some("a0"), 0)
        );
        // With --yes: a0 down under the pings, a1 takes over, a0 back.
        let (ok, text) = live_test(&t, &sock, "10.96.0.2", &["--yes", "--json"]);
        let r: serde_json::Value = serde_json::from_str(text.lines().last().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(r["taken_down"], "a0", "{text}");
        assert_eq!(r["new_active"], "a1", "{text}");
        assert_eq!(r["primary_expected_back"], back, "{text}");
        assert_eq!(r["primary_as_configured"], true, "{text}");
        assert_eq!(r["active_after"], if back { "a0" } else { "a1" }, "{text}");
        // The verdict (from a figure: not asserted) is what the exit status
        // and the problems say.
        assert!(r["sent"].as_u64().unwrap() >= 100, "{text}");
        assert_eq!(ok, r["passed"] == true, "{text}");
        assert_eq!(
            r["passed"] == true,
            r["problems"].as_array().unwrap().is_empty(),
            "{text}"
        );
        // The slave is up again and the bond saw one failure of it.
        let s = status(&sock);
        assert_eq!(s.slaves[0].mii_status, "up");
        assert_eq!(s.slaves[0].link_failure_count, 1);
        let admin = t
            .lab
            .exec(&host, &["ip", "-o", "link", "show", "a0"])
            .unwrap();
        assert!(admin.contains(",UP"), "{admin}");
    }
}
