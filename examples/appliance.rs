//! An L2 appliance that bonds two NICs and handles the frames in its own
//! code: the bond's host side is an in-process channel, and this program
//! answers ARP and ICMP echo (ping) for one IPv4 address, over whatever
//! slave the bond's mode picks. Everything else is counted and dropped.
//!
//! ```text
//! appliance SLAVE1 SLAVE2 ADDRESS [MODE]     (as root; MODE: active-backup)
//! ```
//!
//! It runs until SIGINT/SIGTERM, printing the bond's events as they come,
//! then prints what it answered.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xbond::runtime::{Runtime, RuntimeOptions, Upper};
use xbond_core::config::BondConfig;
use xbond_core::options::MacAddr;
use xbond_core::wire::{ArpInfo, EthInfo, ARPOP_REPLY, ARPOP_REQUEST, ETH_P_IP};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [s1, s2, addr, rest @ ..] = args.as_slice() else {
        bail!("usage: appliance SLAVE1 SLAVE2 ADDRESS [MODE]");
    };
    let ip: Ipv4Addr = addr.parse().with_context(|| format!("address {addr:?}"))?;
    let mode = rest.first().map_or("active-backup", String::as_str);
    // The run state (the active slave across restarts) is kept beside the
    // control socket's path; this program serves no socket and keeps no state.
    let state = std::env::temp_dir().join(format!("xbond-appliance-{}", std::process::id()));
    let cfg = BondConfig::from_toml_str(&format!(
        "name = \"app0\"\nslaves = [\"{s1}\", \"{s2}\"]\nmode = \"{mode}\"\nmiimon = 100\n\
         control_socket = \"{}.sock\"\n",
        state.display()
    ))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let opts = RuntimeOptions {
        upper: Upper::Channel,
        control_socket: false,
        systemd: false,
        ..RuntimeOptions::default()
    };
    let rt = Runtime::start(cfg, opts)?;
    let mac = rt.status()?.hwaddr;
    println!("appliance: {ip} at {mac} over {s1} and {s2} ({mode})");
    let frames = rt.upper_channel().context("an in-process upper port")?;
    let (mut arp, mut echo, mut other) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && !rt.is_finished() {
        while let Some(ev) = rt.events().try_next() {
            println!("event: {ev}");
        }
        let Some(frame) = frames.recv(Duration::from_millis(100)) else {
            continue;
        };
        let reply = answer_arp(&frame, mac, ip)
            .inspect(|_| arp += 1)
            .or_else(|| answer_echo(&frame, mac, ip).inspect(|_| echo += 1));
        match reply {
            Some(r) => {
                if let Err(e) = frames.send(r) {
                    eprintln!("appliance: reply dropped: {e}");
                }
            }
            None => {
                other += 1;
                if std::env::var_os("APPLIANCE_DEBUG").is_some() {
                    println!(
                        "appliance: not for me: {:02x?}",
                        &frame[..frame.len().min(42)]
                    );
                }
            }
        }
    }
    println!("appliance: answered {arp} ARP requests and {echo} pings; {other} other frames");
    let r = rt.stop();
    let _ = std::fs::remove_file(state.with_extension("state"));
    r
}

/// An ARP reply, when `frame` asks who has `ip`.
fn answer_arp(frame: &[u8], mac: MacAddr, ip: Ipv4Addr) -> Option<Vec<u8>> {
    let a = ArpInfo::parse(frame)?;
    if a.op != ARPOP_REQUEST || a.tpa != ip {
        return None;
    }
    Some(
        ArpInfo {
            eth_dst: a.sha,
            eth_src: mac,
            vlan: a.vlan,
            op: ARPOP_REPLY,
            sha: mac,
            spa: ip,
            tha: a.sha,
            tpa: a.spa,
        }
        .emit(),
    )
}

/// An ICMP echo reply, when `frame` is an echo request to `ip`.
fn answer_echo(frame: &[u8], mac: MacAddr, ip: Ipv4Addr) -> Option<Vec<u8>> {
    let eth = EthInfo::parse(frame)?;
    let l3 = eth.l3_offset;
    let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
    let (icmp, dst) = (l3 + ihl, frame.get(l3 + 16..l3 + 20)?);
    if eth.ethertype != ETH_P_IP || frame.get(l3 + 9) != Some(&1) || dst != ip.octets() {
        return None;
    }
    if *frame.get(icmp)? != 8 {
        return None;
    }
    let mut r = frame.to_vec();
    r[0..6].copy_from_slice(&eth.src);
    r[6..12].copy_from_slice(&mac.0);
    // Swap the addresses (the header checksum stays the same).
    let (src, dst) = (
        frame[l3 + 12..l3 + 16].to_vec(),
        frame[l3 + 16..l3 + 20].to_vec(),
    );
    r[l3 + 12..l3 + 16].copy_from_slice(&dst);
    r[l3 + 16..l3 + 20].copy_from_slice(&src);
    // Type 8 -> 0: the checksum grows by 0x0800 (RFC 1624, one's complement).
    r[icmp] = 0;
    let sum = u32::from(u16::from_be_bytes([r[icmp + 2], r[icmp + 3]])) + 0x0800;
    let sum = ((sum & 0xffff) + (sum >> 16)) as u16;
    r[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    Some(r)
}
