//! bond0's receive filters reach the slaves as the kernel bond passes them
//! down: a bridge on bond0 makes it promiscuous, and the promiscuity goes to
//! the active slave only in active-backup (and moves at failover), to every
//! slave in balance-xor; bond0's multicast groups and its unicast address
//! list (a macvlan's MAC, `bridge fdb add ... self`) follow the same rule; an
//! 802.3ad slave joins the Slow Protocols group; nothing is left when the
//! daemon stops.

mod common;

use std::time::Duration;

use common::TwoLinks;

fn promiscuity(t: &TwoLinks, iface: &str) -> u32 {
    let out = t
        .lab
        .exec(&t.host, &["ip", "-d", "link", "show", iface])
        .unwrap();
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "promiscuity" {
            return words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    0
}

fn maddrs(t: &TwoLinks, iface: &str) -> String {
    t.lab
        .exec(&t.host, &["ip", "maddr", "show", "dev", iface])
        .unwrap()
}

fn wait(what: &str, f: impl Fn() -> bool) {
    assert!(
        xbond::lab::wait_for(Duration::from_secs(10), || f().then_some(())).is_some(),
        "{what}"
    );
}

const GROUP: &str = "01:00:5e:01:02:03";
/// A secondary unicast address on bond0 (as a macvlan on it would add).
const UNICAST: &str = "02:aa:bb:cc:dd:01";

/// The interface's own unicast/multicast list, as `bridge fdb` shows it.
fn fdb_self(t: &TwoLinks, iface: &str) -> String {
    t.lab
        .exec(&t.host, &["bridge", "fdb", "show", "dev", iface])
        .unwrap()
        .lines()
        .filter(|l| l.contains(" self "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn active_backup_passes_bond0_filters_to_the_active_slave_and_moves_them() {
    let mut t = TwoLinks::new("fa");
    let (host, far) = (t.host.clone(), t.far.clone());
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\nmiimon = 100\n",
        "10.75.0.1/24",
    );
    assert_eq!((promiscuity(&t, "a0"), promiscuity(&t, "a1")), (0, 0));
    // A bridge on bond0 (vmbr0) and a group joined on bond0.
    for c in [
        "ip link add vmbr0 type bridge",
        "ip link set bond0 master vmbr0",
        "ip link set vmbr0 up",
    ] {
        t.lab
            .exec(&host, &c.split(' ').collect::<Vec<_>>())
            .unwrap();
    }
    t.lab
        .exec(&host, &["ip", "maddr", "add", GROUP, "dev", "bond0"])
        .unwrap();
    t.lab
        .exec(
            &host,
            &[
                "bridge",
                "fdb",
                "add",
                UNICAST,
                "dev",
                "bond0",
                "self",
                "permanent",
            ],
        )
        .unwrap();
    wait(
        "a0 (active) promiscuous, with the group and the address",
        || {
            promiscuity(&t, "a0") >= 1
                && maddrs(&t, "a0").contains(GROUP)
                && fdb_self(&t, "a0").contains(UNICAST)
        },
    );
    assert!(
        !maddrs(&t, "a1").contains(GROUP),
        "the backup has not the group"
    );
    assert!(!fdb_self(&t, "a1").contains(UNICAST), "nor the address");
    assert_eq!(promiscuity(&t, "a1"), 0, "nor is it promiscuous");

    // Failover: the filters move with the active slave.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    common::wait_status(&sock, Duration::from_secs(5), |s| {
        s.active.as_deref() == Some("a1")
    });
    wait(
        "a1 (new active) promiscuous, with the group and the address",
        || {
            promiscuity(&t, "a1") >= 1
                && maddrs(&t, "a1").contains(GROUP)
                && fdb_self(&t, "a1").contains(UNICAST)
        },
    );
    wait("a0 no longer", || {
        promiscuity(&t, "a0") == 0
            && !maddrs(&t, "a0").contains(GROUP)
            && !fdb_self(&t, "a0").contains(UNICAST)
    });

    // The bridge, the group and the address go: so do the filters.
    t.lab
        .exec(&host, &["ip", "maddr", "del", GROUP, "dev", "bond0"])
        .unwrap();
    t.lab
        .exec(
            &host,
            &["bridge", "fdb", "del", UNICAST, "dev", "bond0", "self"],
        )
        .unwrap();
    t.lab
        .exec(&host, &["ip", "link", "set", "bond0", "nomaster"])
        .unwrap();
    wait("nothing left on a1", || {
        promiscuity(&t, "a1") == 0
            && !maddrs(&t, "a1").contains(GROUP)
            && !fdb_self(&t, "a1").contains(UNICAST)
    });
}

#[test]
fn balance_xor_passes_filters_to_every_slave_and_802_3ad_joins_the_slow_protocols_group() {
    let mut t = TwoLinks::new("fx");
    let host = t.host.clone();
    t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-xor\"\n",
        "10.76.0.1/24",
    );
    t.lab
        .exec(&host, &["ip", "link", "set", "bond0", "promisc", "on"])
        .unwrap();
    t.lab
        .exec(&host, &["ip", "maddr", "add", GROUP, "dev", "bond0"])
        .unwrap();
    wait("both slaves promiscuous, with the group", || {
        ["a0", "a1"]
            .iter()
            .all(|s| promiscuity(&t, s) == 1 && maddrs(&t, s).contains(GROUP))
    });
    assert!(t.lab.stop("xa").unwrap());
    for s in ["a0", "a1"] {
        assert_eq!(promiscuity(&t, s), 0, "{s}: nothing outlives the daemon");
        assert!(!maddrs(&t, s).contains(GROUP), "{s}");
    }

    let mut t = TwoLinks::new("fl");
    let host = t.host.clone();
    t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"802.3ad\"\n",
        "10.77.0.1/24",
    );
    wait("both 802.3ad slaves in 01:80:c2:00:00:02", || {
        ["a0", "a1"]
            .iter()
            .all(|s| maddrs(&t, s).contains("01:80:c2:00:00:02"))
    });
}
