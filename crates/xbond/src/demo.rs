//! `xbond demo`: a guided run on virtual links that a newcomer can watch.
//!
//! Two network namespaces: "host" runs an active-backup xbond over two veth
//! slaves; "switch" holds the far ends in a Linux bridge with an address (the
//! switch and a neighbour in one). The demo pings across the bond, prints the
//! status, streams frames, takes the active link's far end down mid-stream,
//! reports the frames and milliseconds lost, brings the link back (the primary
//! returns), and removes everything. The topology and the measurement are
//! those of `xbond failover-test`.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::control::query_status;
use crate::failover::{Detection, FailoverLab, HOST_ADDR, NEIGHBOUR};
use crate::lab::wait_for;

const RATE: u64 = 20_000;
const COUNT: u64 = 40_000;

fn step(n: u32, text: &str) {
    println!("\n=== {n}. {text}");
}

/// Runs the demo with the xbond binary at `exe`.
pub fn run(exe: &Path) -> Result<()> {
    step(
        1,
        "Building two namespaces joined by two veth links, and starting xbond",
    );
    let mut fl = FailoverLab::new(exe, Detection::Carrier)?;
    let (host, sw, sock) = (fl.host.clone(), fl.sw.clone(), fl.sock.clone());
    println!("  {host}: eth0, eth1 (the bond's slaves), bond0 with {HOST_ADDR}");
    println!("  {sw}: sw-p0, sw-p1 in bridge br0 with {NEIGHBOUR}/24 (switch + neighbour)");
    println!("  xbond's configuration (control socket {sock}):");
    for l in FailoverLab::config(Detection::Carrier).lines() {
        println!("  | {l}");
    }

    step(2, "Ping across the bond");
    let ping = fl.lab.ping(&host, NEIGHBOUR, 3)?;
    for l in ping
        .lines()
        .filter(|l| l.contains("bytes from") || l.contains("loss"))
    {
        println!("  {l}");
    }

    step(3, "xbond status bond0 (the /proc/net/bonding/bond0 format)");
    print_status(&sock)?;

    step(
        4,
        &format!(
            "Failover: {COUNT} frames at {RATE} frames/s; sw-p0 goes down 0.5 s into the stream"
        ),
    );
    let r = fl.run(Detection::Carrier, RATE, COUNT, Duration::from_millis(500))?;
    println!("  sw-p0 went down: eth0 lost carrier");
    println!("  frames the bond sent on eth0 / eth1: {:?}", r.per_link);
    println!(
        "  frames lost in the failover: {} = {:.2} ms of traffic at {RATE} frames/s",
        r.failover_lost, r.lost_ms
    );
    println!("  (a kernel bond with miimon=100 loses up to 100 ms plus downdelay)");

    step(5, "Status after the failover");
    print_status(&sock)?;

    step(
        6,
        "sw-p0 comes back; primary_reselect always returns eth0 to active",
    );
    fl.lab.exec(&sw, &["ip", "link", "set", "sw-p0", "up"])?;
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

    step(7, "Stopping xbond (SIGTERM) and removing the namespaces");
    let clean = fl.lab.stop("xbond")?;
    println!(
        "  xbond exited {}",
        if clean { "cleanly" } else { "with an error" }
    );
    drop(fl);
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
