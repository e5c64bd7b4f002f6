//! The embedding examples on veth (built by `cargo test`, which builds the
//! examples first): `examples/appliance.rs` bonds two links with the bond's
//! host side in its own code (an in-process channel) and answers ping;
//! `examples/events.rs --upper` joins a bond to an existing interface (an L2
//! appliance). The far side pings across a failover, and the event stream
//! says what happened, in order.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TwoLinks;
use xbond::lab::wait_for;

/// The example binary, built by `cargo test` beside the test binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let p = dir.join("examples").join(name);
    assert!(p.exists(), "{} is built by cargo test", p.display());
    p
}

fn wait_log(log: &std::path::Path, what: &str) -> String {
    wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.contains(what).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what:?} not in the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

#[test]
fn an_appliance_with_an_in_process_upper_answers_ping_across_a_failover() {
    let mut t = TwoLinks::new("em");
    t.far_bridge("10.66.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    let app = example("appliance").display().to_string();
    let log = t
        .lab
        .spawn(&host, "app", &[&app, "a0", "a1", "10.66.0.1"])
        .expect("appliance starts");
    wait_log(&log, "appliance: 10.66.0.1 at");
    wait_log(&log, "event: active slave none -> a0");

    let ping = t.ping(&far, "10.66.0.1");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{}", text());

    // Pull a0's cable: the appliance's bond moves to a1 and still answers.
    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_log(&log, "event: active slave a0 -> a1");
    let ping = t.ping(&far, "10.66.0.1");
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{}", text());

    assert!(t.lab.stop("app").expect("appliance running"), "clean exit");
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("event: active") || l.starts_with("event: link a0"))
        .collect();
    assert_eq!(
        order,
        [
            "event: link a0 up",
            "event: active slave none -> a0",
            "event: link a0 down",
            "event: active slave a0 -> a1",
        ],
        "{text}"
    );
    let answered = text
        .lines()
        .find_map(|l| l.strip_prefix("appliance: answered "))
        .expect("a summary");
    let pings: u64 = answered
        .split(" and ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a ping count");
    assert!(pings >= 10, "both pings answered: {answered}");
}

#[test]
fn an_existing_interface_as_the_upper_port_bridges_a_lan_to_the_bond() {
    let mut t = TwoLinks::new("l2");
    t.far_bridge("10.67.0.2/24");
    let (host, far) = (t.host.clone(), t.far.clone());
    let lan = t.lab.netns("lan").expect("netns lan");
    t.lab.veth(&host, "u0", &lan, "u1").expect("veth u0-u1");
    t.lab
        .exec(&lan, &["ip", "addr", "add", "10.67.0.1/24", "dev", "u1"])
        .unwrap();
    t.lab
        .exec(&lan, &["ip", "link", "set", "u1", "up"])
        .unwrap();
    let cfg = t.lab.dir().join("l2app.toml");
    let sock = t.lab.dir().join("l2app.sock");
    std::fs::write(
        &cfg,
        format!(
            "name = \"l2app\"\nslaves = [\"a0\", \"a1\"]\nmode = \"active-backup\"\n\
             miimon = 100\nprimary = \"a0\"\ncontrol_socket = \"{}\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let events = example("events").display().to_string();
    let cfg = cfg.display().to_string();
    let log = t
        .lab
        .spawn(&host, "l2app", &[&events, &cfg, "--upper", "u0"])
        .expect("events starts");
    wait_log(&log, "l2app: active slave none -> a0");
    let ping = t.lab.ping(&lan, "10.67.0.2", 5).expect("ping runs");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{}", text());
    let s = xbond::control::query_status(&sock.display().to_string()).expect("status");
    assert!(
        s.slaves[0].runtime.tx_frames >= 5,
        "{:?}",
        s.slaves[0].runtime
    );
    assert_eq!(s.slaves[1].runtime.tx_frames, 0, "the backup sends nothing");

    t.lab
        .exec(&far, &["ip", "link", "set", "b0", "down"])
        .unwrap();
    wait_log(&log, "l2app: active slave a0 -> a1");
    let ping = t.lab.ping(&lan, "10.67.0.2", 5).expect("ping runs");
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{}", text());
    assert!(t.lab.stop("l2app").expect("running"), "clean exit");
    // The upper interface is the operator's: it stays as it was.
    let links = t
        .lab
        .exec(&host, &["ip", "-o", "link", "show", "u0"])
        .unwrap();
    assert!(links.contains("u0"), "{links}");
}

#[test]
fn an_in_process_upper_serves_every_queue_of_multi_queue_slaves() {
    common::require_root();
    let mut lab = xbond::lab::Lab::new("eq").expect("lab");
    let host = lab.netns("host").expect("netns host");
    let far = lab.netns("far").expect("netns far");
    lab.veth_queues(&host, "a0", &far, "b0", 4)
        .expect("veth a0-b0");
    lab.veth_queues(&host, "a1", &far, "b1", 4)
        .expect("veth a1-b1");
    let t = TwoLinks { lab, host, far };
    t.far_bridge("10.69.0.2/24");
    let mut t = t;
    let app = example("appliance").display().to_string();
    let log = t
        .lab
        .spawn(&t.host.clone(), "app", &[&app, "a0", "a1", "10.69.0.1"])
        .expect("appliance starts");
    wait_log(&log, "event: active slave none -> a0");
    let ping = t.ping(&t.far.clone(), "10.69.0.1");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ping.contains(" 0% packet loss"), "{ping}\n{text}");
    assert!(t.lab.stop("app").expect("appliance running"), "clean exit");
}
