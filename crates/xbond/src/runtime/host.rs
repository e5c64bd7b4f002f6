//! What the runtime changes on the host, and puts back: the upper port
//! (the veth pair adopted or created), the slaves checked and how many of
//! their queues are served, their MACs, their VLAN offloads (and the upper
//! interface's), their own IPv6; and the small netlink steps the control
//! loop takes.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tracing::{info, warn};
use xbond_core::bond::{Bond, SlaveSpec};
use xbond_core::config::{BondConfig, Queues, MAX_QUEUES};
use xbond_core::options::MacAddr;
use xbond_xdp::netlink::{speed_duplex, CarrierReader, Link, Netlink};

use super::uppers;
use crate::runstate::{self, RunState};
use crate::{offload, upper};

/// What the daemon changed on the host, undone on exit (also on error).
pub(super) struct HostGuard {
    pub(super) nl: Netlink,
    /// The upper port: (host side, data-plane side).
    pub(super) upper: Option<(String, String)>,
    /// The upper port was created by this run and the bond never ran: an
    /// error during set-up removes it again, leaving nothing half-made.
    pub(super) created_now: bool,
    pub(super) restore_macs: Vec<(String, MacAddr)>,
    /// Offloads turned off on slaves, turned back on at exit.
    pub(super) restore_offloads: Vec<(String, Vec<(String, bool)>)>,
    /// Slaves whose IPv6 was turned off, turned back on at exit.
    pub(super) restore_ipv6: Vec<String>,
    /// Slaves whose MTU to give back, with the MTU.
    pub(super) restore_mtu: Vec<(String, u32)>,
}

impl HostGuard {
    /// Gives a released slave back what xbond changed on it (MAC, offloads,
    /// IPv6, MTU), now rather than at exit.
    pub(super) fn give_back(&mut self, name: &str) {
        let one = HostGuard {
            nl: match Netlink::open() {
                Ok(nl) => nl,
                Err(e) => {
                    warn!("giving {name} back its settings: {e}");
                    return;
                }
            },
            upper: None,
            created_now: false,
            restore_macs: take(&mut self.restore_macs, |(n, _)| n == name),
            restore_offloads: take(&mut self.restore_offloads, |(n, _)| n == name),
            restore_ipv6: take(&mut self.restore_ipv6, |n| n == name),
            restore_mtu: take(&mut self.restore_mtu, |(n, _)| n == name),
        };
        // Dropping it restores them.
        drop(one);
    }
}

/// Removes and returns the entries of `v` that `pick` chooses.
fn take<T>(v: &mut Vec<T>, pick: impl Fn(&T) -> bool) -> Vec<T> {
    let (out, keep): (Vec<T>, Vec<T>) = std::mem::take(v).into_iter().partition(|x| pick(x));
    *v = keep;
    out
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for (name, mac) in self.restore_macs.drain(..) {
            if let Err(e) = self.nl.set_mac(&name, mac) {
                warn!("could not restore the MAC of {name}: {e}");
            }
        }
        for (name, features) in self.restore_offloads.drain(..) {
            offload::set(&name, &features);
        }
        for name in self.restore_ipv6.drain(..) {
            if let Err(e) = set_ipv6_disabled(&name, false) {
                warn!("could not turn IPv6 back on on {name}: {e}");
            }
        }
        for (name, mtu) in self.restore_mtu.drain(..) {
            let now = self.nl.link(&name).map(|l| l.mtu);
            if now.is_ok_and(|m| m != mtu) {
                if let Err(e) = self.nl.set_mtu(&name, mtu) {
                    warn!("could not give {name} its MTU {mtu} back: {e}");
                }
            }
        }
        let Some((host, data)) = self.upper.take() else {
            return;
        };
        if self.created_now {
            match self.nl.delete(&host) {
                Ok(()) => info!("{host}: removed the upper port made by this failed start"),
                Err(e) => warn!("could not remove {host}: {e}"),
            }
            return;
        }
        // bond0 stays, with everything the host put on it; without a data
        // plane behind it, it has no carrier.
        match self.nl.set_up(&data, false) {
            Ok(()) => info!("{host}: carrier down ({data} down); {host} is kept, `xbond down {host}` removes it"),
            Err(e) => warn!("could not set {data} down: {e}"),
        }
    }
}

/// A slave and the MAC to give back to it at exit.
pub(super) type SlaveMac = (String, MacAddr);

/// The slaves as checked: what the core needs of each, the MAC to give back
/// at exit, and how many queues of each are served.
pub(super) struct Slaves {
    pub(super) specs: Vec<SlaveSpec>,
    pub(super) restore_macs: Vec<SlaveMac>,
    pub(super) queues: u32,
}

/// An interface's active RX and TX queues (sysfs `queues/rx-N`, `tx-N`;
/// netlink's counts where sysfs has none).
pub(super) fn active_queues(name: &str, link: &Link) -> (u32, u32) {
    let count = |prefix: &str| -> Option<u32> {
        let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
        let n = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count();
        u32::try_from(n).ok().filter(|n| *n > 0)
    };
    (
        count("rx-").unwrap_or(link.rx_queues),
        count("tx-").unwrap_or(link.tx_queues),
    )
}

/// What changed in the slaves' queue counts since the start (`ethtool -L`
/// while xbond runs), one line per slave whose RX queues are no longer the
/// `served` ones: more means frames that RSS puts on the new queues have no
/// socket and are dropped (counted as no-socket); fewer means some sockets
/// wait on queues that are gone. Either way the bond goes on over what
/// works; a restart serves the new count.
pub(super) fn queue_notes(nl: &mut Netlink, cfg: &BondConfig, served: u32) -> Vec<String> {
    let mut notes = Vec::new();
    for name in &cfg.slaves {
        let Ok(link) = nl.link(name) else { continue };
        let (rx, _) = active_queues(name, &link);
        if rx > served {
            notes.push(format!(
                "slave {name} now has {rx} RX queues but xbond serves {served}: frames on \
                 queues {served} to {} are dropped (no-socket); restart xbond to serve them, \
                 or ethtool -L {name} combined {served}",
                rx - 1
            ));
        } else if rx < served {
            notes.push(format!(
                "slave {name} now has {rx} RX queues, fewer than the {served} xbond serves: \
                 queues {rx} to {} carry nothing; restart xbond to serve {rx}, \
                 or ethtool -L {name} combined {served}",
                served - 1
            ));
        }
    }
    notes
}

/// How many queues of each slave are served: with `queues = "auto"` every
/// RX queue (the slaves must have the same number); with a count, exactly
/// that many, and a slave with more RX queues is refused, since RSS would
/// put frames on queues without a socket. Every slave needs a TX queue per
/// served queue too.
pub(super) fn resolve_queues(cfg: &BondConfig, counts: &[(String, u32, u32)]) -> Result<u32> {
    let n = match cfg.queues {
        Queues::Count(n) => n,
        Queues::Auto => {
            let n = counts.iter().map(|c| c.1).max().unwrap_or(1);
            if let Some((name, rx, _)) = counts.iter().find(|c| c.1 != n) {
                bail!(
                    "queues = \"auto\" serves every RX queue of every slave, but the slaves \
                     differ: {name} has {rx} and another has {n} ({}); make them equal \
                     (ethtool -L {name} combined {n}) or set queues",
                    counts
                        .iter()
                        .map(|c| format!("{} {}", c.0, c.1))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            n
        }
    };
    if n > MAX_QUEUES {
        bail!("the slaves have {n} RX queues, more than xbond serves ({MAX_QUEUES}); lower them (ethtool -L)");
    }
    for (name, rx, tx) in counts {
        if *rx > n {
            bail!(
                "slave {name} has {rx} RX queues but queues = {n}: frames that RSS puts on \
                 queues {n} to {} would have no socket and be dropped; set queues = \"auto\" \
                 (or {rx}), or lower the NIC's queues (ethtool -L {name} combined {n})",
                rx - 1
            );
        }
        if *rx < n || *tx < n {
            bail!(
                "slave {name} has {rx} RX / {tx} TX queues, but queues = {n} needs {n} of each \
                 (ethtool -L {name} combined {n})"
            );
        }
    }
    Ok(n)
}

/// Checks that every slave exists, is free and has the queues to serve;
/// returns what the core needs to know of each, and the MAC to give back at
/// exit (the one recorded before the first start, else the permanent one
/// where the driver reports it, else the current).
pub(super) fn check_slaves(nl: &mut Netlink, cfg: &BondConfig, state: &RunState) -> Result<Slaves> {
    let mut specs = Vec::new();
    let mut restore_macs = Vec::new();
    let mut counts = Vec::new();
    for name in &cfg.slaves {
        let link = nl
            .link(name)
            .with_context(|| format!("slave {name} (key slaves)"))?;
        let (rx, tx) = active_queues(name, &link);
        counts.push((name.clone(), rx, tx));
        if let Some(m) = link.master {
            let master = nl
                .link_by_index(m)
                .map_or(format!("ifindex {m}"), |l| l.name);
            bail!(
                "slave {name} (key slaves) is enslaved to {master}; release it first \
                 (ip link set {name} nomaster)"
            );
        }
        let (speed, duplex) = speed_duplex(name);
        let perm = link.perm_mac.filter(|m| !m.is_zero()).unwrap_or(link.mac);
        let original = state.originals.get(name).map_or(perm, |o| o.mac);
        restore_macs.push((name.clone(), original));
        specs.push(SlaveSpec {
            name: name.clone(),
            perm_mac: perm,
            speed_mbps: speed,
            full_duplex: duplex,
        });
    }
    let queues = resolve_queues(cfg, &counts)?;
    Ok(Slaves {
        specs,
        restore_macs,
        queues,
    })
}

/// The veth pair: adopted when it is ours (a restart keeps what the host
/// configured on it), created otherwise. `found` is what
/// [`upper::inspect`] saw before anything was touched.
pub(super) fn set_up_pair(
    nl: &mut Netlink,
    cfg: &mut BondConfig,
    queues: u32,
    guard: &mut HostGuard,
    found: Option<upper::Pair>,
) -> Result<()> {
    match found {
        None => {
            upper::create(nl, &cfg.name, &cfg.peer_name, queues)?;
            guard.created_now = true;
        }
        Some(upper::Pair { host, data }) => {
            if host.rx_queues < queues || data.rx_queues < queues {
                bail!(
                    "{} has {} queues but queues = {} needs {}; `xbond down {}` removes it \
                     (and what the host configured on it) so that the next start makes it anew",
                    cfg.name,
                    host.rx_queues.min(data.rx_queues),
                    queues,
                    queues,
                    cfg.name
                );
            }
            // No carrier until the bond says so.
            nl.set_up(&cfg.peer_name, false)?;
            // bond0 keeps the MAC it has (the one xbond gave it, or the
            // host's `hwaddress`), as a kernel bond keeps its address.
            if cfg.mac.is_none() && !host.mac.is_zero() {
                cfg.mac = Some(host.mac);
            }
            info!(
                "{}: adopted the upper port ({} host side, {} data plane); its addresses, \
                 routes and uppers stay",
                cfg.name, cfg.name, cfg.peer_name
            );
        }
    }
    guard.upper = Some((cfg.name.clone(), cfg.peer_name.clone()));
    Ok(())
}

/// Makes the slaves the data path's alone: turns off the offloads that would
/// hide VLAN tags (or merge frames) from it, on `upper` too, and the slaves'
/// own IPv6 (as a kernel bond's slaves have no addresses: otherwise the
/// host's duplicate-address probes and router solicitations leave a backup
/// slave with the bond's MAC, and the switch sends the bond's traffic there).
/// Records what to turn back on at exit, kept across restarts in the run
/// state.
pub(super) fn prepare_slaves(
    cfg: &BondConfig,
    upper: Option<&str>,
    guard: &mut HostGuard,
    state: &mut RunState,
) {
    if let Some(u) = upper {
        offload::turn_off(u, offload::UPPER_OFF);
    }
    let macs: Vec<MacAddr> = guard.restore_macs.iter().map(|(_, m)| *m).collect();
    for (s, mac) in cfg.slaves.iter().zip(macs) {
        prepare_slave(s, mac, guard, state);
    }
    state.originals.retain(|k, _| cfg.slaves.contains(k));
}

/// A slave whose interface came back (hot-plug, re-created) after it was
/// gone: a new device, so what it has now is what it gets back at exit.
/// Prepared as at start.
pub(super) fn prepare_rejoining(
    name: &str,
    link: &Link,
    guard: &mut HostGuard,
    state: &mut RunState,
) {
    let mac = link.perm_mac.filter(|m| !m.is_zero()).unwrap_or(link.mac);
    guard.restore_macs.retain(|(n, _)| n != name);
    guard.restore_macs.push((name.to_string(), mac));
    guard.restore_offloads.retain(|(n, _)| n != name);
    guard.restore_ipv6.retain(|n| n != name);
    guard.restore_mtu.retain(|(n, _)| n != name);
    state.originals.remove(name);
    prepare_slave(name, mac, guard, state);
}

/// Turns off what a slave must not do (VLAN offloads, its own IPv6) and
/// records what it gets back at exit: the MAC `mac`, the offloads, IPv6 and
/// its MTU, as recorded before xbond first changed it.
fn prepare_slave(s: &str, mac: MacAddr, guard: &mut HostGuard, state: &mut RunState) {
    let turned_off = offload::turn_off(s, offload::SLAVE_OFF);
    let ipv6_turned_off = match ipv6_disabled(s) {
        Some(false) => match set_ipv6_disabled(s, true) {
            Ok(()) => true,
            Err(e) => {
                warn!("{s}: could not turn its own IPv6 off: {e}");
                false
            }
        },
        _ => false,
    };
    let mtu = guard.nl.link(s).ok().map(|l| l.mtu);
    let original = state
        .originals
        .entry(s.to_string())
        .or_insert_with(|| runstate::Original {
            mac,
            offloads: turned_off,
            ipv6_turned_off,
            mtu,
        });
    if let Some(m) = original.mtu.or(mtu) {
        guard.restore_mtu.push((s.to_string(), m));
    }
    if !original.offloads.is_empty() {
        guard
            .restore_offloads
            .push((s.to_string(), original.offloads.clone()));
    }
    if original.ipv6_turned_off {
        guard.restore_ipv6.push(s.to_string());
    }
}

fn ipv6_sysctl(iface: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6")
}

/// Whether IPv6 is off on `iface`; `None` without IPv6 in the kernel.
fn ipv6_disabled(iface: &str) -> Option<bool> {
    let v = std::fs::read_to_string(ipv6_sysctl(iface)).ok()?;
    Some(v.trim() != "0")
}

fn set_ipv6_disabled(iface: &str, off: bool) -> std::io::Result<()> {
    std::fs::write(ipv6_sysctl(iface), if off { "1" } else { "0" })
}

/// Feeds a carrier reading to the bond; a link that comes up has its speed
/// and duplex read again first (they are unknown while it is down).
pub(super) fn feed_carrier(bond: &mut Bond, cfg: &BondConfig, i: usize, carrier: bool) {
    let now = Instant::now();
    if carrier && !bond.slaves()[i].carrier {
        let (speed, duplex) = speed_duplex(&cfg.slaves[i]);
        bond.set_speed(i, speed, duplex, now);
    }
    bond.handle_carrier(i, carrier, now);
}

pub(super) fn poll_links(
    nl: &mut Netlink,
    reader: &CarrierReader,
    cfg: &BondConfig,
    bond: &mut Bond,
) {
    for (i, s) in cfg.slaves.iter().enumerate() {
        match reader.carrier(nl, s) {
            Ok(c) => feed_carrier(bond, cfg, i, c),
            Err(e) => {
                warn!("polling {s}: {e}");
                bond.handle_carrier(i, false, Instant::now());
            }
        }
    }
}

pub(super) fn set_mac(
    nl: &mut Netlink,
    name: &str,
    mac: MacAddr,
    done: &mut HashMap<String, MacAddr>,
) -> Result<()> {
    if done.get(name) == Some(&mac) {
        return Ok(());
    }
    nl.set_mac(name, mac)
        .with_context(|| format!("setting the MAC of {name} to {mac}"))?;
    done.insert(name.to_string(), mac);
    Ok(())
}

/// Gives the core what bond0 and the devices stacked on it have now: their
/// addresses (announced after a failover), their joined groups (reported
/// again) and the VLAN devices the ARP/NS targets are reached through.
pub(super) fn refresh_addresses(nl: &mut Netlink, cfg: &BondConfig, bond: &mut Bond) {
    let name = cfg.name.as_str();
    let targets: Vec<std::net::IpAddr> = cfg
        .arp_ip_target
        .iter()
        .map(|&t| t.into())
        .chain(cfg.ns_ip6_target.iter().map(|&t| t.into()))
        .collect();
    let Some(found) = uppers::read(nl, name) else {
        return;
    };
    bond.set_addresses(found.own.0.clone(), found.own.1.clone());
    if !targets.is_empty() {
        bond.set_probe_paths(found.probe_paths(nl, &targets));
    }
    bond.set_upper_addresses(found.addresses);
    bond.set_joined_groups(found.joined);
}
