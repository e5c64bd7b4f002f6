//! `xbond ctl`: live changes to a running bond, as the kernel allows them
//! through sysfs: the active slave, options that take effect at once (the
//! status, the traffic and, in 802.3ad, the partner's view show it), `--save`
//! into the config file with its comments, and each refusal naming the key,
//! the value and what is valid with the bond left unchanged.

mod common;

use std::time::Duration;

use common::{exe, status, wait_status, TwoLinks};

const HANG: Duration = Duration::from_secs(20);

/// `xbond ctl bond0 ARGS` against `sock`: (success, stdout + stderr).
fn ctl(sock: &str, args: &[&str]) -> (bool, String) {
    let (code, text) = common::output(
        std::process::Command::new(exe())
            .args(["ctl", "bond0", "--socket", sock])
            .args(args),
    );
    (code == 0, text)
}

fn ok(sock: &str, args: &[&str]) -> String {
    let (ok, text) = ctl(sock, args);
    assert!(ok, "xbond ctl {args:?}: {text}");
    text
}

fn refused(sock: &str, args: &[&str], says: &[&str]) {
    let before = status(sock);
    let (ok, text) = ctl(sock, args);
    assert!(!ok, "xbond ctl {args:?} must be refused: {text}");
    for s in says {
        assert!(
            text.contains(s),
            "xbond ctl {args:?}: {text:?} must say {s:?}"
        );
    }
    let after = status(sock);
    let settings = |s: &xbond_core::status::Status| {
        let slaves: Vec<(String, i32)> =
            s.slaves.iter().map(|x| (x.name.clone(), x.prio)).collect();
        let lacp = s
            .lacp
            .as_ref()
            .map(|l| (l.rate.clone(), l.system_priority, l.min_links));
        format!(
            "{:?}",
            (
                (
                    &s.active,
                    s.miimon,
                    s.updelay,
                    s.downdelay,
                    s.mode,
                    s.arp_interval
                ),
                (
                    &s.arp_ip_target,
                    s.min_links,
                    s.xmit_hash_policy,
                    &s.primary
                ),
                (s.primary_reselect, slaves, lacp),
            )
        )
    };
    assert_eq!(
        settings(&after),
        settings(&before),
        "the bond is unchanged after {args:?}"
    );
}

#[test]
fn active_backup_takes_a_new_active_slave_and_options_live_and_refuses_the_rest() {
    let mut t = TwoLinks::new("ca");
    t.far_bridge("10.88.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "# the uplink\nname = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100 # ms\n",
        "10.88.0.1/24",
    );
    wait_status(&sock, HANG, |s| {
        s.active.as_deref() == Some("a0") && s.slaves.iter().all(|s| s.mii_status == "up")
    });

    // The active slave, as writing active_slave in sysfs.
    assert!(ok(&sock, &["active-slave", "a1"]).contains("bond0: active slave a1"));
    let s = status(&sock);
    assert_eq!(s.active.as_deref(), Some("a1"));
    let before = s.slaves[1].runtime.tx_frames;
    t.ping(&host, "10.88.0.2");
    assert!(
        status(&sock).slaves[1].runtime.tx_frames > before,
        "a1 carries the traffic"
    );
    refused(
        &sock,
        &["active-slave", "a9"],
        &["active-slave a9: no such slave; slaves: a0, a1"],
    );
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, HANG, |s| s.slaves[0].mii_status == "down");
    refused(
        &sock,
        &["active-slave", "a0"],
        &["active-slave a0: its link is down"],
    );
    t.lab
        .exec(&t.far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    wait_status(&sock, HANG, |s| s.slaves[0].mii_status == "up");

    // Options that take effect at once.
    assert!(ok(&sock, &["set", "miimon", "250"]).contains("bond0: miimon = 250"));
    assert!(ok(&sock, &["set", "updelay", "500"]).contains("bond0: updelay = 500"));
    let s = status(&sock);
    assert_eq!((s.miimon, s.updelay), (250, 500));
    assert!(s.proc_text().contains("MII Polling Interval (ms): 250"));
    refused(
        &sock,
        &["set", "arp_interval", "200"],
        &["arp_interval = 200 needs at least one arp_ip_target"],
    );
    // With the carrier monitor on too, xbond asks for link_watch_policy
    // (the kernel calls the mix error-prone).
    refused(
        &sock,
        &["set", "arp_interval", "200", "arp_ip_target", "+10.88.0.2"],
        &[
            "miimon = 250 and arp_interval = 200 are both set",
            "link_watch_policy",
        ],
    );
    let failures: Vec<u32> = status(&sock)
        .slaves
        .iter()
        .map(|s| s.link_failure_count)
        .collect();
    // Together, as `ip link set bond0 type bond miimon 0 arp_interval 200
    // arp_ip_target ...` takes them: from carrier to the ARP monitor.
    ok(
        &sock,
        &[
            "set",
            "miimon",
            "0",
            "updelay",
            "0",
            "arp_interval",
            "1000",
            "arp_ip_target",
            "+10.88.0.2",
        ],
    );
    let s = status(&sock);
    assert_eq!(
        (s.arp_interval, s.arp_ip_target.len()),
        (1000, 1),
        "{}",
        s.proc_text()
    );
    // The ARP monitor, started at run time, takes no slave down while the
    // neighbour answers: across 6 s of pings (twice the time a backup may go
    // without proof, arp_interval x (arp_missed_max + 1)) no link failure
    // is counted. (An interval of a second: on a loaded 2-core machine the
    // switch's copy of a probe can take longer than a 200 ms interval allows.)
    t.lab.ping(&host, "10.88.0.2", 60).unwrap();
    let s = status(&sock);
    let now: Vec<u32> = s.slaves.iter().map(|s| s.link_failure_count).collect();
    assert_eq!(
        now,
        failures,
        "{}\n{}",
        s.proc_text(),
        std::fs::read_to_string(t.lab.dir().join("xa.log")).unwrap_or_default()
    );
    assert!(
        s.slaves.iter().all(|x| x.arp_up == Some(true)),
        "{}",
        s.proc_text()
    );
    ok(
        &sock,
        &[
            "set",
            "arp_interval",
            "0",
            "arp_ip_target",
            "-10.88.0.2",
            "miimon",
            "250",
        ],
    );
    refused(&sock, &["set", "miimon"], &["in pairs"]);
    assert!(status(&sock).arp_ip_target.is_empty());

    // Refusals name the key, the value and what is valid.
    refused(&sock, &["set", "miimon", "-5"], &["miimon", "-5"]);
    refused(
        &sock,
        &["set", "primary_reselect", "sometimes"],
        &["primary_reselect", "sometimes", "always"],
    );
    refused(
        &sock,
        &["set", "mode", "balance-rr"],
        &["mode cannot change while the bond has slaves"],
    );
    refused(&sock, &["set", "bogus", "1"], &["bogus"]);
    // A slave's priority, as `ip link set a1 type bond_slave prio 10`.
    ok(&sock, &["set", "prio", "a1=10"]);
    assert_eq!(status(&sock).slaves[1].prio, 10);
    refused(&sock, &["set", "prio", "a9=1"], &["prio", "a9"]);
    refused(
        &sock,
        &["set", "rebalance_interval", "5"],
        &["rebalance_interval", "5"],
    );
    refused(
        &sock,
        &["set", "arp_ip_target", "-10.1.1.1"],
        &["arp_ip_target", "10.1.1.1"],
    );
    refused(
        &sock,
        &["reboot"],
        &[
            "unknown request",
            "valid: status, active-slave IF, set OPTION VALUE",
        ],
    );

    // --save writes the option back, keeping the file's comments; --json
    // gives the daemon's answer.
    let (ok_, text) = ctl(&sock, &["--save", "--json", "set", "miimon", "300"]);
    assert!(ok_, "{text}");
    let answer: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(answer["changed"], serde_json::json!(["miimon"]), "{text}");
    let file = t.lab.dir().join("xa.toml");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.starts_with("# the uplink\n"), "{saved}");
    assert!(saved.contains("miimon = 300 # ms"), "{saved}");
    let cfg = xbond_core::config::BondConfig::from_toml_str(&saved).unwrap();
    assert_eq!(cfg.miimon, 300);
    let log = std::fs::read_to_string(t.lab.dir().join("xa.log")).unwrap();
    for line in [
        "bond0: active slave set to a1 (xbond ctl)",
        "bond0: miimon = 250 (xbond ctl)",
        "bond0: xbond ctl refused: the mode cannot change",
    ] {
        assert!(log.contains(line), "the log says {line:?}:\n{log}");
    }
}

#[test]
fn a_balance_mode_has_no_active_slave_to_set_and_takes_a_new_hash_policy() {
    let mut t = TwoLinks::new("cx");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-xor\"\nmiimon = 100\n",
        "10.89.0.1/24",
    );
    refused(
        &sock,
        &["active-slave", "a1"],
        &["mode balance-xor has no active slave"],
    );
    ok(&sock, &["set", "xmit_hash_policy", "layer3+4"]);
    let s = status(&sock);
    assert!(
        s.proc_text().contains("Transmit Hash Policy: layer3+4 (1)"),
        "{}",
        s.proc_text()
    );
    refused(
        &sock,
        &["set", "xmit_hash_policy", "layer9"],
        &["xmit_hash_policy", "layer9", "layer2"],
    );
}

#[test]
fn lacp_options_changed_live_reach_the_partner() {
    let mut t = TwoLinks::new("cl");
    let (host, far) = (t.host.clone(), t.far.clone());
    let cfg = |a: &str, b: &str| {
        format!("name = \"bond0\"\nslaves = [\"{a}\", \"{b}\"]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"fast\"\n")
    };
    let sa = t.start(&host, "xa", &cfg("a0", "a1"), "10.90.0.1/24");
    let sb = t.start(&far, "xb", &cfg("b0", "b1"), "10.90.0.2/24");
    wait_status(&sa, HANG, |s| s.mii_status);
    const TIMEOUT: u8 = 0x02;
    let partner = |s: &xbond_core::status::Status, i: usize| s.slaves[i].lacp.clone().unwrap();
    // lacp_rate slow: the partner sees the short-timeout bit cleared in our
    // actor state.
    ok(&sa, &["set", "lacp_rate", "slow"]);
    wait_status(&sb, HANG, |s| {
        (0..2).all(|i| partner(s, i).partner_state & TIMEOUT == 0)
    });
    // A new system priority reaches the partner, and the ports aggregate
    // again with it.
    ok(&sa, &["set", "ad_actor_sys_prio", "100"]);
    wait_status(&sb, HANG, |s| {
        s.mii_status && (0..2).all(|i| partner(s, i).partner_system_priority == 100)
    });
    wait_status(&sa, HANG, |s| s.mii_status);
    // A port's priority reaches the partner too.
    ok(&sa, &["set", "ad_actor_port_prio", "a0=100"]);
    wait_status(&sb, HANG, |s| partner(s, 0).partner_port_priority == 100);
    // min_links 2 with one link cut: no carrier; min_links 1: carrier.
    refused(
        &sa,
        &["set", "min_links", "3"],
        &["min_links", "valid: 0 to 2"],
    );
    ok(&sa, &["set", "min_links", "2"]);
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "down"])
        .unwrap();
    wait_status(&sa, HANG, |s| !s.mii_status);
    ok(&sa, &["set", "min_links", "1"]);
    wait_status(&sa, HANG, |s| s.mii_status);
    t.lab
        .exec(&far, &["ip", "link", "set", "b1", "up"])
        .unwrap();
    t.ping(&host, "10.90.0.2");
    refused(
        &sa,
        &["set", "ad_select", "count"],
        &["ad_select cannot change while the bond runs"],
    );
}

#[test]
fn a_member_of_the_control_group_reads_the_status_but_changes_nothing() {
    let mut t = TwoLinks::new("cg2");
    let host = t.host.clone();
    let group = format!("xbctg{}", std::process::id());
    assert!(std::process::Command::new("groupadd")
        .arg(&group)
        .status()
        .unwrap()
        .success());
    let gid = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == group).then(|| f[2].to_string())
        })
        .unwrap();
    let sock = t.start(
        &host,
        "xa",
        &format!("name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100\ncontrol_group = \"{group}\"\n"),
        "10.91.0.1/24",
    );
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            &format!("--regid={gid}"),
            &format!("--groups={gid}"),
        ])
        .arg(exe())
        .args(["ctl", "bond0", "--socket", &sock, "set", "miimon", "500"])
        .output()
        .unwrap();
    let _ = std::process::Command::new("groupdel").arg(&group).status();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("only root may change the bond"),
        "{text}"
    );
    assert_eq!(status(&sock).miimon, 100);
}

#[test]
fn slaves_are_enslaved_and_released_while_the_others_carry_on() {
    let mut t = TwoLinks::new("ce");
    let (host, far) = (t.host.clone(), t.far.clone());
    t.lab.veth(&host, "a2", &far, "b2").unwrap();
    t.lab
        .bridge(&far, &["b0", "b1", "b2"], "10.98.0.2/24")
        .unwrap();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nmiimon = 100\n",
        "10.98.0.1/24",
    );
    wait_status(&sock, HANG, |s| {
        s.active.as_deref() == Some("a0") && s.slaves.iter().all(|x| x.mii_status == "up")
    });
    let a1_mac = status(&sock).slaves[1].perm_hwaddr.to_string();
    let bond_mac = t.mac(&host, "bond0");
    refused(
        &sock,
        &["enslave", "a0"],
        &["enslave a0: already a slave of bond0"],
    );
    refused(
        &sock,
        &["enslave", "a7"],
        &["enslave a7: no such interface"],
    );
    t.lab
        .exec(&host, &["ip", "addr", "add", "10.98.0.9/24", "dev", "a2"])
        .unwrap();
    refused(
        &sock,
        &["enslave", "a2"],
        &["enslave a2: it has addresses (10.98.0.9)"],
    );
    t.lab
        .exec(&host, &["ip", "addr", "flush", "dev", "a2"])
        .unwrap();
    refused(
        &sock,
        &["release", "a9"],
        &["release a9: not a slave of bond0; slaves: a0, a1"],
    );

    // Enslaved: a2 comes up with the bond's MAC and its XDP program; a0 stays
    // active throughout.
    ok(&sock, &["enslave", "a2"]);
    let s = wait_status(&sock, HANG, |s| {
        s.slaves.len() == 3 && s.slaves[2].mii_status == "up"
    });
    assert_eq!(s.active.as_deref(), Some("a0"), "{}", s.proc_text());
    assert_eq!(s.slaves[0].link_failure_count, 0);
    assert_eq!(t.mac(&host, "a2"), bond_mac);
    let xdp = |i: &str| {
        t.lab
            .exec(&host, &["ip", "-d", "link", "show", i])
            .unwrap()
            .contains("prog/xdp")
    };
    assert!(xdp("a2"));
    t.ping(&host, "10.98.0.2");

    // Released: a1 gets its own MAC back and loses its program; the bond
    // goes on.
    assert!(ok(&sock, &["release", "a1"]).contains("slaves"));
    let s = status(&sock);
    let names: Vec<&str> = s.slaves.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["a0", "a2"]);
    assert_eq!(s.active.as_deref(), Some("a0"));
    assert_eq!(t.mac(&host, "a1"), a1_mac);
    assert!(!xdp("a1"));
    t.ping(&host, "10.98.0.2");

    // The active slave released: the other takes over.
    ok(&sock, &["release", "a0"]);
    let s = wait_status(&sock, HANG, |s| s.active.as_deref() == Some("a2"));
    assert_eq!(s.slaves.len(), 1);
    t.ping(&host, "10.98.0.2");
    refused(
        &sock,
        &["release", "a2"],
        &["release a2: it is bond0's last slave"],
    );

    // --save writes the slaves to the config file.
    let (ok_, text) = ctl(&sock, &["--save", "enslave", "a1"]);
    assert!(ok_, "{text}");
    let saved = std::fs::read_to_string(t.lab.dir().join("xa.toml")).unwrap();
    let cfg = xbond_core::config::BondConfig::from_toml_str(&saved).unwrap();
    assert_eq!(cfg.slaves, ["a2", "a1"]);
    let log = std::fs::read_to_string(t.lab.dir().join("xa.log")).unwrap();
    for line in [
        "bond0: (slave a2): Enslaving as a backup interface (xbond ctl)",
        "bond0: (slave a1): Releasing backup interface (xbond ctl)",
        "bond0: (slave a0): Releasing active interface (xbond ctl)",
    ] {
        assert!(log.contains(line), "{line}:\n{log}");
    }
}

#[test]
fn in_802_3ad_the_other_ports_stay_aggregated_across_an_enslave_and_a_release() {
    let mut t = TwoLinks::new("cq");
    let (host, far) = (t.host.clone(), t.far.clone());
    t.lab.veth(&host, "a2", &far, "b2").unwrap();
    let cfg = |s: &[&str]| {
        let list: Vec<String> = s.iter().map(|x| format!("\"{x}\"")).collect();
        format!("name = \"bond0\"\nslaves = [{}]\nmode = \"802.3ad\"\nmiimon = 100\nlacp_rate = \"fast\"\n", list.join(", "))
    };
    let sa = t.start(&host, "xa", &cfg(&["a0", "a1"]), "10.99.0.1/24");
    let sb = t.start(&far, "xb", &cfg(&["b0", "b1", "b2"]), "10.99.0.2/24");
    let distributing = |s: &xbond_core::status::Status, n: &str| {
        s.slaves.iter().any(|x| {
            x.name == n
                && x.lacp
                    .as_ref()
                    .is_some_and(|p| p.actor_state & 0x30 == 0x30)
        })
    };
    wait_status(&sa, HANG, |s| {
        distributing(s, "a0") && distributing(s, "a1")
    });
    let before = status(&sb);
    let churn = |s: &xbond_core::status::Status, n: &str| {
        let p = s
            .slaves
            .iter()
            .find(|x| x.name == n)
            .unwrap()
            .lacp
            .clone()
            .unwrap();
        (p.actor_churned, p.partner_churned, p.partner_port)
    };
    ok(&sa, &["enslave", "a2"]);
    wait_status(&sa, HANG, |s| {
        ["a0", "a1", "a2"].iter().all(|n| distributing(s, n))
    });
    ok(&sa, &["release", "a1"]);
    let s = wait_status(&sb, HANG, |s| {
        !distributing(s, "b1") && distributing(s, "b0") && distributing(s, "b2")
    });
    // b0's partner (a0) never changed: same port number, no churn.
    assert_eq!(churn(&s, "b0"), churn(&before, "b0"), "{}", s.proc_text());
    let a = status(&sa);
    assert_eq!(a.slaves[0].link_failure_count, 0);
    assert!(a.mii_status);
    t.ping(&host, "10.99.0.2");
}
