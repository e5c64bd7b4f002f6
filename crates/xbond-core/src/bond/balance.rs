//! The bond's side of balance-tlb and balance-alb: feeding the transmit
//! balancer the workers' per-bucket load, the periodic rebalance and
//! learning packets, and (balance-alb) the host's ARP frames, rewritten by
//! the receive balancer and sent on the slave each peer is assigned. The
//! balancing itself lives in [`crate::alb`].

use std::time::Instant;

use super::mode::ModeState;
use super::{Bond, Transmit};
use crate::alb::{self, Rlb, Tlb};

impl Bond {
    /// balance-alb: an ARP frame the host sent out of the bond (diverted by
    /// the data path). Replies are rewritten to carry the MAC of the slave
    /// assigned to the peer and sent on that slave; everything else goes out
    /// unchanged on the active slave.
    pub fn handle_host_arp(&mut self, mut frame: Vec<u8>, now: Instant) {
        let slave = match self
            .mode
            .rlb_mut()
            .and_then(|r| r.rewrite_host_arp(&mut frame, now))
        {
            Some(s) => Some(usize::from(s)),
            None => self.active,
        };
        if let Some(slave) = slave.filter(|&s| s < self.slaves.len()) {
            self.transmits.push_back(Transmit { slave, frame });
        }
        self.drain_rlb(now);
    }

    /// balance-tlb/alb: bytes per destination bucket that the workers sent
    /// since the last call. New buckets get a slave; the plan follows.
    pub fn note_tlb_load(&mut self, seen: &[u64; alb::TLB_BUCKETS]) {
        let Some(t) = self.mode.tlb_mut() else {
            return;
        };
        t.assign_all_seen(seen);
        if t.take_changed() {
            self.publish();
        }
    }

    /// The transmit balancing state (balance-tlb/alb).
    pub fn tlb(&self) -> Option<&Tlb> {
        self.mode.tlb()
    }

    /// The receive balancing state (balance-alb).
    pub fn rlb(&self) -> Option<&Rlb> {
        self.mode.rlb()
    }

    /// balance-tlb/alb timers: rebalance, the receive balancer's ARP
    /// updates, and learning packets on every usable slave.
    pub(super) fn balance_timeout(&mut self, now: Instant) {
        let (tlb, learning) = match &mut self.mode {
            ModeState::Tlb { tlb, learning } | ModeState::Alb { tlb, learning, .. } => {
                (tlb, learning)
            }
            _ => return,
        };
        tlb.handle_timeout(now);
        let republish = tlb.take_changed();
        let learn = learning.due(now);
        self.drain_rlb(now);
        if learn {
            for (i, s) in self
                .slaves
                .iter()
                .enumerate()
                .filter(|(_, s)| s.link.usable())
            {
                self.transmits.push_back(Transmit {
                    slave: i,
                    frame: alb::learning_packet(s.mac, 0),
                });
            }
        }
        if republish {
            self.publish();
        }
    }

    /// Queues the frames the receive balancer wants sent (balance-alb).
    fn drain_rlb(&mut self, now: Instant) {
        let Some(r) = self.mode.rlb_mut() else {
            return;
        };
        while let Some((slave, frame)) = r.poll_transmit(now) {
            self.transmits.push_back(Transmit {
                slave: usize::from(slave),
                frame,
            });
        }
    }
}
