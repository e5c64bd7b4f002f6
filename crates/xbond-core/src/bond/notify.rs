//! Peer notification after an active-backup failover: `num_grat_arp`
//! gratuitous ARPs and `num_unsol_na` unsolicited neighbour advertisements for
//! the bond's addresses and those of the devices stacked on it (a bridge, a
//! VLAN device: tagged with its VLAN, from its MAC), sent on the new active
//! slave, the first at once and the rest `peer_notif_delay` ms apart
//! (`miimon` ms when it is 0). And in the modes with an active slave,
//! `resend_igmp` rounds of IGMP and MLD membership reports for the groups
//! joined on the bond and on the devices stacked on it, 200 ms apart, as the
//! kernel's `bond_resend_igmp_join_requests`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::mode::ModeState;
use super::{Bond, Transmit};
use crate::timer::Timer;
use crate::wire;

/// A device stacked on the bond's upper port, as its announcements need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpperAddresses {
    /// Its name (for logs).
    pub name: String,
    /// The VLAN its frames carry on the bond (0: untagged).
    pub vlan: u16,
    /// Its MAC, the source of its announcements.
    pub mac: crate::options::MacAddr,
    /// Its IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
}

/// The multicast groups one device has joined, bond0 itself or a device
/// stacked on it: reported again on the new active slave after a failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The device's name (for logs and the status).
    pub name: String,
    /// The VLAN its frames carry on the bond (0: untagged).
    pub vlan: u16,
    /// Its MAC, the source of its reports.
    pub mac: crate::options::MacAddr,
    /// The IPv4 source of its IGMP reports (its address, or 0.0.0.0).
    pub src4: Ipv4Addr,
    /// Its IPv4 groups.
    pub groups4: Vec<Ipv4Addr>,
    /// The IPv6 source of its MLD reports (its link-local address, or ::).
    pub src6: Ipv6Addr,
    /// Its IPv6 groups.
    pub groups6: Vec<Ipv6Addr>,
}

/// Time between two rounds of membership reports (the kernel's HZ/5).
const IGMP_RESEND_GAP: Duration = Duration::from_millis(200);

/// The membership reports still to send after the last failover.
#[derive(Debug, Clone)]
pub(super) struct IgmpResend {
    slave: usize,
    left: u8,
    timer: Timer,
}

impl IgmpResend {
    /// When the next round is due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.timer.deadline()
    }
}

/// The announcements still to send after the last failover.
#[derive(Debug, Clone)]
pub(super) struct PeerNotify {
    slave: usize,
    arp_left: u8,
    na_left: u8,
    timer: Timer,
}

impl PeerNotify {
    /// When the next round is due.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.timer.deadline()
    }
}

impl Bond {
    /// Starts announcing the bond's addresses on `new`, the new active slave
    /// (active-backup only), and sends the first round at once. With no
    /// active slave, announcements still pending are dropped.
    pub(super) fn start_notify(&mut self, new: Option<usize>, now: Instant) {
        let ModeState::ActiveBackup { notify, .. } = &mut self.mode else {
            return;
        };
        *notify = new.map(|slave| PeerNotify {
            slave,
            arp_left: self.cfg.num_grat_arp,
            na_left: self.cfg.num_unsol_na,
            timer: Timer::Running { expires_at: now },
        });
        self.run_notify(now);
    }

    /// Starts reporting the joined groups again on `new`, the new active
    /// slave (`resend_igmp` rounds, the first at once).
    pub(super) fn start_igmp_resend(&mut self, new: Option<usize>, now: Instant) {
        self.igmp = new
            .filter(|_| self.cfg.resend_igmp > 0)
            .map(|slave| IgmpResend {
                slave,
                left: self.cfg.resend_igmp,
                timer: Timer::Running { expires_at: now },
            });
        self.run_igmp_resend(now);
    }

    /// Sends one round of membership reports if one is due.
    pub(super) fn run_igmp_resend(&mut self, now: Instant) {
        let Some(r) = self.igmp.as_mut() else {
            return;
        };
        if !r.timer.due(now) {
            return;
        }
        for j in &self.joined {
            let frames = wire::igmp_reports(j.mac, j.src4, &j.groups4, j.vlan)
                .into_iter()
                .chain(wire::mld_reports(j.mac, j.src6, &j.groups6, j.vlan));
            for frame in frames {
                self.transmits.push_back(Transmit {
                    slave: r.slave,
                    frame,
                });
            }
        }
        r.left = r.left.saturating_sub(1);
        if r.left == 0 {
            self.igmp = None;
        } else {
            r.timer = Timer::Running {
                expires_at: now + IGMP_RESEND_GAP,
            };
        }
    }

    /// Sends one round of announcements if one is due.
    pub(super) fn run_notify(&mut self, now: Instant) {
        let ModeState::ActiveBackup { notify, .. } = &mut self.mode else {
            return;
        };
        let Some(n) = notify.as_mut() else {
            return;
        };
        if !n.timer.due(now) {
            return;
        }
        let slave = n.slave;
        let own = (0u16, self.bond_mac, &self.ipv4, &self.ipv6);
        let uppers = self
            .uppers
            .iter()
            .map(|u| (u.vlan, u.mac, &u.ipv4, &u.ipv6));
        let (arp, na) = (n.arp_left > 0, n.na_left > 0);
        for (vlan, mac, v4, v6) in std::iter::once(own).chain(uppers) {
            if arp {
                for ip in v4 {
                    self.transmits.push_back(Transmit {
                        slave,
                        frame: wire::gratuitous_arp(mac, *ip, vlan),
                    });
                }
            }
            if na {
                for ip in v6 {
                    self.transmits.push_back(Transmit {
                        slave,
                        frame: wire::unsolicited_na(mac, *ip, vlan),
                    });
                }
            }
        }
        n.arp_left = n.arp_left.saturating_sub(1);
        n.na_left = n.na_left.saturating_sub(1);
        if n.arp_left == 0 && n.na_left == 0 {
            *notify = None;
        } else {
            let gap = match self.cfg.peer_notif_delay {
                0 => self.cfg.miimon,
                d => d,
            };
            n.timer = Timer::Running {
                expires_at: now + Duration::from_millis(u64::from(gap)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::test_util::{bond, cfg, drain, transmits};
    use crate::bond::BondEvent;
    use crate::options::Mode;

    #[test]
    fn active_backup_fails_over_at_once_and_announces() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.primary = Some("eno1".into());
        c.num_grat_arp = 2;
        c.peer_notif_delay = 200;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        assert_eq!(b.active(), Some(0));
        assert!(b.carrier());
        assert_eq!(b.tx_plan().tx_slaves(), &[0]);
        assert_eq!(b.tx_plan().rx_mask, 0b01);
        drain(&mut b);
        transmits(&mut b);

        b.handle_carrier(0, false, t0 + Duration::from_millis(5));
        assert_eq!(b.active(), Some(1));
        let ev = drain(&mut b);
        assert!(ev.contains(&BondEvent::ActiveChanged {
            old: Some(0),
            new: Some(1)
        }));
        assert!(ev.contains(&BondEvent::PlanChanged));
        assert_eq!(b.tx_plan().tx_slaves(), &[1]);
        assert_eq!(b.tx_plan().rx_mask, 0b10);
        assert_eq!(b.slaves()[0].link_failure_count, 1);
        // First GARP and NA at once on the new slave, the second ARP 200 ms later.
        let tx = transmits(&mut b);
        assert_eq!(tx.len(), 2);
        assert!(tx.iter().all(|t| t.slave == 1));
        b.handle_timeout(t0 + Duration::from_millis(100));
        assert!(transmits(&mut b).is_empty());
        b.handle_timeout(t0 + Duration::from_millis(205));
        let tx = transmits(&mut b);
        assert_eq!(tx.len(), 1);
        assert_eq!(&tx[0].frame[12..14], &[0x08, 0x06]);
    }

    #[test]
    fn devices_stacked_on_the_bond_are_announced_tagged_from_their_mac() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.primary = Some("eno1".into());
        let mut b = bond(c, t0);
        let vmbr0 = crate::options::MacAddr([2, 0, 0, 0, 0xbb, 1]);
        let vlan = crate::options::MacAddr([2, 0, 0, 0, 0xbb, 2]);
        b.set_upper_addresses(vec![
            super::UpperAddresses {
                name: "vmbr0".into(),
                vlan: 0,
                mac: vmbr0,
                ipv4: vec![std::net::Ipv4Addr::new(192, 0, 2, 1)],
                ipv6: vec![],
            },
            super::UpperAddresses {
                name: "vmbr0.100".into(),
                vlan: 100,
                mac: vlan,
                ipv4: vec![std::net::Ipv4Addr::new(198, 51, 100, 1)],
                ipv6: vec!["fd00:100::1".parse().unwrap()],
            },
        ]);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        drain(&mut b);
        transmits(&mut b);
        b.handle_carrier(0, false, t0 + Duration::from_millis(5));
        let tx = transmits(&mut b);
        // bond0's GARP and NA, vmbr0's GARP, vmbr0.100's GARP and NA.
        assert_eq!(tx.len(), 5, "{tx:?}");
        assert!(tx.iter().all(|t| t.slave == 1));
        let from = |mac: crate::options::MacAddr| {
            tx.iter()
                .filter(|t| t.frame[6..12] == mac.0)
                .collect::<Vec<_>>()
        };
        let untagged = from(vmbr0);
        assert_eq!(untagged.len(), 1);
        assert_eq!(&untagged[0].frame[12..14], &[0x08, 0x06], "ARP, no tag");
        assert_eq!(&untagged[0].frame[28..32], &[192, 0, 2, 1]);
        let tagged = from(vlan);
        assert_eq!(tagged.len(), 2);
        for t in tagged {
            assert_eq!(&t.frame[12..16], &[0x81, 0x00, 0x00, 100], "802.1Q tag 100");
        }
    }

    fn joined() -> super::Joined {
        super::Joined {
            name: "bond0".into(),
            vlan: 0,
            mac: crate::options::MacAddr([2, 0, 0, 0, 0, 1]),
            src4: std::net::Ipv4Addr::new(10, 0, 0, 1),
            groups4: vec![std::net::Ipv4Addr::new(239, 1, 1, 1)],
            src6: "fe80::1".parse().unwrap(),
            groups6: vec!["ff05::1:3".parse().unwrap()],
        }
    }

    /// Membership reports (IGMP over IPv4, MLD over IPv6) among `tx`.
    fn reports(tx: &[crate::bond::Transmit]) -> Vec<usize> {
        tx.iter()
            .filter(|t| t.frame[23] == 2 || t.frame.get(62) == Some(&143))
            .map(|t| t.slave)
            .collect()
    }

    #[test]
    fn a_failover_reports_the_joined_groups_resend_igmp_times_200_ms_apart() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.primary = Some("eno1".into());
        c.resend_igmp = 2;
        c.num_grat_arp = 0;
        c.num_unsol_na = 0;
        let mut b = bond(c, t0);
        b.set_joined_groups(vec![joined()]);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        drain(&mut b);
        transmits(&mut b);
        b.handle_carrier(0, false, t0 + Duration::from_millis(5));
        assert_eq!(
            reports(&transmits(&mut b)),
            vec![1, 1],
            "IGMP and MLD at once"
        );
        assert!(b
            .poll_timeout()
            .is_some_and(|t| t <= t0 + Duration::from_millis(205)));
        b.handle_timeout(t0 + Duration::from_millis(100));
        assert!(reports(&transmits(&mut b)).is_empty());
        b.handle_timeout(t0 + Duration::from_millis(205));
        assert_eq!(reports(&transmits(&mut b)), vec![1, 1], "the second round");
        b.handle_timeout(t0 + Duration::from_millis(500));
        assert!(reports(&transmits(&mut b)).is_empty(), "two rounds only");
    }

    #[test]
    fn no_reports_with_resend_igmp_0_or_without_an_active_slave_mode() {
        let t0 = Instant::now();
        for (mode, resend) in [(Mode::ActiveBackup, 0), (Mode::BalanceXor, 1)] {
            let mut c = cfg(mode);
            c.resend_igmp = resend;
            let mut b = bond(c, t0);
            b.set_joined_groups(vec![joined()]);
            b.handle_carrier(0, true, t0);
            b.handle_carrier(1, true, t0);
            b.handle_carrier(0, false, t0 + Duration::from_millis(5));
            b.handle_timeout(t0 + Duration::from_millis(500));
            assert!(reports(&transmits(&mut b)).is_empty(), "{mode:?} {resend}");
        }
    }
}
