//! `xbond doctor`: what is wrong with a running bond, read from its status
//! and from the host, each problem with what it means and the fix, in the
//! spirit of the "failover not working" runbook. Pure: the runtime gathers
//! a [`Status`] (twice, a moment apart, to see counters move) and a
//! [`HostView`], and [`examine`] judges.

use serde::{Deserialize, Serialize};

use crate::lacp::wire::PortState;
use crate::lacp::ChurnState;
use crate::options::Mode;
use crate::status::Status;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Works, but not as it should (less redundancy, drops, a slower path).
    Warning,
    /// The bond cannot do its job (no failover, no traffic, no aggregation).
    Error,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// A stable name for scripts (`no-link-monitoring`, `no-lacpdu`, ...).
    pub code: String,
    /// What is wrong, naming the bond and slave.
    pub problem: String,
    /// What it means for the traffic.
    pub means: String,
    /// What to do.
    pub fix: String,
}

/// What the runtime reads off the host besides the status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// bond0's carrier.
    pub bond_carrier: bool,
    /// bond0's MTU.
    pub bond_mtu: u32,
    /// bond0 is promiscuous.
    pub bond_promisc: bool,
    /// bond0 has the addresses its probes need: IPv4 for `arp_ip_target`,
    /// IPv6 for `ns_ip6_target`.
    pub bond_has_address: bool,
    /// Per slave, in order: (MTU, promiscuous), where it could be read.
    pub slaves: Vec<Option<(u32, bool)>>,
}

fn find(
    out: &mut Vec<Finding>,
    severity: Severity,
    code: &str,
    problem: String,
    means: &str,
    fix: String,
) {
    out.push(Finding {
        severity,
        code: code.into(),
        problem,
        means: means.into(),
        fix,
    });
}

/// Judges a bond from two readings of its status (`before`, then `now` a
/// moment later) and the host's view. Findings come errors first.
pub fn examine(before: &Status, now: &Status, host: &HostView) -> Vec<Finding> {
    use Severity::{Error, Warning};
    let b = &now.name;
    let mut out = Vec::new();
    let ctl = |what: &str| format!("xbond ctl {b} set {what} --save");

    if now.monitoring_off || (now.miimon == 0 && now.arp_interval == 0) {
        find(
            &mut out,
            Error,
            "no-link-monitoring",
            format!("{b} has no link monitoring (miimon 0, no ARP/NS monitor)"),
            "a slave that fails is never noticed: the bond never fails over",
            format!("turn the carrier monitor on: {}", ctl("miimon 100")),
        );
    }
    if !host.bond_carrier || !now.mii_status {
        find(
            &mut out,
            Error,
            "no-carrier",
            format!("{b} has no carrier"),
            "nothing is sent or received through the bond",
            "bring a slave's link up (cable, switch port), or see the findings below".into(),
        );
    }
    let up: Vec<_> = now.slaves.iter().filter(|s| s.mii_status == "up").collect();
    if now.min_links > 0 && (up.len() as u32) < now.min_links {
        find(
            &mut out,
            Error,
            "min-links-unmet",
            format!(
                "{b} has {} slave(s) up, fewer than min_links {}",
                up.len(),
                now.min_links
            ),
            "the bond keeps its carrier down until enough links are up",
            format!(
                "bring links up, or lower the threshold: {}",
                ctl(&format!("min_links {}", up.len()))
            ),
        );
    }
    for s in &now.slaves {
        if s.mii_status != "up" {
            find(
                &mut out,
                Warning,
                "slave-down",
                format!("{b}: slave {} is {}", s.name, s.mii_status),
                "one link fewer: less bandwidth, and less redundancy",
                format!(
                    "check {}'s cable, optics and switch port (ip link show {})",
                    s.name, s.name
                ),
            );
        }
        let was = before
            .slaves
            .iter()
            .find(|x| x.name == s.name)
            .map_or(s.link_failure_count, |x| x.link_failure_count);
        if s.link_failure_count > was {
            find(
                &mut out,
                Error,
                "flapping",
                format!(
                    "{b}: slave {} is flapping (link failures {} -> {} while doctor looked)",
                    s.name, was, s.link_failure_count
                ),
                "every flap is a failover or a lost port: frames are lost each time",
                format!(
                    "fix the link (cable, optics, switch port); meanwhile let it settle before \
                     it is used again: {}",
                    ctl("updelay 2000")
                ),
            );
        } else if s.link_failure_count > 0 {
            find(
                &mut out,
                Warning,
                "link-failures",
                format!(
                    "{b}: slave {} has failed {} time(s) since the bond started",
                    s.name, s.link_failure_count
                ),
                "if the count keeps rising, the link flaps",
                format!(
                    "run xbond doctor {b} again; if it rises, check the cable and optics and \
                     raise miimon as the runbook says ({})",
                    ctl("miimon 200")
                ),
            );
        }
        if s.runtime.rx_dropped_no_socket > 0 {
            find(
                &mut out,
                Warning,
                "no-socket-drops",
                format!(
                    "{b}: {} frame(s) on {} were dropped for want of a socket",
                    s.runtime.rx_dropped_no_socket, s.name
                ),
                "the NIC spreads frames over more RX queues than xbond serves",
                format!(
                    "serve every queue (queues = \"auto\", then restart), or ethtool -L {} \
                     combined N",
                    s.name
                ),
            );
        }
        if s.arp_up == Some(false) && s.mii_status != "up" {
            find(
                &mut out,
                Warning,
                "arp-target-silent",
                format!(
                    "{b}: the ARP/NS monitor has no reply on {} from {}",
                    s.name,
                    targets(now)
                ),
                "the monitor holds the slave down: the targets do not answer through it",
                "check that the targets answer (ping them from the bond), or pick targets \
                 that always answer (the default gateway)"
                    .into(),
            );
        }
    }
    if now.arp_interval > 0 && !host.bond_has_address {
        find(
            &mut out,
            Error,
            "no-probe-source",
            format!("{b} has ARP/NS targets ({}) but no address", targets(now)),
            "probes go out without a source address, and the targets may not answer them",
            format!("give {b} its address (ip addr add ... dev {b}, or in the interfaces file)"),
        );
    }
    let speeds: Vec<_> = up.iter().map(|s| (s.speed_mbps, s.full_duplex)).collect();
    if speeds.windows(2).any(|w| w[0] != w[1]) {
        let list: Vec<String> = up
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s.name,
                    s.speed_mbps
                        .map_or("unknown speed".into(), |v| format!("{v} Mb/s"))
                )
            })
            .collect();
        find(
            &mut out,
            Warning,
            "speed-mismatch",
            format!(
                "{b}: slaves of different speed or duplex ({})",
                list.join(", ")
            ),
            if now.mode == Mode::Ieee8023ad {
                "802.3ad puts ports of different speed in different aggregators: only one \
                 aggregator carries traffic"
            } else {
                "the traffic spread does not match the links' capacity"
            },
            "use links of the same speed and duplex (check autonegotiation on both ends)".into(),
        );
    }
    if now.mode == Mode::Ieee8023ad {
        lacp(&mut out, now);
    }
    if host.bond_mtu > 0 {
        for (s, h) in now.slaves.iter().zip(&host.slaves) {
            let Some((mtu, promisc)) = h else { continue };
            if *mtu != host.bond_mtu {
                find(
                    &mut out,
                    Warning,
                    "mtu-mismatch",
                    format!(
                        "{b}: MTU {} but slave {} has MTU {mtu}",
                        host.bond_mtu, s.name
                    ),
                    "frames that fit one are dropped by the other",
                    format!(
                        "set the MTU on {b} only (xbond passes it down): ip link set {b} mtu {}",
                        host.bond_mtu
                    ),
                );
            }
            let carries = !now.mode.has_active_slave() || now.active.as_ref() == Some(&s.name);
            if host.bond_promisc && carries && !promisc {
                find(
                    &mut out,
                    Warning,
                    "promisc-mismatch",
                    format!("{b} is promiscuous but slave {} is not", s.name),
                    "frames for other MACs (VMs behind a bridge on the bond) are filtered out by \
                     the NIC",
                    format!("restart the bond so that it passes promisc down (systemctl restart xbond@{b})"),
                );
            }
        }
    }
    for (q, queue) in now.runtime.queues.iter().enumerate() {
        for k in &queue.sockets {
            let was = before
                .runtime
                .queues
                .get(q)
                .and_then(|x| x.sockets.iter().find(|y| y.iface == k.iface))
                .map_or((0, 0, 0), |y| {
                    (y.rx_dropped, y.rx_ring_full, y.fill_ring_empty)
                });
            let grew = (
                k.rx_dropped > was.0,
                k.rx_ring_full > was.1,
                k.fill_ring_empty > was.2,
            );
            if grew.0 || grew.1 {
                find(
                    &mut out,
                    Warning,
                    "ring-drops",
                    format!(
                        "{b}: the kernel dropped frames on {} queue {q} while doctor looked \
                         (rx dropped {}, rx ring full {})",
                        k.iface, k.rx_dropped, k.rx_ring_full
                    ),
                    "the workers do not keep up with the frames arriving",
                    "give the workers CPUs of their own (queues, fewer other tasks on those \
                     cores), or lower busy_poll_us only if CPU is short"
                        .into(),
                );
            }
            if let Some(why) = k.refused.iter().find(|r| r.starts_with("zero-copy")) {
                if k.xdp_bind == "copy" {
                    find(
                        &mut out,
                        Warning,
                        "copy-mode",
                        format!("{b}: {} runs in AF_XDP copy mode: {why}", k.iface),
                        "every frame is copied by the kernel: more CPU a frame, a lower rate",
                        "use a driver with AF_XDP zero-copy (ice, i40e, mlx5, virtio_net on \
                         Linux 6.12...), or run with --copy to say copy mode is meant"
                            .into(),
                    );
                    break;
                }
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn targets(s: &Status) -> String {
    let t: Vec<String> = s
        .arp_ip_target
        .iter()
        .map(ToString::to_string)
        .chain(s.ns_ip6_target.iter().map(ToString::to_string))
        .collect();
    t.join(", ")
}

fn lacp(out: &mut Vec<Finding>, now: &Status) {
    use Severity::{Error, Warning};
    let b = &now.name;
    let mut partners = Vec::new();
    for s in &now.slaves {
        let Some(p) = &s.lacp else { continue };
        if s.mii_status != "up" {
            continue;
        }
        if p.counters.lacpdu_rx == 0 {
            find(
                out,
                Error,
                "no-lacpdu",
                format!("{b}: no LACPDU received on {}", s.name),
                "the switch port is not in an LACP channel (a mode/switch mismatch): the port \
                 does not aggregate",
                format!(
                    "configure the switch ports of {} as one LACP (802.3ad) port-channel, or \
                     use a mode the switch needs nothing for (active-backup)",
                    now.slaves
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        } else if p.actor_state & (PortState::DEFAULTED | PortState::EXPIRED) != 0 {
            find(
                out,
                Warning,
                "partner-lost",
                format!(
                    "{b}: {}'s partner information is {}",
                    s.name,
                    if p.actor_state & PortState::EXPIRED != 0 {
                        "expired"
                    } else {
                        "defaulted"
                    }
                ),
                "LACPDUs stopped coming: the port leaves the aggregator",
                "check the switch's LACP on that port (and the lacp_rate both ends use)".into(),
            );
        } else {
            partners.push((s.name.clone(), p.partner_system, p.partner_key));
        }
        if p.actor_churn == ChurnState::Churned || p.partner_churn == ChurnState::Churned {
            find(
                out,
                Warning,
                "lacp-churn",
                format!("{b}: {} is in churn (its ports never got in sync)", s.name),
                "the port is not aggregated: the two ends disagree",
                "compare both ends' keys and systems (xbond status, and the switch's LACP view)"
                    .into(),
            );
        }
    }
    if partners
        .windows(2)
        .any(|w| (w[0].1, w[0].2) != (w[1].1, w[1].2))
    {
        let list: Vec<String> = partners
            .iter()
            .map(|(n, sys, key)| format!("{n} -> {sys} key {key}"))
            .collect();
        find(
            out,
            Error,
            "partner-mismatch",
            format!(
                "{b}: the ports have different partners ({})",
                list.join(", ")
            ),
            "they are cabled to different switches or LAGs: several aggregators, and only one \
             carries traffic",
            "put all the ports in one LAG on one switch (or an MLAG pair acting as one)".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bond::{Bond, SlaveSpec};
    use crate::config::BondConfig;
    use crate::options::MacAddr;
    use crate::status::{BondRuntime, SlaveRuntime};
    use std::time::Instant;

    fn status(text: &str, speeds: [u32; 2]) -> Status {
        let cfg = BondConfig::from_toml_str(text).unwrap();
        let specs = (0..2)
            .map(|i| SlaveSpec {
                name: format!("eno{}", i + 1),
                perm_mac: MacAddr([2, 0, 0, 0, 0, i as u8 + 1]),
                speed_mbps: Some(speeds[i]),
                full_duplex: Some(true),
            })
            .collect();
        let now = Instant::now();
        let mut bond = Bond::new(cfg, specs, now);
        bond.handle_carrier(0, true, now);
        bond.handle_carrier(1, true, now);
        Status::new(
            &bond,
            BondRuntime::default(),
            &[SlaveRuntime::default(), SlaveRuntime::default()],
        )
    }

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    const AB: &str =
        "name = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\nmode = \"active-backup\"\nmiimon = 100\n";

    fn healthy_host(mtu: u32) -> HostView {
        HostView {
            bond_carrier: true,
            bond_mtu: mtu,
            bond_promisc: true,
            bond_has_address: true,
            slaves: vec![Some((mtu, true)), Some((mtu, true))],
        }
    }

    #[test]
    fn a_healthy_bond_gets_a_clean_bill() {
        let s = status(AB, [10000, 10000]);
        assert_eq!(examine(&s, &s, &healthy_host(1500)), vec![]);
    }

    #[test]
    fn speed_promisc_and_ring_findings_are_named() {
        let s = status(AB, [10000, 1000]);
        let mut host = healthy_host(1500);
        host.slaves[0] = Some((1500, false));
        let mut now = s.clone();
        now.runtime.queues = vec![crate::status::QueueRuntime {
            sockets: vec![crate::status::SocketRuntime {
                iface: "eno1".into(),
                xdp_bind: "zero-copy".into(),
                rx_ring_full: 7,
                ..Default::default()
            }],
            ..Default::default()
        }];
        now.slaves[1].runtime.rx_dropped_no_socket = 3;
        let f = examine(&s, &now, &host);
        let mut got = codes(&f);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "no-socket-drops",
                "promisc-mismatch",
                "ring-drops",
                "speed-mismatch"
            ],
            "{f:#?}"
        );
        // All warnings: the bond works.
        assert!(f.iter().all(|x| x.severity == Severity::Warning));
        let mtu = HostView {
            slaves: vec![Some((1400, true)), Some((1500, true))],
            ..healthy_host(1500)
        };
        let s = status(AB, [10000, 10000]);
        assert_eq!(codes(&examine(&s, &s, &mtu)), ["mtu-mismatch"]);
    }
}
