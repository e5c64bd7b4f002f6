//! `xbond demo`: a guided run on virtual links that a newcomer can watch.
//!
//! Two network namespaces: "host" runs an active-backup xbond over two veth
//! slaves; "switch" holds the far ends in a Linux bridge with an address (the
//! switch and a neighbour in one). The demo pings across the bond, prints the
//! status, streams frames, takes the active link's far end down mid-stream,
//! reports the frames and milliseconds lost, brings the link back (the primary
//! returns), and removes everything.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::control::query_status;
use crate::lab::{wait_for, Lab};
use crate::pktgen::SinkReport;

const RATE: u64 = 20_000;
const COUNT: u64 = 40_000;

fn step(n: u32, text: &str) {
    println!("\n=== {n}. {text}");
}

/// Runs the demo with the xbond binary at `exe`.
pub fn run(exe: &Path) -> Result<()> {
    let mut lab = Lab::new("dm")?;
    let exe_s = exe.display().to_string();
    step(1, "Building two namespaces joined by two veth links");
    let host = lab.netns("host")?;
    let sw = lab.netns("switch")?;
    lab.veth(&host, "eth0", &sw, "sw-p0")?;
    lab.veth(&host, "eth1", &sw, "sw-p1")?;
    lab.exec(&sw, &["ip", "link", "add", "br0", "type", "bridge"])?;
    for p in ["sw-p0", "sw-p1"] {
        lab.exec(&sw, &["ip", "link", "set", p, "master", "br0"])?;
    }
    lab.exec(&sw, &["ip", "link", "set", "br0", "up"])?;
    lab.exec(&sw, &["ip", "addr", "add", "10.77.0.2/24", "dev", "br0"])?;
    println!("  {host}: eth0, eth1 (the bond's slaves)");
    println!("  {sw}: sw-p0, sw-p1 in bridge br0 with 10.77.0.2/24 (switch + neighbour)");

    step(2, "Starting xbond: active-backup, primary eth0, miimon 100");
    let config = r#"name = "bond0"
slaves = ["eth0", "eth1"]
mode = "active-backup"
miimon = 100
primary = "eth0"
num_grat_arp = 1
"#;
    println!(
        "{}",
        config
            .lines()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let sock = lab.start_xbond(exe, &host, "xbond", config)?;
    lab.exec(
        &host,
        &["ip", "addr", "add", "10.77.0.1/24", "dev", "bond0"],
    )?;
    println!("  bond0 is up with 10.77.0.1/24; control socket {sock}");

    step(3, "Ping across the bond");
    // The first ping may be spent on ARP.
    let _ = lab.exec(&host, &["ping", "-c", "1", "-W", "2", "10.77.0.2"]);
    let ping = lab.exec(
        &host,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"],
    )?;
    for l in ping
        .lines()
        .filter(|l| l.contains("bytes from") || l.contains("loss"))
    {
        println!("  {l}");
    }

    step(4, "xbond status bond0 (the /proc/net/bonding/bond0 format)");
    print_status(&sock)?;

    step(
        5,
        &format!("Failover: {COUNT} frames at {RATE} frames/s; sw-p0 goes down after 0.5 s"),
    );
    let br_mac = lab
        .exec(&sw, &["cat", "/sys/class/net/br0/address"])?
        .trim()
        .to_string();
    let sink_args = [
        exe_s.as_str(),
        "pktgen",
        "sink",
        "--iface",
        "sw-p0",
        "--iface",
        "sw-p1",
        "--stream",
        "1",
        "--duration",
        "8",
        "--idle-ms",
        "600",
        "--expect",
        "40000",
    ];
    lab.spawn(&sw, "sink", &sink_args)?;
    std::thread::sleep(Duration::from_millis(300));
    let count = COUNT.to_string();
    let rate = RATE.to_string();
    let send_args = [
        exe_s.as_str(),
        "pktgen",
        "send",
        "--iface",
        "bond0",
        "--dst-mac",
        br_mac.as_str(),
        "--src-ip",
        "10.77.0.1",
        "--dst-ip",
        "10.77.0.2",
        "--count",
        count.as_str(),
        "--rate",
        rate.as_str(),
        "--stream",
        "1",
    ];
    lab.spawn(&host, "sender", &send_args)?;
    std::thread::sleep(Duration::from_millis(500));
    lab.exec(&sw, &["ip", "link", "set", "sw-p0", "down"])?;
    println!("  sw-p0 is down: eth0 lost carrier");
    lab.wait("sender", Duration::from_secs(20))?;
    let out = lab.wait("sink", Duration::from_secs(20))?;
    let r: SinkReport =
        serde_json::from_str(out.trim()).with_context(|| format!("sink output: {out}"))?;
    let ms = r.lost as f64 * 1000.0 / RATE as f64;
    println!(
        "  received {} of {} frames: {} via sw-p0, {} via sw-p1",
        r.unique,
        r.expected,
        r.per_iface.get("sw-p0").unwrap_or(&0),
        r.per_iface.get("sw-p1").unwrap_or(&0)
    );
    println!(
        "  frames lost in the failover: {} = {:.2} ms of traffic at {RATE} frames/s",
        r.lost, ms
    );
    println!("  (a kernel bond with miimon=100 loses up to 100 ms plus downdelay)");

    step(6, "Status after the failover");
    print_status(&sock)?;

    step(
        7,
        "sw-p0 comes back; primary_reselect always returns eth0 to active",
    );
    lab.exec(&sw, &["ip", "link", "set", "sw-p0", "up"])?;
    let back = wait_for(Duration::from_secs(5), || {
        query_status(&sock)
            .ok()
            .filter(|s| s.active.as_deref() == Some("eth0"))
    });
    match back {
        Some(s) => println!(
            "  Currently Active Slave: {}; eth0 Link Failure Count: {}",
            s.active.unwrap_or_default(),
            s.slaves[0].link_failure_count
        ),
        None => println!("  eth0 did not become active again within 5 s"),
    }

    step(8, "Stopping xbond (SIGTERM) and removing the namespaces");
    let clean = lab.stop("xbond")?;
    println!(
        "  xbond exited {}",
        if clean { "cleanly" } else { "with an error" }
    );
    drop(lab);
    println!("  done: nothing is left behind");
    Ok(())
}

fn print_status(sock: &str) -> Result<()> {
    let s = query_status(sock)?;
    for l in s.proc_text().lines() {
        println!("  {l}");
    }
    Ok(())
}
