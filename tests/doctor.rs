//! `xbond doctor`: each problem it knows reproduced in a namespace, and
//! named with its exit status (1 warnings, 2 errors); a healthy bond of
//! each mode gets a clean bill (exit 0). What veth cannot reproduce (slaves
//! of different speeds, a slave that lost promisc, ring drops) is covered by
//! the core's unit tests of the same checks.

mod common;

use std::time::Duration;

use common::{exe, wait_status, TwoLinks};

const HANG: Duration = Duration::from_secs(20);

/// `xbond doctor bond0` inside `ns`: (exit status, output).
fn doctor(ns: &str, sock: &str, json: bool) -> (i32, String) {
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(exe())
        .args(["doctor", "bond0", "--socket", sock]);
    if json {
        c.arg("--json");
    }
    common::output(&mut c)
}

fn assert_finds(ns: &str, sock: &str, code: i32, names: &[&str]) -> String {
    let (rc, text) = doctor(ns, sock, false);
    assert_eq!(rc, code, "exit status: {text}");
    for n in names {
        assert!(
            text.contains(&format!("[{n}]")),
            "doctor names {n}:\n{text}"
        );
    }
    text
}

fn cfg(mode: &str, extra: &str) -> String {
    format!("name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"{mode}\"\nmiimon = 100\n{extra}")
}

#[test]
fn a_healthy_bond_of_each_mode_gets_a_clean_bill() {
    for mode in [
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "balance-tlb",
        "balance-alb",
        "802.3ad",
    ] {
        let mut t = TwoLinks::new("dh");
        let (host, far) = (t.host.clone(), t.far.clone());
        let sock = t
            .lab
            .start_xbond_with(exe(), &host, "xa", &cfg(mode, ""), &["--copy"])
            .unwrap();
        if mode == "802.3ad" {
            let far_cfg = cfg(mode, "").replace("a0", "b0").replace("a1", "b1");
            t.lab
                .start_xbond_with(exe(), &far, "xb", &far_cfg, &["--copy"])
                .unwrap();
        }
        wait_status(&sock, HANG, |s| {
            s.mii_status
                && s.slaves.iter().all(|x| {
                    x.mii_status == "up"
                        && x.lacp.as_ref().is_none_or(|p| p.actor_state & 0x30 == 0x30)
                })
        });
        let (rc, text) = doctor(&host, &sock, false);
        assert_eq!(rc, 0, "{mode}: {text}");
        assert!(text.contains("bond0: healthy"), "{mode}: {text}");
    }
}

#[test]
fn no_monitoring_a_down_slave_flapping_and_no_carrier_are_named() {
    // No link monitoring at all.
    let mut t = TwoLinks::new("dm");
    let host = t.host.clone();
    let sock = t
        .lab
        .start_xbond_with(
            exe(),
            &host,
            "xa",
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 0\nlink_watch_policy = \"none\"\n",
            &["--copy"],
        )
        .unwrap();
    assert_finds(&host, &sock, 2, &["no-link-monitoring"]);

    let mut t = TwoLinks::new("dd");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t
        .lab
        .start_xbond_with(exe(), &host, "xa", &cfg("active-backup", ""), &["--copy"])
        .unwrap();
    wait_status(&sock, HANG, |s| {
        s.slaves.iter().all(|x| x.mii_status == "up")
    });
    // A slave down: a warning (and its failure counted).
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "down"])
        .unwrap();
    wait_status(&sock, HANG, |s| s.slaves[1].mii_status == "down");
    let text = assert_finds(&host, &sock, 1, &["slave-down", "link-failures"]);
    assert!(text.contains("slave a1 is down"), "{text}");
    // Flapping while doctor looks (from before it starts until it is
    // done): an error.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flapper = {
        let (far, done) = (far.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for s in ["up", "down"] {
                    let _ = std::process::Command::new("ip")
                        .args(["-n", &far, "link", "set", "b1", s])
                        .status();
                    std::thread::sleep(Duration::from_millis(60));
                }
            }
        })
    };
    let (rc, text) = doctor(&host, &sock, false);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    flapper.join().unwrap();
    assert_eq!(rc, 2, "{text}");
    assert!(
        text.contains("[flapping]") && text.contains("slave a1 is flapping"),
        "{text}"
    );
    // Both down: no carrier.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, HANG, |s| !s.mii_status);
    assert_finds(&host, &sock, 2, &["no-carrier", "slave-down"]);
}

#[test]
fn lacp_without_partner_with_two_partners_and_with_a_lost_partner_is_named() {
    // The far side speaks no LACP: the seed's mode/switch mismatch.
    let mut t = TwoLinks::new("dl");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t
        .lab
        .start_xbond_with(
            exe(),
            &host,
            "xa",
            &cfg("802.3ad", "lacp_rate = \"fast\"\n"),
            &["--copy"],
        )
        .unwrap();
    wait_status(&sock, HANG, |s| {
        s.slaves.iter().all(|x| x.mii_status == "up")
    });
    let text = assert_finds(&host, &sock, 2, &["no-lacpdu", "no-carrier"]);
    assert!(
        text.contains("no LACPDU received on a0") && text.contains("no LACPDU received on a1"),
        "{text}"
    );

    // Each link to a different partner (two bonds on the far side).
    let one = |name: &str, slave: &str| {
        format!("name = \"{name}\"\nslaves = [\"{slave}\"]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"fast\"\n")
    };
    t.lab
        .start_xbond_with(exe(), &far, "xb", &one("bond0", "b0"), &["--copy"])
        .unwrap();
    t.lab
        .start_xbond_with(exe(), &far, "xc", &one("bond1", "b1"), &["--copy"])
        .unwrap();
    wait_status(&sock, HANG, |s| {
        s.slaves.iter().all(|x| {
            x.lacp
                .as_ref()
                .is_some_and(|p| p.counters.lacpdu_rx > 0 && p.actor_state & 0x40 == 0)
        })
    });
    let text = assert_finds(&host, &sock, 2, &["partner-mismatch"]);
    assert!(text.contains("the ports have different partners"), "{text}");

    // The partners go quiet: their information expires, then defaults.
    t.lab.kill("xb").unwrap();
    t.lab.kill("xc").unwrap();
    wait_status(&sock, HANG, |s| {
        s.slaves
            .iter()
            .all(|x| x.lacp.as_ref().is_some_and(|p| p.actor_state & 0xc0 != 0))
    });
    assert_finds(&host, &sock, 2, &["partner-lost"]);
}

#[test]
fn arp_monitor_problems_min_links_mtu_and_copy_mode_are_named() {
    // A target that never answers holds the slaves down (arp_validate all:
    // only replies count, not the probes the bridge floods back).
    let mut t = TwoLinks::new("da");
    t.far_bridge("10.94.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 0\narp_interval = 100\narp_validate = \"all\"\narp_ip_target = [\"10.94.0.99\"]\n",
        "10.94.0.1/24",
    );
    wait_status(&sock, HANG, |s| {
        s.slaves.iter().all(|x| x.arp_up == Some(false))
    });
    let text = assert_finds(&host, &sock, 2, &["arp-target-silent", "no-carrier"]);
    assert!(text.contains("from 10.94.0.99"), "{text}");

    // Targets but no address on bond0 to probe from.
    let mut t = TwoLinks::new("ds");
    t.far_bridge("10.95.0.2/24");
    let host = t.host.clone();
    let sock = t
        .lab
        .start_xbond(
            exe(),
            &host,
            "xa",
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 0\narp_interval = 100\narp_ip_target = [\"10.95.0.2\"]\n",
        )
        .unwrap();
    assert_finds(&host, &sock, 2, &["no-probe-source"]);

    // min_links unmet, a slave whose MTU was changed behind the bond's
    // back, and copy mode where zero-copy was tried (veth has none).
    let mut t = TwoLinks::new("dx");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t
        .lab
        .start_xbond(exe(), &host, "xa", &cfg("balance-xor", "min_links = 2\n"))
        .unwrap();
    t.lab
        .exec(&host, &["ip", "link", "set", "a1", "mtu", "1400"])
        .unwrap();
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "down"])
        .unwrap();
    wait_status(&sock, HANG, |s| s.slaves[1].mii_status == "down");
    let text = assert_finds(
        &host,
        &sock,
        2,
        &["min-links-unmet", "mtu-mismatch", "copy-mode"],
    );
    assert!(text.contains("slave a1 has MTU 1400"), "{text}");
    // --json for scripts.
    let (rc, json) = doctor(&host, &sock, true);
    assert_eq!(rc, 2);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let codes: Vec<&str> = v[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"min-links-unmet") && v[0]["findings"][0]["severity"] == "error",
        "{json}"
    );
    assert_eq!(v[0]["bond"], "bond0");
}
