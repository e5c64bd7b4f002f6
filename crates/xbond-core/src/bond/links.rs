//! The link monitor: each slave's [`LinkState`], moved by carrier readings
//! and the ARP/NS monitor through `updelay`/`downdelay`, and the `miimon`
//! poll timer. `link_signal` inspects what the monitors see (combined by
//! `link_watch_policy`), `apply_signal` picks the next state and
//! `commit_link` records it, tells LACP and reselects.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::mode::ModeState;
use super::{Bond, BondEvent, LinkNote, Transmit};
use crate::monitor::Role;
use crate::options::{LinkWatchPolicy, MacAddr, Mode};
use crate::timer::Timer;

/// Link state of a slave, as the kernel's `BOND_LINK_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Carrier present and believed.
    Up,
    /// Carrier lost; `downdelay` runs until `until`.
    Fail {
        /// When the link is declared down if carrier stays away.
        until: Instant,
    },
    /// Link down.
    Down,
    /// Carrier back; `updelay` runs until `until`.
    Back {
        /// When the link is declared up if carrier stays.
        until: Instant,
    },
}

impl LinkState {
    /// Whether a slave in this state carries traffic: up, or still within its
    /// downdelay (as the kernel, which keeps using a failing link until the
    /// delay has run out).
    pub fn usable(self) -> bool {
        matches!(self, LinkState::Up | LinkState::Fail { .. })
    }

    /// The kernel's `/proc` spelling of the state.
    pub fn proc_name(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Fail { .. } => "going down",
            LinkState::Down => "down",
            LinkState::Back { .. } => "going back",
        }
    }

    /// When the running up/down delay ends, if one runs.
    fn delay_ends(self) -> Option<Instant> {
        match self {
            LinkState::Fail { until } | LinkState::Back { until } => Some(until),
            LinkState::Up | LinkState::Down => None,
        }
    }
}

/// The `miimon` poll timer: running every `miimon` ms, stopped when it is 0.
pub(super) fn mii_timer(miimon: u32, now: Instant) -> Timer {
    if miimon > 0 {
        Timer::Running {
            expires_at: now + Duration::from_millis(u64::from(miimon)),
        }
    } else {
        Timer::Stopped
    }
}

impl Bond {
    /// A carrier reading for `slave` (from a netlink event or a poll). Readings
    /// that change nothing are ignored.
    pub fn handle_carrier(&mut self, slave: usize, carrier: bool, now: Instant) {
        let Some(s) = self.slaves.get_mut(slave) else {
            return;
        };
        s.carrier = carrier;
        let signal = self.link_signal(slave);
        self.apply_signal(slave, signal, now);
    }

    /// An ARP or IPv6 ND frame received on `slave` (tapped by the data path):
    /// proof of life for the ARP/NS monitor.
    pub fn handle_arp_frame(&mut self, slave: usize, frame: &[u8], now: Instant) {
        if let Some(r) = self.mode.rlb_mut() {
            r.learn_from_peer(frame, now);
        }
        let role = self.role(slave);
        // Probes through a VLAN device go from its address: replies to it
        // are to us too.
        let (mut ours4, mut ours6) = (self.ipv4.clone(), self.ipv6.clone());
        for p in &self.probe_paths {
            match p.source {
                std::net::IpAddr::V4(a) => ours4.push(a),
                std::net::IpAddr::V6(a) => ours6.push(a),
            }
        }
        if let Some(arp) = self.mode.arp_mut() {
            arp.handle_frame(slave, role, frame, &ours4, &ours6, now);
        }
    }

    /// Frames were received on `slave` (from the data path's counters): proof
    /// of life where `arp_validate` does not validate.
    pub fn note_rx(&mut self, slave: usize, now: Instant) {
        if let Some(arp) = self.mode.arp_mut() {
            arp.note_rx(slave, now);
        }
    }

    /// Whether an ARP/NS monitor runs (the runtime then taps ARP/ND frames).
    pub fn arp_monitoring(&self) -> bool {
        self.mode.arp().is_some()
    }

    /// What the ARP/NS monitor says about a slave (None without one).
    pub fn arp_up(&self, slave: usize) -> Option<bool> {
        self.mode.arp().map(|a| a.is_up(slave))
    }

    /// What the configured monitors say about a slave's link, combined by
    /// `link_watch_policy`. Carrier counts when `miimon` is set or no ARP/NS
    /// monitor runs; with only an ARP/NS monitor, carrier is not consulted
    /// (as in the kernel).
    fn link_signal(&self, slave: usize) -> bool {
        let carrier = self.slaves[slave].carrier;
        let Some(arp) = self.mode.arp() else {
            return carrier;
        };
        let arp_up = arp.is_up(slave);
        if self.cfg.miimon == 0 {
            return arp_up;
        }
        match self.cfg.link_watch_policy {
            Some(LinkWatchPolicy::Any) => carrier || arp_up,
            _ => carrier && arp_up,
        }
    }

    /// Moves a slave's link state toward `signal`, through updelay/downdelay.
    fn apply_signal(&mut self, slave: usize, signal: bool, now: Instant) {
        let carrier = signal;
        let s = &self.slaves[slave];
        let updelay = Duration::from_millis(u64::from(self.cfg.updelay));
        let downdelay = Duration::from_millis(u64::from(self.cfg.downdelay));
        let next = match (s.link, carrier) {
            (LinkState::Up, false) if downdelay.is_zero() => Some(LinkState::Down),
            (LinkState::Up, false) => Some(LinkState::Fail {
                until: now + downdelay,
            }),
            // Carrier came back before downdelay ran out: the link never went down.
            (LinkState::Fail { .. }, true) => Some(LinkState::Up),
            (LinkState::Down, true) if updelay.is_zero() => Some(LinkState::Up),
            (LinkState::Down, true) => Some(LinkState::Back {
                until: now + updelay,
            }),
            (LinkState::Back { .. }, false) => Some(LinkState::Down),
            _ => None,
        };
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let note = match (s.link, next) {
            (LinkState::Up, Some(LinkState::Fail { .. })) => Some(LinkNote::DownIn(ms(downdelay))),
            (LinkState::Fail { until }, Some(LinkState::Up)) => Some(LinkNote::UpAgain(ms(
                downdelay.saturating_sub(until.saturating_duration_since(now)),
            ))),
            (LinkState::Down, Some(LinkState::Back { .. })) => Some(LinkNote::UpIn(ms(updelay))),
            (LinkState::Back { until }, Some(LinkState::Down)) => Some(LinkNote::DownAgain(ms(
                updelay.saturating_sub(until.saturating_duration_since(now)),
            ))),
            _ => None,
        };
        if let Some(note) = note {
            self.events.push_back(BondEvent::LinkDelay { slave, note });
        }
        if let Some(next) = next {
            self.commit_link(slave, next, now);
        }
    }

    fn commit_link(&mut self, slave: usize, next: LinkState, now: Instant) {
        let s = &mut self.slaves[slave];
        let was_up = s.link.usable();
        let is_up = next.usable();
        s.link = next;
        if was_up && !is_up {
            s.link_failure_count = s.link_failure_count.saturating_add(1);
        }
        if was_up != is_up {
            self.events.push_back(BondEvent::Link { slave, up: is_up });
        }
        // LACP sees the link after up/down delays, as in the kernel.
        if let ModeState::Lacp { engine } = &mut self.mode {
            engine.set_port_enabled(slave, is_up, now);
        }
        self.reselect(now);
    }

    /// Commits every link whose updelay or downdelay has run out.
    pub(super) fn expire_link_delays(&mut self, now: Instant) {
        for i in 0..self.slaves.len() {
            match self.slaves[i].link {
                LinkState::Fail { until } if until <= now => {
                    self.commit_link(i, LinkState::Down, now)
                }
                LinkState::Back { until } if until <= now => {
                    self.commit_link(i, LinkState::Up, now)
                }
                _ => {}
            }
        }
    }

    /// The earliest deadline of the link monitor: an up/down delay, the ARP/NS
    /// monitor's next interval or the next `miimon` poll.
    pub(super) fn link_deadline(&self) -> Option<Instant> {
        self.slaves
            .iter()
            .filter_map(|s| s.link.delay_ends())
            .chain(self.mii_timer.deadline())
            .chain(self.mode.arp().map(|a| a.next_tick()))
            .min()
    }

    /// Runs the ARP/NS monitor's interval if it is due.
    pub(super) fn arp_timeout(&mut self, now: Instant) {
        if self.mode.arp().is_some_and(|a| a.next_tick() <= now) {
            self.arp_tick(now);
        }
    }

    /// Asks the runtime for a `miimon` poll if one is due.
    pub(super) fn mii_timeout(&mut self, now: Instant) {
        if self.mii_timer.due(now) {
            self.events.push_back(BondEvent::PollLinks);
            self.mii_timer = mii_timer(self.cfg.miimon, now);
        }
    }

    fn role(&self, slave: usize) -> Role {
        if self.cfg.mode == Mode::ActiveBackup && self.active != Some(slave) {
            Role::Backup
        } else {
            Role::Active
        }
    }

    /// One ARP/NS monitor interval: queue the probes, then move every
    /// slave's link toward what the monitors now say.
    fn arp_tick(&mut self, now: Instant) {
        let roles: Vec<Role> = (0..self.slaves.len()).map(|i| self.role(i)).collect();
        let macs: Vec<MacAddr> = self.slaves.iter().map(|s| s.mac).collect();
        let src4 = self.ipv4.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
        // Prefer a global address as the source of solicitations.
        let src6 = self
            .ipv6
            .iter()
            .find(|a| a.segments()[0] & 0xffc0 != 0xfe80)
            .or(self.ipv6.first())
            .copied()
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        let Some(arp) = self.mode.arp_mut() else {
            return;
        };
        for p in arp.tick(&roles, &macs, src4, src6, now) {
            self.transmits.push_back(Transmit {
                slave: p.slave,
                frame: p.frame,
            });
        }
        for i in 0..self.slaves.len() {
            let signal = self.link_signal(i);
            self.apply_signal(i, signal, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use super::super::test_util::{bond, cfg, drain, transmits};
    use crate::bond::BondEvent;
    use crate::options::{MacAddr, Mode};

    #[test]
    fn updelay_is_honoured_unless_no_other_link() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.updelay = 200;
        c.primary = Some("eno1".into());
        let mut b = bond(c, t0);
        // No link up at all: the first returning link is used at once.
        b.handle_carrier(1, true, t0);
        assert_eq!(b.active(), Some(1));
        // The primary comes back, but must wait 200 ms.
        b.handle_carrier(0, true, t0);
        assert_eq!(b.active(), Some(1));
        b.handle_timeout(t0 + Duration::from_millis(199));
        assert_eq!(b.active(), Some(1));
        b.handle_timeout(t0 + Duration::from_millis(200));
        assert_eq!(b.active(), Some(0));
    }

    #[test]
    fn downdelay_ignores_short_flaps() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.downdelay = 300;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        b.handle_carrier(0, false, t0);
        assert_eq!(b.slaves()[0].link.proc_name(), "going down");
        b.handle_carrier(0, true, t0 + Duration::from_millis(100));
        assert_eq!(b.active(), Some(0));
        assert_eq!(b.slaves()[0].link_failure_count, 0);
        b.handle_carrier(0, false, t0 + Duration::from_millis(200));
        b.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(b.active(), Some(1));
        assert_eq!(b.slaves()[0].link_failure_count, 1);
    }

    #[test]
    fn arp_monitor_fails_over_when_the_target_stops_answering_despite_carrier() {
        use crate::wire::{arp_frame, ARPOP_REPLY};
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.miimon = 0;
        c.arp_interval = 100;
        c.arp_ip_target = vec![Ipv4Addr::new(10, 0, 0, 254)];
        c.arp_validate = crate::config::ArpValidate::None;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        assert_eq!(
            b.active(),
            None,
            "carrier alone proves nothing to an ARP-only bond"
        );
        let reply = arp_frame(
            ARPOP_REPLY,
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 9]),
            Ipv4Addr::new(10, 0, 0, 254),
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 0, 0, 1),
            0,
        );
        let mut t = t0;
        for _ in 0..3 {
            t += Duration::from_millis(100);
            b.handle_arp_frame(0, &reply, t - Duration::from_millis(10));
            b.note_rx(1, t - Duration::from_millis(10));
            b.handle_timeout(t);
        }
        assert_eq!(b.active(), Some(0));
        assert!(
            transmits(&mut b)
                .iter()
                .any(|x| x.slave == 0 && x.frame[12..14] == [8, 6]),
            "probes on the active slave"
        );
        // The target goes quiet on slave 0; slave 1 keeps seeing traffic.
        let quiet = t;
        while t < quiet + Duration::from_millis(400) {
            t += Duration::from_millis(100);
            b.note_rx(1, t - Duration::from_millis(10));
            b.handle_timeout(t);
        }
        assert_eq!(
            b.active(),
            Some(1),
            "failed over after arp_interval × arp_missed_max"
        );
        assert_eq!(b.slaves()[0].link_failure_count, 1);
        assert!(b.slaves()[0].carrier, "carrier never went away");
    }

    #[test]
    fn link_watch_policy_combines_carrier_and_arp() {
        use crate::options::LinkWatchPolicy;
        let t0 = Instant::now();
        for (policy, up_with_carrier_only) in
            [(LinkWatchPolicy::All, false), (LinkWatchPolicy::Any, true)]
        {
            let mut c = cfg(Mode::BalanceRr);
            c.miimon = 100;
            c.arp_interval = 100;
            c.arp_ip_target = vec![Ipv4Addr::new(10, 0, 0, 254)];
            c.link_watch_policy = Some(policy);
            let mut b = bond(c, t0);
            // Carrier, but the ARP target never answers.
            b.handle_carrier(0, true, t0);
            b.handle_timeout(t0 + Duration::from_millis(100));
            let up = b.slaves()[0].link.usable();
            assert_eq!(up, up_with_carrier_only, "{policy}");
        }
    }

    #[test]
    fn miimon_asks_for_polls() {
        let t0 = Instant::now();
        let mut b = bond(cfg(Mode::Broadcast), t0);
        drain(&mut b);
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        b.handle_timeout(t0 + Duration::from_millis(100));
        assert_eq!(drain(&mut b), vec![BondEvent::PollLinks]);
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(200)));
    }
}
