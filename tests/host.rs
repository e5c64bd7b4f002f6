//! bond0 outlives the daemon: a restart adopts xbond's own upper port and
//! keeps what the host configured on it, and the active slave; a crash
//! leaves bond0 for the unit's `xbond down --carrier-only` and the next
//! start; an interface that is not xbond's is refused and left untouched;
//! `xbond down` removes the bond for good.

mod common;

use std::time::Duration;

use common::{exe, status, wait_status, TwoLinks};

fn ab(extra: &str) -> String {
    format!("name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100\n{extra}\n")
}

fn carrier(t: &TwoLinks, ns: &str, iface: &str) -> bool {
    t.lab
        .exec(ns, &["cat", &format!("/sys/class/net/{iface}/carrier")])
        .map(|c| c.trim() == "1")
        .unwrap_or(false)
}

fn xbond(t: &TwoLinks, ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let exe = exe().display().to_string();
    let mut all = vec![exe.as_str()];
    all.extend_from_slice(args);
    t.lab.exec(ns, &all)
}

fn ifindex(t: &TwoLinks, ns: &str, iface: &str) -> String {
    t.lab
        .exec(ns, &["cat", &format!("/sys/class/net/{iface}/ifindex")])
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_restart_keeps_bond0_its_configuration_and_the_active_slave() {
    let mut t = TwoLinks::new("rk");
    t.far_bridge("10.66.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(&host, "xa", &ab(""), "10.66.0.1/24");
    // What a host puts on a bond: an upper device with an address (this
    // kernel has no 8021q; a macvlan stands in for a VLAN device), a route,
    // an MTU.
    for cmd in [
        "ip link add link bond0 name bond0m type macvlan mode bridge",
        "ip addr add 10.67.0.1/24 dev bond0m",
        "ip link set bond0m up",
        "ip route add 10.68.0.0/24 via 10.66.0.2",
        "ip link set bond0 mtu 1400",
        "ip link set bond0 address 02:00:00:66:00:01",
    ] {
        t.lab
            .exec(&host, &cmd.split(' ').collect::<Vec<_>>())
            .unwrap();
    }
    let index = ifindex(&t, &host, "bond0");
    // Move the active slave to a1: without a primary it stays there when
    // a0 returns.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a1")
    });
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(5), |s| {
        s.slaves.iter().all(|sl| sl.mii_status == "up")
    });
    assert_eq!(status(&sock).active.as_deref(), Some("a1"));

    assert!(t.lab.stop("xa").unwrap(), "clean exit");
    assert!(!carrier(&t, &host, "bond0"), "no carrier without a daemon");
    assert_eq!(ifindex(&t, &host, "bond0"), index, "the same bond0");

    let sock = t
        .lab
        .start_xbond(exe(), &host, "xa", &ab(""))
        .expect("restart");
    let s = wait_status(&sock, Duration::from_secs(5), |s| s.mii_status);
    assert_eq!(
        s.active.as_deref(),
        Some("a1"),
        "no failover from a restart"
    );
    assert_eq!(
        ifindex(&t, &host, "bond0"),
        index,
        "bond0 adopted, not made anew"
    );
    let addrs = t.lab.exec(&host, &["ip", "-o", "addr", "show"]).unwrap();
    assert!(
        addrs.contains("10.66.0.1/24"),
        "bond0's address kept: {addrs}"
    );
    assert!(
        addrs.contains("10.67.0.1/24"),
        "the VLAN device kept: {addrs}"
    );
    let link = t
        .lab
        .exec(&host, &["ip", "-o", "link", "show", "bond0"])
        .unwrap();
    assert!(link.contains("mtu 1400"), "MTU kept: {link}");
    assert!(
        link.contains("link/ether 02:00:00:66:00:01"),
        "the MAC the host gave bond0 kept: {link}"
    );
    let routes = t.lab.exec(&host, &["ip", "route"]).unwrap();
    assert!(
        routes.contains("10.68.0.0/24 via 10.66.0.2"),
        "route kept: {routes}"
    );
    assert!(
        xbond::lab::wait_for(Duration::from_secs(5), || carrier(&t, &host, "bond0")
            .then_some(()))
        .is_some(),
        "carrier back"
    );
    t.ping(&host, "10.66.0.2");

    // xbond down refuses while the daemon runs, then removes the bond.
    let err = xbond(&t, &host, &["down", "bond0", "--socket", &sock]).unwrap_err();
    assert!(format!("{err}").contains("is running"), "{err}");
    assert!(t.lab.stop("xa").unwrap());
    xbond(&t, &host, &["down", "bond0", "--socket", &sock]).expect("xbond down");
    let links = t.lab.exec(&host, &["ip", "-o", "link"]).unwrap();
    assert!(
        !links.contains("bond0") && !links.contains("xb-bond0"),
        "bond0 and its upper device gone: {links}"
    );
}

#[test]
fn after_a_crash_the_carrier_goes_down_and_the_next_start_adopts_bond0() {
    let mut t = TwoLinks::new("cr");
    t.far_bridge("10.69.0.2/24");
    let host = t.host.clone();
    let mac_a1 = t.mac(&host, "a1");
    let rxvlan = |t: &TwoLinks| {
        t.lab
            .exec(&host, &["ethtool", "-k", "a1"])
            .unwrap()
            .lines()
            .find(|l| l.starts_with("rx-vlan-offload:"))
            .unwrap_or_default()
            .to_string()
    };
    let rxvlan_before = rxvlan(&t);
    let _sock = t.start(&host, "xa", &ab(""), "10.69.0.1/24");
    assert_ne!(t.mac(&host, "a1"), mac_a1, "a1 carries the bond MAC");
    let index = ifindex(&t, &host, "bond0");
    t.lab.kill("xa").unwrap();
    // What the unit's ExecStopPost runs.
    xbond(&t, &host, &["down", "bond0", "--carrier-only"]).expect("carrier off");
    assert!(
        xbond::lab::wait_for(Duration::from_secs(5), || (!carrier(&t, &host, "bond0"))
            .then_some(()))
        .is_some(),
        "no carrier after the crash"
    );
    let sock = t
        .lab
        .start_xbond(exe(), &host, "xa", &ab(""))
        .expect("start");
    wait_status(&sock, Duration::from_secs(5), |s| s.mii_status);
    assert_eq!(ifindex(&t, &host, "bond0"), index, "bond0 adopted");
    t.ping(&host, "10.69.0.2");
    // The crash left a1 with the bond's MAC and its offload off; the clean
    // exit after the restart still gives back what it had before.
    assert!(t.lab.stop("xa").unwrap());
    assert_eq!(t.mac(&host, "a1"), mac_a1, "a1's own MAC back");
    assert_eq!(rxvlan(&t), rxvlan_before, "a1's rx-vlan-offload back");
}

#[test]
fn an_interface_that_is_not_xbonds_is_refused_and_left_alone() {
    let t = TwoLinks::new("fo");
    let host = t.host.clone();
    // A user's veth pair under xbond's names, then a bridge.
    t.lab
        .exec(
            &host,
            &[
                "ip", "link", "add", "bond0", "type", "veth", "peer", "name", "xb-bond0",
            ],
        )
        .unwrap();
    t.lab
        .exec(
            &host,
            &["ip", "addr", "add", "10.70.0.1/24", "dev", "bond0"],
        )
        .unwrap();
    let index = ifindex(&t, &host, "bond0");
    let cfg = t.lab.dir().join("foreign.toml");
    std::fs::write(&cfg, ab("control_socket = \"/run/xbond/fo-test.sock\"")).unwrap();
    let err = xbond(&t, &host, &["run", "--config", &cfg.display().to_string()]).unwrap_err();
    let msg = format!("{err}");
    assert!(
        msg.contains("xb-bond0 exists and is a veth interface without xbond's mark"),
        "{msg}"
    );
    let err = xbond(&t, &host, &["down", "bond0"]).unwrap_err();
    assert!(
        format!("{err}").contains("not the data-plane side"),
        "{err}"
    );
    assert_eq!(ifindex(&t, &host, "bond0"), index, "left alone");
    let addrs = t
        .lab
        .exec(&host, &["ip", "-o", "addr", "show", "bond0"])
        .unwrap();
    assert!(addrs.contains("10.70.0.1/24"), "{addrs}");

    t.lab.exec(&host, &["ip", "link", "del", "bond0"]).unwrap();
    t.lab
        .exec(&host, &["ip", "link", "add", "bond0", "type", "bridge"])
        .unwrap();
    let err = xbond(&t, &host, &["run", "--config", &cfg.display().to_string()]).unwrap_err();
    assert!(
        format!("{err}").contains("bond0 exists and is a bridge interface"),
        "{err}"
    );

    // A slave that another master holds (a kernel bond, a bridge) is not
    // taken from it.
    t.lab.exec(&host, &["ip", "link", "del", "bond0"]).unwrap();
    t.lab
        .exec(&host, &["ip", "link", "add", "brx", "type", "bridge"])
        .unwrap();
    t.lab
        .exec(&host, &["ip", "link", "set", "a1", "master", "brx"])
        .unwrap();
    let err = xbond(&t, &host, &["run", "--config", &cfg.display().to_string()]).unwrap_err();
    assert!(
        format!("{err}").contains("slave a1 (key slaves) is enslaved to brx"),
        "{err}"
    );
    let links = t.lab.exec(&host, &["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("bond0"), "nothing made: {links}");
}

#[test]
fn a_start_that_fails_leaves_no_half_made_interfaces() {
    let t = TwoLinks::new("hf");
    let host = t.host.clone();
    // The control socket cannot be made: set-up fails after the upper port
    // and the data plane were made.
    let cfg = t.lab.dir().join("bad.toml");
    std::fs::write(
        &cfg,
        ab("control_socket = \"/proc/xbond-cannot-be-here.sock\""),
    )
    .unwrap();
    let mac_a0 = t.mac(&host, "a0");
    let err = xbond(&t, &host, &["run", "--config", &cfg.display().to_string()]).unwrap_err();
    assert!(format!("{err}").contains("xbond-cannot-be-here"), "{err}");
    let links = t.lab.exec(&host, &["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("bond0"), "nothing left: {links}");
    assert_eq!(t.mac(&host, "a0"), mac_a0, "slave MAC restored");
}
