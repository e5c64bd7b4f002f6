//! What keeps the switches' forwarding tables right in `balance-tlb` and
//! `balance-alb`: the learning packets sent from each slave's MAC
//! ([`learning_packet`]) every `lp_interval` ([`LearningTimer`]), and the MAC
//! moves between slaves on failover ([`swap_on_failover`]) that they follow.

use std::time::{Duration, Instant};

use crate::options::MacAddr;
use crate::timer::Timer;
use crate::wire::{push_eth_header, ETH_HLEN, ETH_ZLEN};

/// EtherType of the learning packets (kernel `ETH_P_LOOPBACK`).
pub const ETH_P_LOOPBACK: u16 = 0x9000;

/// A learning packet for `slave_mac` (kernel `alb_send_lp_vid`): destination
/// and source both the slave's MAC, EtherType [`ETH_P_LOOPBACK`], zero
/// padding; 60 bytes, or 64 with the 802.1Q tag for a non-zero `vlan`. It
/// makes switches learn (again) which port a MAC is behind.
pub fn learning_packet(slave_mac: MacAddr, vlan: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    push_eth_header(&mut f, slave_mac, slave_mac, vlan, ETH_P_LOOPBACK);
    f.resize(f.len() + (ETH_ZLEN - ETH_HLEN), 0);
    f
}

/// When to send learning packets: every `lp_interval` (kernel
/// `bond_alb_monitor`).
#[derive(Debug, Clone)]
pub struct LearningTimer {
    interval: Duration,
    timer: Timer,
}

impl LearningTimer {
    /// First due `lp_interval` after `now`. An interval under one second is
    /// taken as one second, the kernel's minimum `lp_interval`.
    pub fn new(lp_interval: Duration, now: Instant) -> LearningTimer {
        let interval = lp_interval.max(Duration::from_secs(1));
        LearningTimer {
            interval,
            timer: Timer::start(now, interval),
        }
    }

    /// The interval in use.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// True when the packets are due; re-arms for `lp_interval` after `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.timer.due(now) {
            self.timer = Timer::start(now, self.interval);
            true
        } else {
            false
        }
    }

    /// When [`LearningTimer::due`] next returns true.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.deadline()
    }
}

/// The MAC moves when `new_active` becomes the active slave (kernel
/// `alb_swap_mac_addr` / `alb_fasten_mac_swap`): it takes `bond_mac`, and the
/// slave that held `bond_mac` takes the new active slave's old MAC. Applies
/// the moves to `macs` and returns them, `(slave, new MAC)`, for the runtime
/// to program. Nothing moves when `new_active` already has the bond MAC or is
/// out of range. If `macs` are all different on entry they still are after.
pub fn swap_on_failover(
    macs: &mut [MacAddr],
    bond_mac: MacAddr,
    new_active: usize,
) -> Vec<(usize, MacAddr)> {
    let Some(&old) = macs.get(new_active) else {
        return Vec::new();
    };
    if old == bond_mac {
        return Vec::new();
    }
    let mut changes = vec![(new_active, bond_mac)];
    let holder = macs
        .iter()
        .enumerate()
        .position(|(i, m)| i != new_active && *m == bond_mac);
    if let Some(h) = holder {
        if let Some(m) = macs.get_mut(h) {
            *m = old;
            changes.push((h, old));
        }
    }
    if let Some(m) = macs.get_mut(new_active) {
        *m = bond_mac;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::fixtures::mac;
    use crate::wire::EthInfo;

    #[test]
    fn learning_packet_layout() {
        let f = learning_packet(mac(0x10), 0);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[..6], &mac(0x10).0);
        assert_eq!(&f[6..12], &mac(0x10).0);
        assert_eq!(&f[12..14], &[0x90, 0x00]);
        assert!(f[14..].iter().all(|&b| b == 0));
        let f = learning_packet(mac(0x10), 100);
        assert_eq!(f.len(), 64);
        let eth = EthInfo::parse(&f).unwrap();
        assert_eq!((eth.vlan, eth.ethertype), (100, ETH_P_LOOPBACK));
    }

    #[test]
    fn learning_timer_rearms() {
        let t0 = Instant::now();
        let mut lt = LearningTimer::new(Duration::from_secs(1), t0);
        assert!(!lt.due(t0));
        assert!(!lt.due(t0 + Duration::from_millis(999)));
        assert!(lt.due(t0 + Duration::from_secs(1)));
        assert!(!lt.due(t0 + Duration::from_millis(1500)));
        assert_eq!(lt.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        assert!(lt.due(t0 + Duration::from_secs(2)));
        let lt = LearningTimer::new(Duration::ZERO, t0);
        assert_eq!(lt.interval(), Duration::from_secs(1));
    }

    #[test]
    fn swap_never_leaves_two_slaves_with_one_mac() {
        let bond = MacAddr([0x02, 0xbb, 0, 0, 0, 0]);
        for n in 1..=5usize {
            // `holder`: which slave has the bond MAC (n: none).
            for holder in 0..=n {
                for new_active in 0..=n {
                    let mut macs: Vec<MacAddr> = (0..n).map(|i| mac(i as u8)).collect();
                    if holder < n {
                        macs[holder] = bond;
                    }
                    let before = macs.clone();
                    let changes = swap_on_failover(&mut macs, bond, new_active);
                    let mut sorted = macs.clone();
                    sorted.sort_by_key(|m| m.0);
                    sorted.dedup();
                    assert_eq!(sorted.len(), n, "{before:?} -> {macs:?}");
                    if new_active < n {
                        assert_eq!(macs[new_active], bond);
                    } else {
                        assert!(changes.is_empty());
                    }
                    let mut replay = before.clone();
                    for (i, m) in &changes {
                        replay[*i] = *m;
                    }
                    assert_eq!(replay, macs, "the changes are what happened");
                    if holder < n && holder != new_active && new_active < n {
                        assert_eq!(macs[holder], before[new_active], "a swap");
                    }
                }
            }
        }
    }
}
