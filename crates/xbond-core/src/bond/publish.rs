//! Building the [`TxPlan`] the workers read from the bond's state: which
//! slaves transmit (LACP's distributing ports, the usable slaves, or the
//! active one), which receive, the MACs and the TLB table, and the plan
//! version that [`BondEvent::PlanChanged`] announces.

use super::mode::ModeState;
use super::{Bond, BondEvent};
use crate::lacp::Lacp;
use crate::options::Mode;
use crate::plan::TxPlan;
use crate::wire::{ETH_HLEN, VLAN_HLEN};

impl Bond {
    /// The plan the workers should use now.
    pub fn tx_plan(&self) -> TxPlan {
        let mut plan = TxPlan::empty(self.cfg.mode);
        plan.version = self.plan_version;
        plan.policy = self.cfg.xmit_hash_policy;
        plan.function = self.cfg.xmit_hash_function;
        plan.packets_per_slave = self.cfg.packets_per_slave;
        plan.active = self.active.map(|a| a as u8);
        plan.tap_arp = self.mode.arp().is_some() || self.mode.rlb().is_some();
        plan.divert_host_arp = self.mode.rlb().is_some();
        plan.bond_mac = self.bond_mac;
        if let Some(mtu) = self.mtu {
            plan.max_frame = mtu as usize + ETH_HLEN + VLAN_HLEN;
        }
        for (m, s) in plan.slave_macs.iter_mut().zip(&self.slaves) {
            *m = s.mac;
        }
        if let Some(t) = self.mode.tlb() {
            plan.tlb_table = t.table();
        }
        let hashing = matches!(self.cfg.mode, Mode::BalanceXor | Mode::Ieee8023ad);
        let mut push = |i: usize| {
            plan.tx_slaves[usize::from(plan.tx_count)] = i as u8;
            plan.tx_count += 1;
        };
        let usable = || {
            self.slaves
                .iter()
                .enumerate()
                .filter(|(_, s)| s.link.usable())
                .map(|(i, _)| i)
        };
        match &self.mode {
            ModeState::Lacp { engine } => engine.tx_ports().for_each(&mut push),
            ModeState::ActiveBackup { .. } => self.active.into_iter().for_each(&mut push),
            ModeState::Tlb { .. } | ModeState::Alb { .. } | ModeState::Static { .. } => {
                usable().for_each(&mut push)
            }
        }
        let all = if self.slaves.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.slaves.len()) - 1
        };
        let collecting = |l: &Lacp| {
            (0..self.slaves.len().min(32))
                .filter(|&i| l.collecting(i))
                .fold(0u32, |m, i| m | 1 << i)
        };
        plan.rx_mask = match (self.cfg.mode, self.active) {
            (Mode::Ieee8023ad, _) => self.mode.lacp().map_or(0, collecting),
            // balance-tlb receives on the active slave; balance-alb on every
            // slave (the workers keep only frames sent to a slave's own MAC on
            // the others).
            (Mode::BalanceTlb, Some(a)) => 1 << a,
            (Mode::BalanceTlb, None) => 0,
            (Mode::BalanceAlb, _) => all,
            (Mode::ActiveBackup, _) if self.cfg.all_slaves_active => all,
            (Mode::ActiveBackup, Some(a)) => 1 << a,
            (Mode::ActiveBackup, None) => 0,
            _ => all,
        };
        if !self.carrier && (self.cfg.min_links > 0 || self.mode.lacp().is_some()) {
            // The upper port has no carrier: neither send nor deliver, so no
            // stale frames burst out when it comes back.
            plan.tx_count = 0;
            plan.rx_mask = 0;
        }
        if hashing {
            let n = usize::from(plan.tx_count);
            if let Some(t) = self.hash.table(n) {
                plan.hash_table = *t;
                plan.hash_rebalanced = true;
            }
        }
        plan
    }

    /// Makes a new plan version and tells the runtime to publish it.
    pub(super) fn publish(&mut self) {
        self.plan_version += 1;
        self.events.push_back(BondEvent::PlanChanged);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::test_util::{bond, cfg, drain};
    use crate::bond::BondEvent;
    use crate::options::Mode;

    #[test]
    fn carrier_follows_usable_links_and_min_links() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::BalanceRr);
        c.min_links = 2;
        let mut b = bond(c, t0);
        assert!(!b.carrier());
        b.handle_carrier(0, true, t0);
        assert!(!b.carrier(), "one link is below min_links");
        assert_eq!(b.tx_plan().tx_count, 0);
        b.handle_carrier(1, true, t0);
        assert!(b.carrier());
        assert_eq!(b.tx_plan().tx_slaves(), &[0, 1]);
        b.handle_carrier(0, false, t0);
        assert!(!b.carrier());
        let ev = drain(&mut b);
        assert!(ev.contains(&BondEvent::Carrier(false)));
    }
}
