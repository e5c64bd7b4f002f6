//! Peer notification after an active-backup failover: `num_grat_arp`
//! gratuitous ARPs and `num_unsol_na` unsolicited neighbour advertisements for
//! the bond's addresses, sent on the new active slave, the first at once and
//! the rest `peer_notif_delay` ms apart (`miimon` ms when it is 0).

use std::time::{Duration, Instant};

use super::mode::ModeState;
use super::{Bond, Transmit};
use crate::timer::Timer;
use crate::wire;

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
        let mac = self.bond_mac;
        if n.arp_left > 0 {
            n.arp_left -= 1;
            for ip in &self.ipv4 {
                self.transmits.push_back(Transmit {
                    slave,
                    frame: wire::gratuitous_arp(mac, *ip, 0),
                });
            }
        }
        if n.na_left > 0 {
            n.na_left -= 1;
            for ip in &self.ipv6 {
                self.transmits.push_back(Transmit {
                    slave,
                    frame: wire::unsolicited_na(mac, *ip, 0),
                });
            }
        }
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
}
