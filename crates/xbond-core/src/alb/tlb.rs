//! Transmit load balancing, for `balance-tlb` and `balance-alb` (kernel
//! `tlb_*` in `bond_alb.c`): [`tlb_bucket`] puts a transmitted IPv4 or IPv6
//! unicast frame in one of [`TLB_BUCKETS`] buckets by its destination
//! address, and [`Tlb`] gives each bucket a slave, by load or by a static
//! spread, and makes the table the workers read.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use crate::options::MacAddr;
use crate::timer::Timer;
use crate::wire::{EthInfo, ETH_P_IP, ETH_P_IPV6};
use crate::MAX_SLAVES;

/// Number of TLB buckets (kernel `TLB_HASH_TABLE_SIZE`).
pub const TLB_BUCKETS: usize = 256;
/// Interval between TLB rebalances (kernel `BOND_TLB_REBALANCE_INTERVAL`).
pub const TLB_REBALANCE_INTERVAL: Duration = Duration::from_secs(10);
/// Marks an unassigned bucket in [`Tlb::table`].
pub const TLB_UNASSIGNED: u8 = 0xff;
/// Speed assumed for a slave whose speed is unknown, in Mb/s.
pub const TLB_DEFAULT_SPEED_MBPS: u32 = 1000;

const IPPROTO_IGMP: u8 = 2;

/// XOR of the bytes, a word at a time.
#[inline(always)]
fn xor_fold<const N: usize>(bytes: &[u8; N]) -> u8 {
    let mut w = 0u64;
    for c in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..c.len()].copy_from_slice(c);
        w ^= u64::from_le_bytes(word);
    }
    let w = w ^ (w >> 32);
    let w = w ^ (w >> 16);
    (w ^ (w >> 8)) as u8
}

/// The TLB bucket of a frame the bond transmits: the kernel's `_simple_hash`
/// (XOR of the bytes) of the destination IPv4 or IPv6 address, after up to two
/// VLAN tags.
///
/// `None` means "not balanced, send on the active slave", as in the kernel's
/// `bond_alb_xmit`: non-IP frames (ARP included), group destination MACs,
/// IPv4 to 255.255.255.255, IGMP, IPv6 from the unspecified address (DAD),
/// and frames too short for their IP header.
///
/// Newer kernels hash with `xmit_hash_policy` here; xbond keeps the
/// destination-address hash so that one bucket is one peer, which is what
/// the per-bucket load in the status means.
#[inline]
pub fn tlb_bucket(frame: &[u8]) -> Option<u8> {
    let eth = EthInfo::parse(frame)?;
    if MacAddr(eth.dst).is_multicast() {
        return None;
    }
    let l3 = eth.l3_offset;
    match eth.ethertype {
        ETH_P_IP => {
            let h: [u8; 20] = frame.get(l3..l3 + 20)?.try_into().ok()?;
            if h[0] >> 4 != 4 || h[9] == IPPROTO_IGMP {
                return None;
            }
            let dst: &[u8; 4] = h[16..20].try_into().ok()?;
            if dst == &[0xff; 4] {
                return None;
            }
            Some(xor_fold(dst))
        }
        ETH_P_IPV6 => {
            let h: [u8; 40] = frame.get(l3..l3 + 40)?.try_into().ok()?;
            if h[0] >> 4 != 6 || h[8..24] == [0; 16] {
                return None;
            }
            let dst: &[u8; 16] = h[24..40].try_into().ok()?;
            Some(xor_fold(dst))
        }
        _ => None,
    }
}

/// One TLB bucket (kernel `struct tlb_client_info`).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Assigned slave (dynamic mode only).
    slave: Option<u8>,
    /// Bytes sent in the current interval.
    tx_bytes: u64,
    /// Bytes sent in the last complete interval.
    load_history: u64,
}

impl Bucket {
    /// The load this bucket is expected to put on a slave per interval: what
    /// it sent in the last interval, or more if it already sent more in this
    /// one.
    fn weight(&self) -> u64 {
        self.load_history.max(self.tx_bytes)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct TlbSlave {
    usable: bool,
    speed_mbps: Option<u32>,
}

impl TlbSlave {
    /// What the slave can carry in one rebalance interval, in bytes.
    fn capacity(&self) -> i128 {
        let mbps = match self.speed_mbps {
            Some(s) if s > 0 => s,
            _ => TLB_DEFAULT_SPEED_MBPS,
        };
        i128::from(mbps) * 1_000_000 / 8 * i128::from(TLB_REBALANCE_INTERVAL.as_secs())
    }
}

/// Transmit load balancing: which slave carries each bucket (kernel
/// `tlb_choose_channel`, `tlb_get_least_loaded_slave`, `tlb_clear_slave`).
///
/// With `tlb_dynamic_lb` (`dynamic = true`) a bucket is given, when first
/// used, to the usable slave with the most spare capacity
/// (`speed * interval - load`, as the kernel's `compute_gap`; ties go to the
/// slave with fewer buckets, then the lower index), where a slave's load is
/// the sum of its buckets' loads. Every [`TLB_REBALANCE_INTERVAL`] the loads
/// just measured become the buckets' history and all assignments are
/// redone from them (heaviest first).
///
/// Departures from the kernel, both to avoid bursts on the active slave:
/// at a rebalance, and when a slave fails or returns, the buckets that carry
/// traffic are re-spread at once instead of on their next frame; idle buckets
/// are freed and get a slave when next used.
///
/// Without `tlb_dynamic_lb`, bucket `b` goes to the `b % n`-th of the `n`
/// usable slaves: a static spread, as the kernel's hash over `usable_slaves`.
#[derive(Debug, Clone)]
pub struct Tlb {
    dynamic: bool,
    buckets: Box<[Bucket; TLB_BUCKETS]>,
    slaves: Vec<TlbSlave>,
    rebalance: Timer,
    changed: bool,
}

impl Tlb {
    /// A table for `n_slaves` slaves (at most [`MAX_SLAVES`]), all unusable
    /// until [`Tlb::set_usable`] says otherwise.
    pub fn new(n_slaves: usize, dynamic: bool, now: Instant) -> Tlb {
        Tlb {
            dynamic,
            buckets: Box::new([Bucket::default(); TLB_BUCKETS]),
            slaves: vec![TlbSlave::default(); n_slaves.min(MAX_SLAVES)],
            rebalance: Timer::start(now, TLB_REBALANCE_INTERVAL),
            changed: false,
        }
    }

    /// Whether buckets are assigned by load (`tlb_dynamic_lb 1`).
    pub fn dynamic(&self) -> bool {
        self.dynamic
    }

    /// Updates which slaves may carry traffic and their speeds in Mb/s
    /// (missing entries count as unusable / unknown speed).
    ///
    /// The buckets of a slave that became unusable move, with their load, to
    /// the other usable slaves. When a slave becomes usable, every bucket in
    /// use is re-spread over all usable slaves (the kernel forces a rebalance
    /// on link up).
    pub fn set_usable(&mut self, usable: &[bool], speeds: &[Option<u32>]) {
        let mut came_up = false;
        let mut went_down = false;
        for (i, s) in self.slaves.iter_mut().enumerate() {
            let u = usable.get(i).copied().unwrap_or(false);
            came_up |= u && !s.usable;
            went_down |= !u && s.usable;
            s.usable = u;
            s.speed_mbps = speeds.get(i).copied().flatten();
        }
        if !came_up && !went_down {
            return;
        }
        if !self.dynamic {
            self.changed = true;
            return;
        }
        let slaves = &self.slaves;
        let moving: Vec<usize> = (0..TLB_BUCKETS)
            .filter(|&b| match self.buckets[b].slave {
                None => false,
                Some(s) => came_up || !slaves.get(usize::from(s)).is_some_and(|s| s.usable),
            })
            .collect();
        self.respread(moving);
    }

    /// The slave for `bucket`, assigning one if the bucket has none (dynamic
    /// mode). `None` when no slave is usable.
    pub fn assign(&mut self, bucket: u8) -> Option<u8> {
        let b = usize::from(bucket);
        if !self.dynamic {
            return self.static_slave(b);
        }
        if let Some(s) = self.buckets[b].slave {
            return Some(s);
        }
        let (loads, counts) = self.loads_and_counts();
        let s = self.least_loaded(&loads, &counts)?;
        self.buckets[b].slave = Some(s);
        self.changed = true;
        Some(s)
    }

    /// Adds `bytes` sent through `bucket` in the current interval.
    pub fn note_load(&mut self, bucket: u8, bytes: u64) {
        let e = &mut self.buckets[usize::from(bucket)];
        e.tx_bytes = e.tx_bytes.saturating_add(bytes);
    }

    /// Takes the per-bucket byte counts the workers reported since the last
    /// call: adds them to the buckets' loads, then assigns every bucket that
    /// saw traffic and has no slave yet, heaviest first.
    pub fn assign_all_seen(&mut self, seen: &[u64; TLB_BUCKETS]) {
        let mut fresh = Vec::new();
        for (b, &bytes) in seen.iter().enumerate() {
            if bytes == 0 {
                continue;
            }
            let e = &mut self.buckets[b];
            e.tx_bytes = e.tx_bytes.saturating_add(bytes);
            if self.dynamic && e.slave.is_none() {
                fresh.push(b);
            }
        }
        if !fresh.is_empty() {
            self.respread(fresh);
        }
    }

    /// The snapshot the workers read: the slave of each bucket, or
    /// [`TLB_UNASSIGNED`] (send on the active slave).
    pub fn table(&self) -> [u8; TLB_BUCKETS] {
        let mut t = [TLB_UNASSIGNED; TLB_BUCKETS];
        for (b, slot) in t.iter_mut().enumerate() {
            if let Some(s) = self.slave_of(b) {
                *slot = s;
            }
        }
        t
    }

    /// The slave `bucket` is on now, without assigning one.
    pub fn bucket_slave(&self, bucket: u8) -> Option<u8> {
        self.slave_of(usize::from(bucket))
    }

    /// Runs the rebalance when its timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.rebalance.due(now) {
            return;
        }
        self.rebalance = Timer::start(now, TLB_REBALANCE_INTERVAL);
        let mut busy = Vec::new();
        for (b, e) in self.buckets.iter_mut().enumerate() {
            e.load_history = e.tx_bytes;
            e.tx_bytes = 0;
            if self.dynamic && e.slave.is_some() {
                if e.load_history > 0 {
                    busy.push(b);
                } else {
                    // Idle for a whole interval: freed, reassigned on use.
                    e.slave = None;
                    self.changed = true;
                }
            }
        }
        if self.dynamic {
            self.respread(busy);
        }
    }

    /// When [`Tlb::handle_timeout`] next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rebalance.deadline()
    }

    /// Whether [`Tlb::table`] changed since the last call; clears the flag.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The load of each slave in bytes per interval: the sum of its buckets'
    /// loads (the last interval's, or the current one's if larger).
    pub fn load_per_slave(&self) -> Vec<u64> {
        self.loads_and_counts().0
    }

    /// `(bucket, slave, load)` for every assigned bucket (dynamic mode), or
    /// for every bucket that carried traffic (static mode, where all 256
    /// buckets have a slave).
    pub fn assignments(&self) -> Vec<(u8, u8, u64)> {
        (0..TLB_BUCKETS)
            .filter_map(|b| {
                let s = self.slave_of(b)?;
                let w = self.buckets[b].weight();
                if !self.dynamic && w == 0 {
                    return None;
                }
                Some((u8::try_from(b).ok()?, s, w))
            })
            .collect()
    }

    fn slave_of(&self, b: usize) -> Option<u8> {
        if self.dynamic {
            self.buckets.get(b)?.slave
        } else {
            self.static_slave(b)
        }
    }

    fn static_slave(&self, b: usize) -> Option<u8> {
        let n = self.slaves.iter().filter(|s| s.usable).count();
        if n == 0 {
            return None;
        }
        let i = self
            .slaves
            .iter()
            .enumerate()
            .filter(|(_, s)| s.usable)
            .nth(b % n)?
            .0;
        u8::try_from(i).ok()
    }

    fn loads_and_counts(&self) -> (Vec<u64>, Vec<u32>) {
        let mut loads = vec![0u64; self.slaves.len()];
        let mut counts = vec![0u32; self.slaves.len()];
        for b in 0..TLB_BUCKETS {
            if let Some(s) = self.slave_of(b) {
                if let (Some(l), Some(c)) = (
                    loads.get_mut(usize::from(s)),
                    counts.get_mut(usize::from(s)),
                ) {
                    *l = l.saturating_add(self.buckets[b].weight());
                    *c += 1;
                }
            }
        }
        (loads, counts)
    }

    /// The usable slave with the most spare capacity; ties to fewer buckets,
    /// then the lower index.
    fn least_loaded(&self, loads: &[u64], counts: &[u32]) -> Option<u8> {
        let mut best: Option<(usize, (i128, Reverse<u32>))> = None;
        for (i, s) in self.slaves.iter().enumerate() {
            if !s.usable {
                continue;
            }
            let load = loads.get(i).copied().unwrap_or(0);
            let key = (
                s.capacity() - i128::from(load),
                Reverse(counts.get(i).copied().unwrap_or(0)),
            );
            if best.is_none_or(|(_, k)| key > k) {
                best = Some((i, key));
            }
        }
        u8::try_from(best?.0).ok()
    }

    /// Unassigns `list` and gives each of its buckets, heaviest first, to the
    /// least-loaded usable slave.
    fn respread(&mut self, mut list: Vec<usize>) {
        let before: Vec<(usize, Option<u8>)> =
            list.iter().map(|&b| (b, self.buckets[b].slave)).collect();
        for &b in &list {
            self.buckets[b].slave = None;
        }
        let (mut loads, mut counts) = self.loads_and_counts();
        list.sort_by_key(|&b| (Reverse(self.buckets[b].weight()), b));
        for &b in &list {
            let s = self.least_loaded(&loads, &counts);
            self.buckets[b].slave = s;
            if let Some(s) = s {
                let i = usize::from(s);
                if let (Some(l), Some(c)) = (loads.get_mut(i), counts.get_mut(i)) {
                    *l = l.saturating_add(self.buckets[b].weight());
                    *c += 1;
                }
            }
        }
        self.changed |= before.iter().any(|&(b, s)| self.buckets[b].slave != s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::fixtures::*;

    #[test]
    fn bucket_is_xor_of_the_destination_address() {
        let f = ipv4_frame([10, 1, 2, 3], &[], 17);
        assert_eq!(tlb_bucket(&f), Some(10 ^ 1 ^ 2 ^ 3));
        let f = ipv4_frame([10, 1, 2, 3], &[100, 200], 6);
        assert_eq!(
            tlb_bucket(&f),
            Some(10 ^ 1 ^ 2 ^ 3),
            "through two VLAN tags"
        );
        let f = ipv4_frame([10, 1, 2, 3], &[100], 17);
        assert_eq!(tlb_bucket(&f), Some(10 ^ 1 ^ 2 ^ 3), "through one VLAN tag");

        let mut dst = [0u8; 16];
        dst[0] = 0x20;
        dst[1] = 0x01;
        dst[15] = 0x42;
        let mut src = [0u8; 16];
        src[15] = 1;
        assert_eq!(tlb_bucket(&ipv6_frame(src, dst)), Some(0x20 ^ 0x01 ^ 0x42));
        assert_eq!(tlb_bucket(&ipv6_frame([0; 16], dst)), None, "DAD from ::");

        let arp = host_reply(ip(5), peer_mac(5));
        assert_eq!(tlb_bucket(&arp), None, "ARP goes on the active slave");
        let mut bcast = ipv4_frame([10, 1, 2, 3], &[], 17);
        bcast[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(tlb_bucket(&bcast), None, "broadcast MAC");
        let mut mcast = ipv4_frame([224, 0, 0, 251], &[], 17);
        mcast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 0xfb]);
        assert_eq!(tlb_bucket(&mcast), None, "multicast MAC");
        assert_eq!(tlb_bucket(&ipv4_frame([255; 4], &[], 17)), None);
        assert_eq!(tlb_bucket(&ipv4_frame([10, 0, 0, 2], &[], 2)), None, "IGMP");
        let mut v5 = ipv4_frame([10, 1, 2, 3], &[], 17);
        v5[14] = 0x55;
        assert_eq!(tlb_bucket(&v5), None, "not version 4");
    }

    fn count_on(t: &Tlb, slave: u8) -> usize {
        t.table().iter().filter(|&&s| s == slave).count()
    }

    #[test]
    fn eight_equal_destinations_spread_four_and_four() {
        let now = Instant::now();
        // Reported by the workers in one batch.
        let mut t = tlb2(true, now);
        let mut seen = [0u64; TLB_BUCKETS];
        for d in 1..=8u8 {
            let b = tlb_bucket(&ipv4_frame([10, 0, 0, d], &[], 17)).unwrap();
            seen[usize::from(b)] += 1500;
        }
        t.assign_all_seen(&seen);
        assert!(t.take_changed());
        assert!(!t.take_changed(), "the flag is drained");
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (4, 4));
        assert_eq!(t.load_per_slave(), vec![4 * 1500, 4 * 1500]);
        assert_eq!(t.assignments().len(), 8);
        // Learned one frame at a time.
        let mut t = tlb2(true, now);
        for d in 1..=8u8 {
            let b = tlb_bucket(&ipv4_frame([10, 0, 0, d], &[], 17)).unwrap();
            assert!(t.assign(b).is_some());
            t.note_load(b, 1500);
        }
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (4, 4));
        let table = t.table();
        assert_eq!(table.iter().filter(|&&s| s == TLB_UNASSIGNED).count(), 248);
    }

    #[test]
    fn faster_slave_takes_more_buckets() {
        let now = Instant::now();
        let mut t = Tlb::new(2, true, now);
        t.set_usable(&[true, true], &[Some(10_000), Some(1000)]);
        let mut seen = [0u64; TLB_BUCKETS];
        // 1 GB per bucket per 10 s (800 Mb/s). Slave 0 can carry 12.5 GB per
        // interval and slave 1 1.25 GB: slave 0 takes buckets until its spare
        // capacity falls under slave 1's.
        for b in seen.iter_mut().take(13) {
            *b = 1_000_000_000;
        }
        t.assign_all_seen(&seen);
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (12, 1));
    }

    #[test]
    fn rebalance_after_10s_moves_buckets_off_an_overloaded_slave() {
        let t0 = Instant::now();
        let mut t = tlb2(true, t0);
        assert_eq!(t.poll_timeout(), Some(t0 + TLB_REBALANCE_INTERVAL));
        // Four new peers with little traffic: 0,2 on slave 0; 1,3 on slave 1.
        let mut seen = [0u64; TLB_BUCKETS];
        seen[..4].fill(100);
        t.assign_all_seen(&seen);
        let before = t.table();
        assert_eq!(&before[..4], &[0, 1, 0, 1]);
        t.take_changed();
        // Then buckets 0 and 2 turn heavy: slave 0 carries nearly everything.
        let mut seen = [0u64; TLB_BUCKETS];
        seen[0] = 5_000_000;
        seen[2] = 5_000_000;
        seen[1] = 1000;
        seen[3] = 1000;
        t.assign_all_seen(&seen);
        let loads = t.load_per_slave();
        assert!(loads[0] > 100 * loads[1], "{loads:?}");
        assert_eq!(t.table(), before, "no change before the interval ends");

        t.handle_timeout(t0 + Duration::from_secs(9));
        assert_eq!(t.table(), before);
        t.handle_timeout(t0 + TLB_REBALANCE_INTERVAL);
        assert!(t.take_changed());
        let after = t.table();
        assert_ne!(after[0], after[2], "the heavy buckets are split");
        let loads = t.load_per_slave();
        // Heaviest first: one heavy and one light bucket on each slave.
        assert_eq!(loads, vec![5_000_100 + 1100, 5_000_100 + 1100]);
        assert_eq!(t.poll_timeout(), Some(t0 + 2 * TLB_REBALANCE_INTERVAL));

        // A bucket idle for a whole interval is freed.
        t.handle_timeout(t0 + 2 * TLB_REBALANCE_INTERVAL);
        assert!(t.table().iter().all(|&s| s == TLB_UNASSIGNED));
    }

    #[test]
    fn static_spread_without_dynamic_lb() {
        let now = Instant::now();
        let mut t = Tlb::new(3, false, now);
        assert!(
            t.table().iter().all(|&s| s == TLB_UNASSIGNED),
            "nothing usable"
        );
        t.set_usable(&[true, true, true], &[None, None, None]);
        assert!(t.take_changed());
        let table = t.table();
        for (b, &s) in table.iter().enumerate() {
            assert_eq!(usize::from(s), b % 3);
        }
        // Load does not move anything.
        let mut seen = [0u64; TLB_BUCKETS];
        seen[0] = 1 << 40;
        t.assign_all_seen(&seen);
        t.handle_timeout(now + TLB_REBALANCE_INTERVAL);
        assert_eq!(t.table(), table);
        assert!(!t.take_changed());
        assert_eq!(t.assign(7), Some(1));
        assert_eq!(t.assignments(), vec![(0, 0, 1 << 40)]);
        // Slave 1 fails: spread over the two left.
        t.set_usable(&[true, false, true], &[None, None, None]);
        assert!(t.take_changed());
        for (b, &s) in t.table().iter().enumerate() {
            assert_eq!(s, if b % 2 == 0 { 0 } else { 2 });
        }
    }

    #[test]
    fn failed_slave_buckets_and_load_move_to_the_others() {
        let now = Instant::now();
        let mut t = Tlb::new(3, true, now);
        let speeds = [Some(1000); 3];
        t.set_usable(&[true, true, true], &speeds);
        let mut seen = [0u64; TLB_BUCKETS];
        for (b, s) in seen.iter_mut().enumerate().take(12) {
            *s = 1000 * (b as u64 + 1);
        }
        t.assign_all_seen(&seen);
        let total: u64 = t.load_per_slave().iter().sum();
        let on1: Vec<usize> = (0..12).filter(|&b| t.table()[b] == 1).collect();
        assert!(!on1.is_empty());
        t.take_changed();

        t.set_usable(&[true, false, true], &speeds);
        assert!(t.take_changed());
        let table = t.table();
        assert!(
            table.iter().all(|&s| s != 1),
            "nothing left on the failed slave"
        );
        assert!(
            (0..12).all(|b| table[b] == 0 || table[b] == 2),
            "all still assigned"
        );
        let loads = t.load_per_slave();
        assert_eq!(loads[1], 0);
        assert_eq!(
            loads.iter().sum::<u64>(),
            total,
            "the load moved with the buckets"
        );
        let diff = loads[0].abs_diff(loads[2]);
        assert!(diff <= 12_000, "{loads:?}");

        // All down: every bucket goes back to the active slave.
        t.set_usable(&[false, false, false], &speeds);
        assert!(t.table().iter().all(|&s| s == TLB_UNASSIGNED));
        assert_eq!(t.assign(3), None);
        // Slave 1 returns: the buckets in use are spread again.
        t.set_usable(&[false, true, false], &speeds);
        t.assign_all_seen(&seen);
        assert!((0..12).all(|b| t.table()[b] == 1));
    }

    #[test]
    fn returning_slave_takes_buckets_back() {
        let now = Instant::now();
        let mut t = Tlb::new(2, true, now);
        t.set_usable(&[true, false], &[None, None]);
        let mut seen = [0u64; TLB_BUCKETS];
        seen[..8].fill(1000);
        t.assign_all_seen(&seen);
        assert_eq!(count_on(&t, 0), 8);
        t.set_usable(&[true, true], &[None, None]);
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (4, 4));
    }
}
