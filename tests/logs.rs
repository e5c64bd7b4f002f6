//! Log lines in the kernel bond's words, each prefixed with the bond and the
//! slave, one plain line each when stderr is not a terminal (here a file, as
//! under journald): the downdelay and updelay steps, the commits, the new
//! active slave, the bond without carrier, and 802.3ad with no partner.

mod common;

use std::time::Duration;

use common::{exe, wait_status, TwoLinks};

/// Waits until xbond `name`'s log holds `line`, then returns the log.
fn wait_log(t: &TwoLinks, name: &str, line: &str) -> String {
    let path = t.lab.dir().join(format!("{name}.log"));
    let found = xbond::lab::wait_for(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.contains(line).then_some(text)
    });
    found.unwrap_or_else(|| {
        panic!(
            "no {line:?} in the log:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        )
    })
}

/// The lines of `log` that hold one of `wanted`, in order, each once.
fn in_order(log: &str, wanted: &[&str]) {
    let mut at = 0;
    for w in wanted {
        match log[at..].find(w) {
            Some(i) => at += i + w.len(),
            None => panic!("{w:?} not after the lines before it in:\n{log}"),
        }
    }
}

fn start(t: &mut TwoLinks, config: &str) -> String {
    let host = t.host.clone();
    t.lab
        .start_xbond(exe(), &host, "xa", config)
        .expect("xbond starts")
}

#[test]
fn a_failover_and_the_return_are_logged_as_the_kernel_logs_them() {
    let mut t = TwoLinks::new("lg");
    t.far_bridge("10.88.0.2/24");
    let sock = start(
        &mut t,
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\n\
         miimon = 100\ndowndelay = 200\nupdelay = 200\n",
    );
    wait_status(&sock, Duration::from_secs(10), |s| {
        s.active.as_deref() == Some("a0")
    });
    let far = t.far.clone();
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(10), |s| {
        s.active.as_deref() == Some("a1")
    });
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    wait_status(&sock, Duration::from_secs(10), |s| {
        s.active.as_deref() == Some("a0")
    });
    let log = wait_log(
        &t,
        "xa",
        "bond0: (slave a0): making interface the new active one\n",
    );
    in_order(
        &log,
        &[
            "bond0: (slave a0): making interface the new active one\n",
            "bond0: (slave a0): link status down for active interface, disabling it in 200 ms\n",
            "bond0: (slave a0): link status definitely down, disabling slave\n",
            "bond0: (slave a1): making interface the new active one\n",
            "bond0: (slave a0): link status up, enabling it in 200 ms\n",
            "bond0: (slave a0): link status definitely up, 10000 Mbps full duplex\n",
            "bond0: (slave a0): making interface the new active one\n",
        ],
    );
    assert!(!log.contains('\u{1b}'), "plain text, no colours:\n{log}");

    // Both links gone: the bond runs without an active slave, and says so.
    for b in ["b0", "b1"] {
        t.lab.exec(&far, &["ip", "link", "set", b, "down"]).unwrap();
    }
    wait_log(
        &t,
        "xa",
        "bond0: now running without any active interface!\n",
    );
}

#[test]
fn carrier_back_within_downdelay_is_logged_and_the_link_never_fails() {
    let mut t = TwoLinks::new("lu");
    t.far_bridge("10.89.0.2/24");
    // A downdelay far longer than the test takes to bring b0 back.
    let sock = start(
        &mut t,
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\nprimary = \"a0\"\n\
         miimon = 100\ndowndelay = 60000\n",
    );
    let far = t.far.clone();
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_log(
        &t,
        "xa",
        "bond0: (slave a0): link status down for active interface, disabling it in 60000 ms\n",
    );
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "up"])
        .unwrap();
    let log = wait_log(&t, "xa", "bond0: (slave a0): link status up again after ");
    assert!(!log.contains("definitely down"), "{log}");
    let s = common::status(&sock);
    assert_eq!(s.active.as_deref(), Some("a0"));
    assert_eq!(s.slaves[0].link_failure_count, 0, "{}", s.proc_text());
}

#[test]
fn lacp_without_a_partner_warns_as_the_kernel() {
    let mut t = TwoLinks::new("ln");
    // A switch without LACP: the bridge never answers a LACPDU.
    t.far_bridge("10.90.0.2/24");
    start(
        &mut t,
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"802.3ad\"\nlacp_rate = \"fast\"\nmiimon = 100\n",
    );
    wait_log(
        &t,
        "xa",
        "bond0: Warning: No 802.3ad response from the link partner for any adapters in the bond\n",
    );
}
