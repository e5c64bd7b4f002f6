//! The per-mode state of a bond: [`ModeState`], one variant per bonding mode
//! (balance-rr, balance-xor and broadcast share one), each holding exactly the
//! machines that mode runs: the LACP engine, the ARP/NS monitor, peer
//! notification, and balance-tlb/alb balancing. A bond can therefore never
//! hold, say, an LACP engine and a TLB table at once.

use std::time::{Duration, Instant};

use super::notify::PeerNotify;
use super::Slave;
use crate::alb::{LearningTimer, Rlb, Tlb};
use crate::config::{BondConfig, LacpRate};
use crate::lacp::{Lacp, LacpConfig, PortSpec};
use crate::monitor::ArpMonitor;
use crate::options::{MacAddr, Mode};

/// What one bonding mode keeps beyond the per-slave link state.
#[derive(Debug)]
pub(super) enum ModeState {
    /// balance-rr, balance-xor and broadcast: every usable slave transmits.
    Static {
        /// The ARP/NS link monitor, when `arp_interval` and targets are set.
        arp: Option<ArpMonitor>,
    },
    /// active-backup: one active slave carries the traffic.
    ActiveBackup {
        /// The ARP/NS link monitor, when `arp_interval` and targets are set.
        arp: Option<ArpMonitor>,
        /// Gratuitous ARPs and unsolicited NAs still to send after the last
        /// failover; `None` once all are sent.
        notify: Option<PeerNotify>,
    },
    /// 802.3ad: the IEEE 802.1AX LACP engine decides which ports distribute.
    Lacp {
        /// The LACP machines of every port.
        engine: Lacp,
    },
    /// balance-tlb: transmit balancing over the usable slaves; receive on
    /// the active one.
    Tlb {
        /// Destination buckets and their slaves.
        tlb: Tlb,
        /// When to send the next learning packets.
        learning: LearningTimer,
    },
    /// balance-alb: balance-tlb plus receive balancing by ARP.
    Alb {
        /// Destination buckets and their slaves.
        tlb: Tlb,
        /// Peers and the slave each is told to send to.
        rlb: Rlb,
        /// When to send the next learning packets.
        learning: LearningTimer,
    },
}

impl ModeState {
    /// The state `cfg.mode` starts with. The ARP/NS monitor is built only in
    /// the modes where validation allows it (as the kernel, which refuses it
    /// in 802.3ad, balance-tlb and balance-alb).
    pub(super) fn new(
        cfg: &BondConfig,
        slaves: &[Slave],
        bond_mac: MacAddr,
        now: Instant,
    ) -> ModeState {
        let arp = || arp_monitor(cfg, slaves.len(), now);
        let tlb = || Tlb::new(slaves.len(), cfg.tlb_dynamic_lb, now);
        let learning = || LearningTimer::new(Duration::from_secs(u64::from(cfg.lp_interval)), now);
        match cfg.mode {
            Mode::BalanceRr | Mode::BalanceXor | Mode::Broadcast => {
                ModeState::Static { arp: arp() }
            }
            Mode::ActiveBackup => ModeState::ActiveBackup {
                arp: arp(),
                notify: None,
            },
            Mode::Ieee8023ad => ModeState::Lacp {
                engine: lacp_engine(cfg, slaves, bond_mac, now),
            },
            Mode::BalanceTlb => ModeState::Tlb {
                tlb: tlb(),
                learning: learning(),
            },
            Mode::BalanceAlb => ModeState::Alb {
                tlb: tlb(),
                rlb: Rlb::new(slaves.iter().map(|s| s.mac).collect(), bond_mac, Vec::new()),
                learning: learning(),
            },
        }
    }

    /// The ARP/NS monitor after a change of its options at run time: the
    /// one running takes the new options and keeps what it has proven; one
    /// started now trusts the slaves whose links are up until it has probed
    /// (as the kernel, which does not take a link down that it has not yet
    /// probed); with no interval or targets left, none.
    pub(super) fn set_arp(&mut self, cfg: &BondConfig, slaves: &[Slave], now: Instant) {
        let (ModeState::Static { arp } | ModeState::ActiveBackup { arp, .. }) = self else {
            return;
        };
        let Some(mut fresh) = arp_monitor(cfg, slaves.len(), now) else {
            *arp = None;
            return;
        };
        match arp {
            Some(old) => fresh.keep_proof(old),
            None => {
                for (i, s) in slaves.iter().enumerate() {
                    if s.link.usable() {
                        fresh.assume_up(i, now);
                    }
                }
            }
        }
        *arp = Some(fresh);
    }

    /// The LACP engine (802.3ad).
    pub(super) fn lacp(&self) -> Option<&Lacp> {
        match self {
            ModeState::Lacp { engine } => Some(engine),
            _ => None,
        }
    }

    /// The LACP engine (802.3ad), to feed.
    pub(super) fn lacp_mut(&mut self) -> Option<&mut Lacp> {
        match self {
            ModeState::Lacp { engine } => Some(engine),
            _ => None,
        }
    }

    /// The ARP/NS monitor, if one runs.
    pub(super) fn arp(&self) -> Option<&ArpMonitor> {
        match self {
            ModeState::Static { arp } | ModeState::ActiveBackup { arp, .. } => arp.as_ref(),
            _ => None,
        }
    }

    /// The ARP/NS monitor, if one runs, to feed.
    pub(super) fn arp_mut(&mut self) -> Option<&mut ArpMonitor> {
        match self {
            ModeState::Static { arp } | ModeState::ActiveBackup { arp, .. } => arp.as_mut(),
            _ => None,
        }
    }

    /// The transmit balancing state (balance-tlb/alb).
    pub(super) fn tlb(&self) -> Option<&Tlb> {
        match self {
            ModeState::Tlb { tlb, .. } | ModeState::Alb { tlb, .. } => Some(tlb),
            _ => None,
        }
    }

    /// The transmit balancing state (balance-tlb/alb), to feed.
    pub(super) fn tlb_mut(&mut self) -> Option<&mut Tlb> {
        match self {
            ModeState::Tlb { tlb, .. } | ModeState::Alb { tlb, .. } => Some(tlb),
            _ => None,
        }
    }

    /// The receive balancing state (balance-alb).
    pub(super) fn rlb(&self) -> Option<&Rlb> {
        match self {
            ModeState::Alb { rlb, .. } => Some(rlb),
            _ => None,
        }
    }

    /// The receive balancing state (balance-alb), to feed.
    pub(super) fn rlb_mut(&mut self) -> Option<&mut Rlb> {
        match self {
            ModeState::Alb { rlb, .. } => Some(rlb),
            _ => None,
        }
    }

    /// The earliest deadline of this mode's machines, but for the ARP/NS
    /// monitor, which the link monitor's deadline covers.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ModeState::Static { .. } => None,
            ModeState::ActiveBackup { notify, .. } => {
                notify.as_ref().and_then(PeerNotify::deadline)
            }
            ModeState::Lacp { engine } => engine.poll_timeout(),
            ModeState::Tlb { tlb, learning } => tlb
                .poll_timeout()
                .into_iter()
                .chain(learning.poll_timeout())
                .min(),
            ModeState::Alb { tlb, rlb, learning } => tlb
                .poll_timeout()
                .into_iter()
                .chain(rlb.poll_timeout())
                .chain(learning.poll_timeout())
                .min(),
        }
    }
}

/// The 802.3ad engine for `slaves`, configured from `cfg`.
/// The ARP/NS monitor `cfg` asks for, if any.
fn arp_monitor(cfg: &BondConfig, n_slaves: usize, now: Instant) -> Option<ArpMonitor> {
    let monitored =
        cfg.arp_interval > 0 && !(cfg.arp_ip_target.is_empty() && cfg.ns_ip6_target.is_empty());
    monitored.then(|| {
        ArpMonitor::new(
            cfg.arp_interval,
            cfg.arp_missed_max,
            cfg.arp_validate,
            cfg.arp_all_targets,
            &cfg.arp_ip_target,
            &cfg.ns_ip6_target,
            n_slaves,
            now,
        )
    })
}

fn lacp_engine(cfg: &BondConfig, slaves: &[Slave], bond_mac: MacAddr, now: Instant) -> Lacp {
    let (lcfg, prios) = lacp_config(cfg, slaves, bond_mac);
    let ports = slaves
        .iter()
        .zip(prios)
        .map(|(s, port_priority)| PortSpec {
            mac: s.spec.perm_mac,
            speed_mbps: s.spec.speed_mbps,
            full_duplex: s.spec.full_duplex,
            port_priority,
            name: s.spec.name.clone(),
        })
        .collect();
    Lacp::new(lcfg, ports, now)
}

/// The LACP options of `cfg`, and each slave's port priority.
pub(super) fn lacp_config(
    cfg: &BondConfig,
    slaves: &[Slave],
    bond_mac: MacAddr,
) -> (LacpConfig, Vec<u16>) {
    let lcfg = LacpConfig {
        fast: cfg.lacp_rate == LacpRate::Fast,
        active: cfg.lacp_active,
        ad_select: cfg.ad_select,
        system: cfg.ad_actor_system.unwrap_or(bond_mac),
        system_priority: cfg.ad_actor_sys_prio,
        user_port_key: cfg.ad_user_port_key,
        coupled: cfg.coupled_control,
        min_links: cfg.min_links,
        fallback: cfg.lacp_fallback == Some(Mode::ActiveBackup),
    };
    let prios = slaves
        .iter()
        .map(|s| {
            cfg.ad_actor_port_prio
                .get(&s.spec.name)
                .copied()
                .unwrap_or(255)
        })
        .collect();
    (lcfg, prios)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::super::test_util::{bond, cfg};
    use crate::options::Mode;

    #[test]
    fn each_mode_runs_only_its_own_machines() {
        let t0 = Instant::now();
        for &mode in Mode::ALL {
            let arp_mode = matches!(
                mode,
                Mode::BalanceRr | Mode::ActiveBackup | Mode::BalanceXor | Mode::Broadcast
            );
            let mut c = cfg(mode);
            if arp_mode {
                c.miimon = 0;
                c.arp_interval = 100;
                c.arp_ip_target = vec![Ipv4Addr::new(10, 0, 0, 254)];
            }
            c.validate().unwrap();
            let b = bond(c, t0);
            let machines = (
                b.lacp().is_some(),
                b.tlb().is_some(),
                b.rlb().is_some(),
                b.arp_monitoring(),
            );
            let want = match mode {
                Mode::Ieee8023ad => (true, false, false, false),
                Mode::BalanceTlb => (false, true, false, false),
                Mode::BalanceAlb => (false, true, true, false),
                _ => (false, false, false, true),
            };
            assert_eq!(machines, want, "{mode}: (lacp, tlb, rlb, arp)");
            let plan = b.tx_plan();
            assert_eq!(plan.tap_arp, arp_mode || mode == Mode::BalanceAlb, "{mode}");
            assert_eq!(plan.divert_host_arp, mode == Mode::BalanceAlb, "{mode}");
        }
    }
}
