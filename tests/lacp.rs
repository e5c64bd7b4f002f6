//! 802.3ad between two xbond instances on veth links in network namespaces:
//! negotiation at both rates, traffic both ways, a link going down, a
//! partner that stops speaking LACP while carrier stays up, and the LACPDUs
//! on the wire as tshark dissects them.

mod common;

use std::time::{Duration, Instant};

use common::{status, wait_status, TwoLinks};
use xbond_core::status::Status;

const DISTRIBUTING: u8 = 0x20;

fn cfg(rate: &str, a: &str, b: &str) -> String {
    format!(
        "name = \"bond0\"\nslaves = [\"{a}\", \"{b}\"]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"{rate}\"\nxmit_hash_policy = \"layer3+4\"\n"
    )
}

fn distributing(s: &Status) -> Vec<String> {
    s.slaves
        .iter()
        .filter(|sl| {
            sl.lacp
                .as_ref()
                .is_some_and(|l| l.actor_state & DISTRIBUTING != 0)
        })
        .map(|sl| sl.name.clone())
        .collect()
}

/// Starts both bonds with the links down, brings the links up and returns the
/// time until both ends distribute on both links.
fn negotiate(t: &mut TwoLinks, rate: &str) -> (String, String, Duration) {
    let (host, far) = (t.host.clone(), t.far.clone());
    for p in ["b0", "b1"] {
        t.lab.exec(&far, &["ip", "link", "set", p, "down"]).unwrap();
    }
    let sa = t.start(&host, "xa", &cfg(rate, "a0", "a1"), "10.70.0.1/24");
    let sb = t.start(&far, "xb", &cfg(rate, "b0", "b1"), "10.70.0.2/24");
    let s = status(&sa);
    assert!(!s.mii_status, "no partner yet: bond0 carrier is down");
    let t0 = Instant::now();
    for p in ["b0", "b1"] {
        t.lab.exec(&far, &["ip", "link", "set", p, "up"]).unwrap();
    }
    wait_status(&sa, Duration::from_secs(10), |s| {
        distributing(s).len() == 2 && s.mii_status
    });
    wait_status(&sb, Duration::from_secs(10), |s| {
        distributing(s).len() == 2 && s.mii_status
    });
    (sa, sb, t0.elapsed())
}

#[test]
fn fast_rate_negotiates_carries_traffic_and_survives_a_link_loss() {
    let mut t = TwoLinks::new("lf");
    let (host, far) = (t.host.clone(), t.far.clone());
    let (sa, sb, took) = negotiate(&mut t, "fast");
    println!("802.3ad fast: link up to collecting+distributing on both ends in {took:?}");
    let s = status(&sa);
    let text = s.proc_text();
    println!("{text}");
    for line in [
        "Bonding Mode: IEEE 802.3ad Dynamic link aggregation\n",
        "Transmit Hash Policy: layer3+4 (1)\n",
        "LACP rate: fast\n",
        "Active Aggregator Info:\n",
        "\tNumber of ports: 2\n",
        // veth reports 10000 Mb/s full duplex: speed code 7, key 15, on both
        // ends, although the links were down (speed unknown) at start.
        "\tActor Key: 15\n\tPartner Key: 15\n",
    ] {
        assert!(text.contains(line), "missing {line:?}");
    }
    let partner = status(&sb).lacp.unwrap().system_mac;
    assert!(
        text.contains(&format!("\tPartner Mac Address: {partner}\n")),
        "{text}"
    );

    let ping = t.ping(&host, "10.70.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    // Traffic both ways, spread by layer3+4 over both links.
    let mac_b = t.mac(&far, "bond0");
    let mac_a = t.mac(&host, "bond0");
    t.sink(&far, "sink1", &["bond0"], 1, 2000);
    t.send(&host, "bond0", &mac_b, 64, 2000, 20_000, 1);
    let r = t.sink_report("sink1");
    assert_eq!((r.unique, r.duplicates), (2000, 0), "{r:?}");
    t.sink(&host, "sink2", &["bond0"], 2, 2000);
    t.send(&far, "bond0", &mac_a, 64, 2000, 20_000, 2);
    let r = t.sink_report("sink2");
    assert_eq!((r.unique, r.duplicates), (2000, 0), "{r:?}");
    let s = status(&sa);
    assert!(
        s.slaves
            .iter()
            .all(|sl| sl.runtime.tx_frames > 300 && sl.runtime.rx_frames > 300),
        "both links used: {s:?}"
    );

    // One link goes down: it leaves the aggregator and traffic continues.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    let s = wait_status(&sa, Duration::from_secs(5), |s| distributing(s) == ["a1"]);
    assert!(s.mii_status);
    assert_eq!(s.lacp.unwrap().active_aggregator.unwrap().ports, 1);
    // Both ends settled on the remaining link (its port may re-attach on the
    // far end when its aggregator changes) before the stream starts.
    wait_status(&sb, Duration::from_secs(10), |s| distributing(s) == ["b1"]);
    t.sink(&far, "sink3", &["bond0"], 3, 1000);
    t.send(&host, "bond0", &mac_b, 64, 1000, 20_000, 3);
    let r = t.sink_report("sink3");
    assert_eq!(r.unique, 1000, "{r:?}");
}

#[test]
fn slow_rate_negotiates() {
    let mut t = TwoLinks::new("ls");
    let (sa, _sb, took) = negotiate(&mut t, "slow");
    println!("802.3ad slow: link up to collecting+distributing on both ends in {took:?}");
    let s = status(&sa);
    assert!(s.proc_text().contains("LACP rate: slow\n"));
    // Slow on the wire: both ends ask for long timeouts (LACP_Timeout clear).
    for sl in &s.slaves {
        let l = sl.lacp.as_ref().unwrap();
        assert_eq!(
            (l.actor_state & 0x02, l.partner_state & 0x02),
            (0, 0),
            "{}",
            s.proc_text()
        );
    }
    let ping = t.ping(&t.host.clone(), "10.70.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
}

#[test]
fn stopping_lacp_on_one_link_removes_that_link_by_the_lacp_timeout() {
    // The partner is two xbond instances, one per link, in two namespaces,
    // with the same system ID and key: to us, one partner system. Stopping
    // one of them stops LACP on its link while the link's carrier stays up.
    // (This machine has no tc classifiers to drop LACPDUs on one link.)
    common::require_root();
    let mut lab = xbond::lab::Lab::new("lq").unwrap();
    let host = lab.netns("host").unwrap();
    let far1 = lab.netns("far1").unwrap();
    let far2 = lab.netns("far2").unwrap();
    lab.veth(&host, "a0", &far1, "b0").unwrap();
    lab.veth(&host, "a1", &far2, "b1").unwrap();
    let exe = common::exe();
    let sa = lab
        .start_xbond(exe, &host, "xa", &cfg("fast", "a0", "a1"))
        .unwrap();
    let partner = |slave: &str| {
        format!(
            "name = \"bond0\"\nslaves = [\"{slave}\"]\nmode = \"802.3ad\"\nlacp_rate = \"fast\"\nad_actor_system = \"02:00:00:00:00:b0\"\n"
        )
    };
    lab.start_xbond(exe, &far1, "xb1", &partner("b0")).unwrap();
    lab.start_xbond(exe, &far2, "xb2", &partner("b1")).unwrap();
    let s = wait_status(&sa, Duration::from_secs(10), |s| distributing(s).len() == 2);
    assert_eq!(
        s.lacp.unwrap().active_aggregator.unwrap().ports,
        2,
        "one aggregator"
    );
    assert!(lab.stop("xb1").unwrap());
    let t0 = Instant::now();
    // Carrier stays up on a0: only the partner's silence (the fast rate's
    // 3 s timeout) can take it out of the aggregator. The time is a figure,
    // printed; the wait is only a hang guard.
    let s = wait_status(&sa, Duration::from_secs(15), |s| distributing(s) == ["a1"]);
    let took = t0.elapsed();
    println!("LACP stopped on one link: removed after {took:?}");
    assert_eq!(s.slaves[0].mii_status, "up", "a0 kept its carrier");
    assert!(s.mii_status, "a1 carries on");
}

#[test]
fn emitted_lacpdus_dissect_cleanly_in_tshark() {
    if std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("tshark is not installed (scripts/setup.sh installs it)");
    }
    let mut t = TwoLinks::new("lt");
    let far = t.far.clone();
    let pcap = t.lab.dir().join("lacp.pcap").display().to_string();
    // Capture on the far end of a0 while xbond negotiates with nobody.
    t.lab
        .spawn(
            &far,
            "tshark",
            &[
                "tshark",
                "-q",
                "-i",
                "b0",
                "-f",
                "ether proto 0x8809",
                "-a",
                "duration:5",
                "-w",
                &pcap,
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let host = t.host.clone();
    let _sa = t.start(&host, "xa", &cfg("fast", "a0", "a1"), "10.71.0.1/24");
    t.lab.wait("tshark", Duration::from_secs(15)).unwrap();
    let text = common::run(&["tshark", "-r", &pcap, "-V"]);
    let n = text.matches("Link Aggregation Control Protocol").count();
    assert!(n >= 2, "captured {n} LACPDUs:\n{text}");
    assert!(
        text.contains("Actor System: ") || text.contains("Actor System ID"),
        "{text}"
    );
    assert!(!text.contains("Malformed"), "{text}");
    let expert = common::run(&["tshark", "-r", &pcap, "-q", "-z", "expert"]);
    assert!(
        !expert.contains("Warning") && !expert.contains("Error"),
        "tshark expert info: {expert}"
    );
}
