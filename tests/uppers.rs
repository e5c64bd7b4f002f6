//! Devices stacked on bond0 are announced after a failover, as the kernel's
//! peer notification reaches every upper device: with the address on a
//! bridge on bond0 (the seed's `vmbr0`) and none on bond0, the new active
//! slave sends vmbr0's gratuitous ARP from vmbr0's MAC, and the far side's
//! switch learns that the MAC moved without any other traffic from the host.

mod common;

use std::time::Duration;

use common::{exe, wait_status, TwoLinks};

const VMBR0_MAC: &str = "02:00:00:00:bb:01";

fn far_fdb(t: &TwoLinks) -> String {
    t.lab
        .exec(&t.far, &["bridge", "fdb", "show", "br", "br0"])
        .unwrap()
}

#[test]
fn a_bridge_on_bond0_is_announced_on_the_new_active_slave() {
    let mut t = TwoLinks::new("ub");
    let (host, far) = (t.host.clone(), t.far.clone());
    t.far_bridge("10.84.0.2/24");
    let sock = t
        .lab
        .start_xbond(
            exe(),
            &host,
            "xa",
            "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\n",
        )
        .expect("xbond starts");
    for c in [
        "ip link add vmbr0 type bridge",
        "sysctl -qw net.ipv6.conf.vmbr0.disable_ipv6=1",
        "sysctl -qw net.ipv6.conf.bond0.disable_ipv6=1",
        &format!("ip link set vmbr0 address {VMBR0_MAC}"),
        "ip link set bond0 master vmbr0",
        "ip link set vmbr0 up",
        "ip addr add 10.84.0.1/24 dev vmbr0",
    ] {
        t.lab
            .exec(&host, &c.split(' ').collect::<Vec<_>>())
            .unwrap();
    }
    let s = wait_status(&sock, Duration::from_secs(15), |s| {
        s.runtime
            .announced
            .iter()
            .any(|a| a.starts_with("vmbr0 (vlan 0") && a.contains("10.84.0.1"))
    });
    assert!(
        s.proc_text().contains("Announced after failover: vmbr0"),
        "{}",
        s.proc_text()
    );
    // Permanent neighbour entries on both sides: neither host sends ARP of
    // its own (a probe from vmbr0 would teach the far bridge too).
    let br0_mac = t.mac(&far, "br0");
    for (ns, ip, mac, dev) in [
        (&host, "10.84.0.2", br0_mac.as_str(), "vmbr0"),
        (&far, "10.84.0.1", VMBR0_MAC, "br0"),
    ] {
        t.lab
            .exec(
                ns,
                &[
                    "ip",
                    "neigh",
                    "replace",
                    ip,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            )
            .unwrap();
    }
    let ping = t.ping(&far, "10.84.0.1");
    assert!(ping.contains(" 0% packet loss"), "{ping}");
    assert!(
        far_fdb(&t).contains(&format!("{VMBR0_MAC} dev b0 ")),
        "{}",
        far_fdb(&t)
    );

    // The active link fails; the far bridge forgets what it learned on b0.
    // Only vmbr0's announcement can teach it where vmbr0 is now.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(10), |s| {
        s.active.as_deref() == Some("a1")
    });
    let learned = xbond::lab::wait_for(Duration::from_secs(10), || {
        far_fdb(&t)
            .contains(&format!("{VMBR0_MAC} dev b1 "))
            .then_some(())
    });
    assert!(learned.is_some(), "{}", far_fdb(&t));
}

fn far_mdb(t: &TwoLinks) -> String {
    t.lab
        .exec(&t.far, &["bridge", "mdb", "show", "dev", "br0"])
        .unwrap()
}

#[test]
fn groups_joined_on_bond0_are_reported_again_on_the_new_active_slave() {
    let mut t = TwoLinks::new("ug");
    let (host, far) = (t.host.clone(), t.far.clone());
    // The far side is a switch with IGMP/MLD snooping (the bridge's
    // default) and no querier: only a report tells it where a group is.
    t.far_bridge("10.85.0.2/24");
    // The host reports an IPv4 join once (robustness 1, per namespace):
    // after that, nothing but xbond's resend sends an IGMP report.
    t.lab
        .exec(&host, &["sysctl", "-qw", "net.ipv4.igmp_qrv=1"])
        .unwrap();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\nresend_igmp = 2\n",
        "10.85.0.1/24",
    );
    // MLD's robustness is not per namespace: the host's one retransmission
    // of the IPv6 join comes within 1 ms of it, long before the failover
    // (which waits for the status and the switch to show the join).
    for c in [
        "sysctl -qw net.ipv6.conf.bond0.mldv2_unsolicited_report_interval=1",
        "ip addr add 239.85.1.1/32 dev bond0 autojoin",
        "ip -6 addr add ff05::85:1/128 dev bond0 autojoin",
    ] {
        t.lab
            .exec(&host, &c.split(' ').collect::<Vec<_>>())
            .unwrap();
    }
    wait_status(&sock, Duration::from_secs(15), |s| {
        s.runtime.reported.iter().any(|r| {
            r.starts_with("bond0 (vlan 0):") && r.contains("239.85.1.1") && r.contains("ff05::85:1")
        })
    });
    // The host's own reports at the join went out on a0.
    let on = |port: &str, group: &str| {
        far_mdb(&t)
            .lines()
            .any(|l| l.contains(&format!("port {port} ")) && l.contains(&format!("grp {group} ")))
    };
    let joined = xbond::lab::wait_for(Duration::from_secs(10), || {
        (on("b0", "239.85.1.1") && on("b0", "ff05::85:1")).then_some(())
    });
    assert!(joined.is_some(), "{}", far_mdb(&t));
    assert!(!on("b1", "239.85.1.1"), "{}", far_mdb(&t));

    // The active link fails: the switch drops b0's memberships, and only
    // xbond's reports on a1 can put the groups on b1.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(10), |s| {
        s.active.as_deref() == Some("a1")
    });
    let moved = xbond::lab::wait_for(Duration::from_secs(10), || {
        (on("b1", "239.85.1.1") && on("b1", "ff05::85:1")).then_some(())
    });
    assert!(moved.is_some(), "{}", far_mdb(&t));
}
