//! The ARP and IPv6 NS link monitors (`arp_interval`, `arp_ip_target`,
//! `ns_ip6_target`, `arp_validate`, `arp_all_targets`, `arp_missed_max`).
//!
//! Every `arp_interval` the monitor asks for probes (ARP requests and
//! neighbour solicitations to each target, from the bond's address) and
//! decides, per slave, whether it has shown proof of life recently enough:
//! a slave that was down comes up when it has proof within the last
//! interval; a slave that was up goes down when it has had none for
//! `arp_interval × arp_missed_max`.
//!
//! What counts as proof follows the kernel's `bond_arp_rcv` /
//! `bond_validate_arp`: on a slave whose role `arp_validate` validates, only
//! ARP (or NA/NS) traffic that involves a target and the bond counts — a
//! reply from a target on the active slave, or on a backup also the active
//! slave's own probe seen through the switch; with `arp_all_targets all`
//! every target must have answered. On other slaves any received frame
//! counts, or any ARP frame with the `filter` values.
//!
//! Probes go out on the slaves whose role is Active (every slave in the
//! load-balancing modes); in active-backup with no active slave they go out
//! on one slave per interval in turn, as the kernel's `curr_arp_slave` does:
//! probing on every slave at once, all carrying the bond MAC, would make the
//! switch's MAC table flap and send replies to the wrong slave.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::{ArpAllTargets, ArpValidate};
use crate::wire::{self, MacAddr, NdKind};

/// A monitored target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An `arp_ip_target`.
    V4(Ipv4Addr),
    /// An `ns_ip6_target`.
    V6(Ipv6Addr),
}

/// How a target is reached: through bond0 itself, or through a VLAN
/// device stacked on it (the kernel's `bond_verify_device_path`), whose tag
/// and address the probes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePath {
    /// The target (an `arp_ip_target` or an `ns_ip6_target`).
    pub target: std::net::IpAddr,
    /// The VLAN on the way (0: untagged).
    pub vlan: u16,
    /// The probes' source: the address of the device the route leaves by.
    pub source: std::net::IpAddr,
}

/// A slave's role, for `arp_validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The active slave (or any slave in modes without one).
    Active,
    /// A backup slave of active-backup.
    Backup,
}

#[derive(Debug, Clone, Default)]
struct SlaveProof {
    per_target: Vec<Option<Instant>>,
    any_arp: Option<Instant>,
    any: Option<Instant>,
    up: bool,
    /// The role at the last tick.
    was_active: bool,
    /// Active slave that has had a validated reply since it became active:
    /// only then do backups trust the active slave's probes as proof (the
    /// kernel's `bond_arp_rcv` checks the same).
    trusted: bool,
}

/// The monitor's state.
#[derive(Debug, Clone)]
pub struct ArpMonitor {
    interval: Duration,
    missed_max: u32,
    validate: ArpValidate,
    all_targets: bool,
    targets: Vec<Target>,
    slaves: Vec<SlaveProof>,
    next_tick: Instant,
    /// The slave that probes next while none is active.
    rotate: usize,
    /// Targets reached through a device stacked on bond0.
    paths: Vec<ProbePath>,
}

/// A probe to send: on `slave`, the whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Slave index.
    pub slave: usize,
    /// The frame.
    pub frame: Vec<u8>,
}

impl ArpMonitor {
    /// A monitor for `n_slaves` slaves; every slave starts down (no proof).
    #[allow(clippy::too_many_arguments)] // The kernel's option set, one argument each.
    pub fn new(
        interval_ms: u32,
        missed_max: u8,
        validate: ArpValidate,
        all_targets: ArpAllTargets,
        v4: &[Ipv4Addr],
        v6: &[Ipv6Addr],
        n_slaves: usize,
        now: Instant,
    ) -> ArpMonitor {
        let targets: Vec<Target> = v4
            .iter()
            .map(|a| Target::V4(*a))
            .chain(v6.iter().map(|a| Target::V6(*a)))
            .collect();
        ArpMonitor {
            interval: Duration::from_millis(u64::from(interval_ms.max(1))),
            missed_max: u32::from(missed_max.max(1)),
            validate,
            all_targets: all_targets == ArpAllTargets::All,
            slaves: (0..n_slaves)
                .map(|_| SlaveProof {
                    per_target: vec![None; targets.len()],
                    ..SlaveProof::default()
                })
                .collect(),
            targets,
            next_tick: now,
            rotate: 0,
            paths: Vec::new(),
        }
    }

    /// Takes over what `old` proved of each slave (a monitor whose options
    /// changed at run time): its state, and the replies from the targets
    /// both have.
    pub fn keep_proof(&mut self, old: &ArpMonitor) {
        let map: Vec<Option<usize>> = (0..old.slaves.len()).map(Some).collect();
        self.keep_proof_of(old, &map);
    }

    /// As [`ArpMonitor::keep_proof`], with old slave `i` now at `map[i]`
    /// (`None`: released): slaves were added or released.
    pub fn keep_proof_of(&mut self, old: &ArpMonitor, map: &[Option<usize>]) {
        for (i, was) in old.slaves.iter().enumerate() {
            let Some(j) = map
                .get(i)
                .copied()
                .flatten()
                .filter(|&j| j < self.slaves.len())
            else {
                continue;
            };
            let per_target = self
                .targets
                .iter()
                .map(|t| {
                    old.targets
                        .iter()
                        .position(|o| o == t)
                        .and_then(|t| was.per_target.get(t).copied().flatten())
                })
                .collect();
            self.slaves[j] = SlaveProof {
                per_target,
                ..was.clone()
            };
        }
        self.rotate = old.rotate % self.slaves.len().max(1);
        self.paths = old.paths.clone();
    }

    /// Counts `slave` as up, with proof as of `now` (a monitor started at
    /// run time over links that are up: they go down only when it has
    /// missed `arp_missed_max` intervals of proof).
    pub fn assume_up(&mut self, slave: usize, now: Instant) {
        if let Some(s) = self.slaves.get_mut(slave) {
            s.up = true;
            s.any = Some(now);
            s.any_arp = Some(now);
            s.per_target.iter_mut().for_each(|t| *t = Some(now));
        }
    }

    /// Whether the monitor says `slave` is up.
    pub fn is_up(&self, slave: usize) -> bool {
        self.slaves.get(slave).is_some_and(|s| s.up)
    }

    /// When [`ArpMonitor::tick`] is next due.
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// `arp_validate` applies to a slave in this role.
    fn validates(&self, role: Role) -> bool {
        use ArpValidate::*;
        match role {
            Role::Active => matches!(self.validate, Active | All | FilterActive),
            Role::Backup => matches!(self.validate, Backup | All | FilterBackup),
        }
    }

    fn filters(&self) -> bool {
        matches!(
            self.validate,
            ArpValidate::Filter | ArpValidate::FilterActive | ArpValidate::FilterBackup
        )
    }

    /// Any frame was received on `slave` (from the data path's counters).
    pub fn note_rx(&mut self, slave: usize, now: Instant) {
        if let Some(s) = self.slaves.get_mut(slave) {
            s.any = Some(now);
        }
    }

    /// An ARP or ND frame received on `slave`, which had `role`. `ours` are
    /// the bond's addresses.
    pub fn handle_frame(
        &mut self,
        slave: usize,
        role: Role,
        frame: &[u8],
        ours4: &[Ipv4Addr],
        ours6: &[Ipv6Addr],
        now: Instant,
    ) {
        // A backup takes the active slave's probes (seen through the switch)
        // as proof only while the active slave is itself getting replies;
        // otherwise a dead target would leave the slaves proving each other.
        let active_trusted = self.slaves.iter().any(|p| p.was_active && p.trusted);
        let via_probe = role == Role::Backup && active_trusted;
        let Some(s) = self.slaves.get_mut(slave) else {
            return;
        };
        s.any = Some(now);
        // Which target does this frame prove, if any?
        let hit = if let Some(a) = wire::parse_arp(frame) {
            s.any_arp = Some(now);
            let from_target = self.targets.iter().position(|t| *t == Target::V4(a.spa));
            let to_us = ours4.contains(&a.tpa) || (ours4.is_empty() && a.tpa.is_unspecified());
            let our_probe = self.targets.iter().position(|t| *t == Target::V4(a.tpa));
            let from_us = ours4.contains(&a.spa);
            match (from_target, to_us, our_probe, from_us) {
                (_, _, Some(i), true) if via_probe => Some(i),
                (Some(i), true, _, _) if !via_probe => Some(i),
                _ => None,
            }
        } else if let Some(nd) = wire::parse_nd(frame) {
            s.any_arp = Some(now);
            let target_of = |ip: Ipv6Addr| self.targets.iter().position(|t| *t == Target::V6(ip));
            let to_us = ours6.contains(&nd.dst) || nd.dst.segments()[0] == 0xff02;
            match nd.kind {
                // An NA about a target, from the target, to us or all nodes.
                NdKind::Advertisement if !via_probe && nd.src == nd.target && to_us => {
                    target_of(nd.target)
                }
                // Our active slave's solicitation, seen on a backup.
                NdKind::Solicitation if via_probe && ours6.contains(&nd.src) => {
                    target_of(nd.target)
                }
                _ => None,
            }
        } else {
            None
        };
        if hit.is_some() && role == Role::Active && !via_probe {
            self.slaves[slave].trusted = true;
        }
        if let Some(i) = hit {
            if let Some(t) = self.slaves[slave].per_target.get_mut(i) {
                *t = Some(now);
            }
        }
    }

    fn proof(&self, slave: usize, role: Role) -> Option<Instant> {
        let s = &self.slaves[slave];
        if self.validates(role) {
            if self.all_targets {
                // Every target must have answered: the oldest answer counts.
                s.per_target
                    .iter()
                    .copied()
                    .try_fold(None::<Instant>, |acc, t| {
                        let t = t?;
                        Some(Some(acc.map_or(t, |a| a.min(t))))
                    })?
            } else {
                s.per_target.iter().flatten().max().copied()
            }
        } else if self.filters() {
            s.any_arp
        } else {
            s.any
        }
    }

    /// Sets how each target is reached (targets with no path are probed
    /// untagged from the bond's address).
    pub fn set_paths(&mut self, paths: Vec<ProbePath>) {
        self.paths = paths;
    }

    /// Runs one interval: decides every slave's state from its proof and
    /// returns the probes to send. `roles[i]` is slave i's role (all Backup:
    /// active-backup with no active slave); `source4`/`source6` are the
    /// bond's addresses (unspecified when it has none); `macs[i]` is slave
    /// i's MAC.
    pub fn tick(
        &mut self,
        roles: &[Role],
        macs: &[MacAddr],
        source4: Ipv4Addr,
        source6: Ipv6Addr,
        now: Instant,
    ) -> Vec<Probe> {
        self.next_tick = now + self.interval;
        let stay_active = self.interval * self.missed_max;
        // Backups get one interval more (`bond_ab_arp_inspect`), so that the
        // backup a failover needs is not lost in the same tick as the active.
        let stay_backup = self.interval * (self.missed_max + 1);
        // Coming up needs proof from the last interval; a little slack covers
        // the probe's round trip landing just before this tick.
        let come = self.interval + self.interval / 2;
        for i in 0..self.slaves.len() {
            let role = roles.get(i).copied().unwrap_or(Role::Active);
            let active = role == Role::Active;
            let s = &mut self.slaves[i];
            if active != s.was_active {
                // A new active slave is trusted once it gets a reply.
                s.trusted = false;
            }
            if active && !s.was_active && s.up {
                // A backup just became active: it starts probing only now, so
                // it gets missed_max intervals to answer before it is judged
                // by replies (the kernel skips a new active slave for two
                // intervals after `last_link_up`).
                // Whatever counts as proof: with arp_validate none or filter
                // it is the last frame, which a backup that got nothing since
                // the active path died has aged past missed_max already.
                for t in s.per_target.iter_mut() {
                    *t = Some(now);
                }
                s.any = Some(now);
                s.any_arp = Some(now);
            }
            s.was_active = active;
            let age = self
                .proof(i, role)
                .map(|t| now.saturating_duration_since(t));
            let s = &mut self.slaves[i];
            let stay = if active { stay_active } else { stay_backup };
            s.up = match (s.up, age) {
                (true, Some(a)) => a <= stay,
                (false, Some(a)) => a <= come,
                (_, None) => false,
            };
        }
        let n = macs.len().min(self.slaves.len());
        let no_active = n > 0 && (0..n).all(|i| roles.get(i) == Some(&Role::Backup));
        let turn = if no_active {
            let t = self.rotate % n;
            self.rotate = (t + 1) % n;
            Some(t)
        } else {
            None
        };
        let mut probes = Vec::new();
        for (i, mac) in macs.iter().enumerate().take(n) {
            let role = roles.get(i).copied().unwrap_or(Role::Active);
            let probes_now = match turn {
                Some(t) => t == i,
                None => role == Role::Active,
            };
            if !probes_now {
                continue;
            }
            for t in &self.targets {
                let path = |ip: std::net::IpAddr| self.paths.iter().find(|p| p.target == ip);
                let frame = match t {
                    Target::V4(ip) => match path((*ip).into()) {
                        Some(&ProbePath {
                            vlan,
                            source: std::net::IpAddr::V4(src),
                            ..
                        }) => wire::arp_request(*mac, src, *ip, vlan),
                        _ => wire::arp_request(*mac, source4, *ip, 0),
                    },
                    Target::V6(ip) => match path((*ip).into()) {
                        Some(&ProbePath {
                            vlan,
                            source: std::net::IpAddr::V6(src),
                            ..
                        }) => wire::neighbour_solicitation(*mac, src, *ip, vlan),
                        _ => wire::neighbour_solicitation(*mac, source6, *ip, 0),
                    },
                };
                probes.push(Probe { slave: i, frame });
            }
        }
        probes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{arp_frame, ARPOP_REPLY};

    const T: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    fn mac(i: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, i])
    }

    fn mon(
        validate: ArpValidate,
        all: ArpAllTargets,
        targets: &[Ipv4Addr],
        t0: Instant,
    ) -> ArpMonitor {
        ArpMonitor::new(100, 2, validate, all, targets, &[], 2, t0)
    }

    fn reply_from(t: Ipv4Addr) -> Vec<u8> {
        arp_frame(ARPOP_REPLY, mac(1), mac(9), t, mac(1), US, 0)
    }

    const AB: [Role; 2] = [Role::Active, Role::Backup];

    #[test]
    fn a_target_behind_a_vlan_device_is_probed_tagged_from_its_address() {
        let t0 = Instant::now();
        let other = Ipv4Addr::new(10, 9, 9, 9);
        let mut m = mon(ArpValidate::None, ArpAllTargets::Any, &[T, other], t0);
        let via_vlan = Ipv4Addr::new(10, 0, 0, 7);
        m.set_paths(vec![ProbePath {
            target: T.into(),
            vlan: 100,
            source: via_vlan.into(),
        }]);
        let probes = m.tick(&AB, &[mac(1), mac(2)], US, Ipv6Addr::UNSPECIFIED, t0);
        assert_eq!(probes.len(), 2);
        let tagged = &probes[0].frame;
        assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 100]);
        let a = wire::parse_arp(tagged).unwrap();
        assert_eq!((a.spa, a.tpa), (via_vlan, T));
        let plain = &probes[1].frame;
        assert_eq!(&plain[12..14], &[0x08, 0x06], "no path: untagged");
        assert_eq!(wire::parse_arp(plain).unwrap().spa, US);
    }

    #[test]
    fn replies_bring_a_slave_up_and_silence_takes_it_down_after_missed_max() {
        let t0 = Instant::now();
        let mut m = mon(ArpValidate::Active, ArpAllTargets::Any, &[T], t0);
        let none = [Role::Backup, Role::Backup];
        let first = m.tick(&none, &[mac(1), mac(2)], US, Ipv6Addr::UNSPECIFIED, t0);
        let second = m.tick(&none, &[mac(1), mac(2)], US, Ipv6Addr::UNSPECIFIED, t0);
        assert_eq!(
            (first.len(), second.len()),
            (1, 1),
            "no active slave: one probe per interval"
        );
        assert_ne!(first[0].slave, second[0].slave, "in turn");
        let probes = m.tick(&AB, &[mac(1), mac(2)], US, Ipv6Addr::UNSPECIFIED, t0);
        assert_eq!(probes.len(), 1);
        let p = wire::parse_arp(&probes[0].frame).unwrap();
        assert_eq!((p.spa, p.tpa, p.sha), (US, T, mac(1)));
        m.handle_frame(
            0,
            Role::Active,
            &reply_from(T),
            &[US],
            &[],
            t0 + Duration::from_millis(5),
        );
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(100),
        );
        assert!(m.is_up(0) && !m.is_up(1));
        let probes = m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(200),
        );
        assert!(
            probes.iter().all(|p| p.slave == 0),
            "only the active slave probes"
        );
        assert!(m.is_up(0), "proof 195 ms old, missed_max 2 × 100 ms");
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(300),
        );
        assert!(!m.is_up(0), "no reply for 295 ms");
    }

    #[test]
    fn validation_ignores_unrelated_traffic_on_validated_slaves() {
        let t0 = Instant::now();
        let mut m = mon(ArpValidate::All, ArpAllTargets::Any, &[T], t0);
        let other = arp_frame(
            ARPOP_REPLY,
            mac(1),
            mac(9),
            Ipv4Addr::new(10, 0, 0, 77),
            mac(1),
            US,
            0,
        );
        m.handle_frame(0, Role::Active, &other, &[US], &[], t0);
        m.note_rx(0, t0);
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(50),
        );
        assert!(!m.is_up(0), "a reply from a non-target is no proof");
        // The active slave gets a reply: it is trusted ...
        m.handle_frame(
            0,
            Role::Active,
            &reply_from(T),
            &[US],
            &[],
            t0 + Duration::from_millis(55),
        );
        // ... so a backup seeing its probe through the switch has proof.
        let probe = wire::arp_request(mac(1), US, T, 0);
        m.handle_frame(
            1,
            Role::Backup,
            &probe,
            &[US],
            &[],
            t0 + Duration::from_millis(60),
        );
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(100),
        );
        assert!(m.is_up(1));
    }

    #[test]
    fn none_and_filter_count_any_traffic_or_any_arp() {
        let t0 = Instant::now();
        let mut m = mon(ArpValidate::None, ArpAllTargets::Any, &[T], t0);
        m.note_rx(1, t0);
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(10),
        );
        assert!(m.is_up(1), "validate none: any frame proves the link");

        let mut m = mon(ArpValidate::Filter, ArpAllTargets::Any, &[T], t0);
        m.note_rx(1, t0);
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(10),
        );
        assert!(!m.is_up(1), "filter: only ARP counts");
        let unrelated = arp_frame(
            ARPOP_REPLY,
            mac(1),
            mac(9),
            Ipv4Addr::new(10, 0, 0, 77),
            mac(1),
            US,
            0,
        );
        m.handle_frame(1, Role::Backup, &unrelated, &[US], &[], t0);
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(20),
        );
        assert!(m.is_up(1));
    }

    #[test]
    fn all_targets_needs_every_target() {
        let t0 = Instant::now();
        let t2 = Ipv4Addr::new(10, 0, 0, 253);
        let mut m = mon(ArpValidate::Active, ArpAllTargets::All, &[T, t2], t0);
        m.handle_frame(0, Role::Active, &reply_from(T), &[US], &[], t0);
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(10),
        );
        assert!(!m.is_up(0));
        m.handle_frame(
            0,
            Role::Active,
            &reply_from(t2),
            &[US],
            &[],
            t0 + Duration::from_millis(20),
        );
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(30),
        );
        assert!(m.is_up(0));
        let mut any = mon(ArpValidate::Active, ArpAllTargets::Any, &[T, t2], t0);
        any.handle_frame(0, Role::Active, &reply_from(T), &[US], &[], t0);
        any.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(10),
        );
        assert!(any.is_up(0));
    }

    #[test]
    fn ns_monitor_uses_advertisements_from_the_target() {
        let t0 = Instant::now();
        let target: Ipv6Addr = "fd00::fe".parse().unwrap();
        let us6: Ipv6Addr = "fd00::1".parse().unwrap();
        let mut m = ArpMonitor::new(
            100,
            2,
            ArpValidate::All,
            ArpAllTargets::Any,
            &[],
            &[target],
            2,
            t0,
        );
        let probes = m.tick(&AB, &[mac(1), mac(2)], Ipv4Addr::UNSPECIFIED, us6, t0);
        let nd = wire::parse_nd(&probes[0].frame).unwrap();
        assert_eq!(
            (nd.kind, nd.src, nd.target),
            (NdKind::Solicitation, us6, target)
        );
        let na = wire::unsolicited_na(mac(9), target, 0);
        m.handle_frame(
            0,
            Role::Active,
            &na,
            &[],
            &[us6],
            t0 + Duration::from_millis(5),
        );
        m.handle_frame(
            1,
            Role::Backup,
            &probes[0].frame,
            &[],
            &[us6],
            t0 + Duration::from_millis(5),
        );
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            Ipv4Addr::UNSPECIFIED,
            us6,
            t0 + Duration::from_millis(100),
        );
        assert!(m.is_up(0) && m.is_up(1));
    }

    #[test]
    fn a_dead_target_takes_every_slave_down_without_flapping() {
        let t0 = Instant::now();
        let mut m = mon(ArpValidate::All, ArpAllTargets::Any, &[T], t0);
        let macs = [mac(1), mac(2)];
        let mut t = t0;
        // Healthy: the active slave gets replies, the backup sees its probes.
        for _ in 0..3 {
            t += Duration::from_millis(100);
            m.handle_frame(
                0,
                Role::Active,
                &reply_from(T),
                &[US],
                &[],
                t - Duration::from_millis(90),
            );
            m.handle_frame(
                1,
                Role::Backup,
                &wire::arp_request(mac(1), US, T, 0),
                &[US],
                &[],
                t - Duration::from_millis(90),
            );
            m.tick(&AB, &macs, US, Ipv6Addr::UNSPECIFIED, t);
        }
        assert!(m.is_up(0) && m.is_up(1));
        // The target dies. The active slave keeps probing and the backup keeps
        // seeing those probes, but they prove nothing any more.
        let mut ups = Vec::new();
        for _ in 0..20 {
            t += Duration::from_millis(100);
            m.handle_frame(
                1,
                Role::Backup,
                &wire::arp_request(mac(1), US, T, 0),
                &[US],
                &[],
                t - Duration::from_millis(90),
            );
            let roles = if m.is_up(0) {
                AB
            } else {
                [Role::Backup, Role::Backup]
            };
            m.tick(&roles, &macs, US, Ipv6Addr::UNSPECIFIED, t);
            ups.push((m.is_up(0), m.is_up(1)));
        }
        assert!(
            ups[8..].iter().all(|u| *u == (false, false)),
            "both down and staying down: {ups:?}"
        );
    }

    // Found by the VM benchmark (benches/vm/kernel-vs-xbond.sh): with
    // arp_validate none, the backup that took over after the active path
    // died was taken down one interval later, bond0 lost its carrier and the
    // kernel's pktgen stopped; the kernel bond kept its carrier.
    #[test]
    fn a_backup_made_active_gets_missed_max_intervals_whatever_the_proof() {
        for validate in [ArpValidate::None, ArpValidate::Filter] {
            let t0 = Instant::now();
            let mut m = mon(validate, ArpAllTargets::Any, &[T], t0);
            let macs = [mac(1), mac(2)];
            let mut t = t0;
            // Healthy: both get frames (the backup the active's probes).
            for _ in 0..3 {
                t += Duration::from_millis(100);
                for (i, role) in AB.iter().enumerate() {
                    let at = t - Duration::from_millis(50);
                    m.note_rx(i, at);
                    m.handle_frame(i, *role, &reply_from(T), &[US], &[], at);
                }
                m.tick(&AB, &macs, US, Ipv6Addr::UNSPECIFIED, t);
            }
            assert!(m.is_up(0) && m.is_up(1), "{validate}");
            // The active path dies: nothing more on either slave.
            let last = t - Duration::from_millis(50);
            let mut roles = AB;
            while m.is_up(0) {
                t += Duration::from_millis(100);
                m.tick(&roles, &macs, US, Ipv6Addr::UNSPECIFIED, t);
                assert!(
                    t - last < Duration::from_secs(2),
                    "{validate}: the active stays up"
                );
            }
            assert!(
                m.is_up(1),
                "{validate}: the backup outlives the active by an interval"
            );
            // The backup takes over and probes; it keeps its link for
            // missed_max intervals, and the first reply keeps it up.
            roles = [Role::Backup, Role::Active];
            t += Duration::from_millis(100);
            m.tick(&roles, &macs, US, Ipv6Addr::UNSPECIFIED, t);
            assert!(m.is_up(1), "{validate}: the new active slave kept its link");
            m.note_rx(1, t + Duration::from_millis(50));
            m.handle_frame(
                1,
                Role::Active,
                &reply_from(T),
                &[US],
                &[],
                t + Duration::from_millis(50),
            );
            t += Duration::from_millis(100);
            m.tick(&roles, &macs, US, Ipv6Addr::UNSPECIFIED, t);
            assert!(m.is_up(1), "{validate}: up by its replies");
        }
    }

    #[test]
    fn garbage_frames_change_nothing() {
        let t0 = Instant::now();
        let mut m = mon(ArpValidate::All, ArpAllTargets::Any, &[T], t0);
        let f = reply_from(T);
        for n in 0..f.len() - 18 {
            m.handle_frame(0, Role::Active, &f[..n], &[US], &[], t0);
        }
        m.tick(
            &AB,
            &[mac(1), mac(2)],
            US,
            Ipv6Addr::UNSPECIFIED,
            t0 + Duration::from_millis(10),
        );
        assert!(!m.is_up(0));
    }
}
