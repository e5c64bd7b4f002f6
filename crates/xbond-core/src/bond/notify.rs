//! Peer notification after an active-backup failover: `num_grat_arp`
//! gratuitous ARPs and `num_unsol_na` unsolicited neighbour advertisements for
//! the bond's addresses and those of the devices stacked on it (a bridge, a
//! VLAN device: tagged with its VLAN, from its MAC), sent on the new active
//! slave, the first at once and the rest `peer_notif_delay` ms apart
//! (`miimon` ms when it is 0).

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
}
