//! The ARP and IPv6 NS link monitors on veth links: a path that fails while
//! carrier stays up (the far end leaves the switch) is detected within
//! arp_interval × arp_missed_max and traffic moves; it comes back when the
//! path does; arp_validate lets a backup prove itself by the active slave's
//! probes; combined monitoring with link_watch_policy.

mod common;

use std::time::{Duration, Instant};

use common::{status, wait_status, TwoLinks};

const INTERVAL_MS: u64 = 200;
const MISSED_MAX: u64 = 2;

fn ab(extra: &str) -> String {
    format!(
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\narp_interval = {INTERVAL_MS}\narp_missed_max = {MISSED_MAX}\n{extra}\n"
    )
}

/// Takes b0 out of the far switch (its carrier stays up) and returns how long
/// the bond took to declare a0 down. b0 also stops answering ARP itself:
/// Linux would otherwise answer for the switch's address on any interface.
fn cut_path_and_time(t: &TwoLinks, sock: &str) -> Duration {
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "arp", "off"])
        .unwrap();
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "nomaster"])
        .unwrap();
    let t0 = Instant::now();
    let s = wait_status(sock, Duration::from_secs(5), |s| {
        s.slaves[0].mii_status == "down"
    });
    let took = t0.elapsed();
    assert!(s.slaves[0].carrier, "a0 kept its carrier");
    // The ARP/NS monitor, not the carrier, took the link down.
    assert_eq!(s.slaves[0].arp_up, Some(false), "{:?}", s.slaves[0]);
    took
}

#[test]
fn arp_monitor_detects_a_dead_path_with_carrier_up_and_recovers() {
    let mut t = TwoLinks::new("am");
    t.far_bridge("10.66.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        &ab("miimon = 0\narp_ip_target = [\"10.66.0.2\"]\narp_validate = \"all\""),
        "10.66.0.1/24",
    );
    let s = wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a0") && s.slaves.iter().all(|sl| sl.arp_up == Some(true))
    });
    let text = s.proc_text();
    assert!(text.contains("ARP Polling Interval (ms): 200\nARP Missed Max: 2\nARP IP target/s (n.n.n.n form): 10.66.0.2\n"), "{text}");
    assert!(text.contains("Monitors: carrier up, ARP/NS up\n"), "{text}");
    let ping = t.ping(&host, "10.66.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");

    let took = cut_path_and_time(&t, &sock);
    println!("ARP monitor: dead path detected after {took:?} (arp_interval {INTERVAL_MS} ms, arp_missed_max {MISSED_MAX})");
    let s = wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a1")
    });
    assert_eq!(s.slaves[0].link_failure_count, 1);
    let ping = t.ping(&host, "10.66.0.2");
    assert!(
        ping.contains(" 0% packet loss"),
        "traffic moved to a1: {ping}"
    );

    // The path comes back: a0 proves itself again and, as primary, takes over.
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "arp", "on"])
        .unwrap();
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "master", "br0"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a0")
    });
    let ping = t.ping(&host, "10.66.0.2");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
}

#[test]
fn arp_validate_all_keeps_a_backup_up_by_the_active_probes() {
    let mut t = TwoLinks::new("av");
    t.far_bridge("10.67.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        &ab("miimon = 0\narp_ip_target = [\"10.67.0.2\"]\narp_validate = \"all\""),
        "10.67.0.1/24",
    );
    // a1 never answers a probe itself (only the active probes), yet it is up:
    // it sees a0's probes flooded by the switch, which validate as proof.
    let s = wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a0") && s.slaves[1].arp_up == Some(true)
    });
    // Stays so over several intervals.
    std::thread::sleep(Duration::from_millis(INTERVAL_MS * 4));
    let s2 = status(&sock);
    assert_eq!(s2.slaves[1].arp_up, Some(true), "{}", s2.proc_text());
    assert_eq!(
        s.slaves[1].link_failure_count,
        s2.slaves[1].link_failure_count
    );
}

#[test]
fn miimon_and_arp_together_with_link_watch_policy_all() {
    let mut t = TwoLinks::new("aw");
    t.far_bridge("10.68.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        &ab("miimon = 100\narp_ip_target = [\"10.68.0.2\"]\nlink_watch_policy = \"all\"\narp_validate = \"all\""),
        "10.68.0.1/24",
    );
    wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a0")
    });
    // Carrier loss takes the link down (carrier and ARP must agree)...
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    let s = wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a1")
    });
    assert!(
        !s.slaves[0].carrier,
        "a0's carrier is gone: {:?}",
        s.slaves[0]
    );
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a0")
    });
    // ...and so is a dead path with carrier up.
    let took = cut_path_and_time(&t, &sock);
    println!("link_watch_policy all: dead path detected after {took:?}");
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a1")
    });
}

#[test]
fn ns_monitor_detects_a_dead_path_over_ipv6() {
    let mut t = TwoLinks::new("nm");
    t.far_bridge("10.69.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    t.lab
        .exec(
            &far,
            &["ip", "addr", "add", "fd00:69::2/64", "dev", "br0", "nodad"],
        )
        .unwrap();
    let sock = t.start(
        &host,
        "xa",
        &ab("miimon = 0\nns_ip6_target = [\"fd00:69::2\"]\narp_validate = \"all\""),
        "10.69.0.1/24",
    );
    t.lab
        .exec(
            &host,
            &[
                "ip",
                "addr",
                "add",
                "fd00:69::1/64",
                "dev",
                "bond0",
                "nodad",
            ],
        )
        .unwrap();
    let s = wait_status(&sock, Duration::from_secs(6), |s| {
        s.active.as_deref() == Some("a0") && s.slaves[0].arp_up == Some(true)
    });
    assert!(s
        .proc_text()
        .contains("NS IPv6 target/s (xx::xx form): fd00:69::2\n"));
    let took = cut_path_and_time(&t, &sock);
    println!("NS monitor: dead path detected after {took:?}");
    wait_status(&sock, Duration::from_secs(3), |s| {
        s.active.as_deref() == Some("a1")
    });
    let ping = t
        .lab
        .exec(
            &host,
            &[
                "ping",
                "-6",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                "fd00:69::2",
            ],
        )
        .unwrap();
    assert!(ping.contains(" 0% packet loss"), "{ping}");
}
