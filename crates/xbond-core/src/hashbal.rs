//! Hash buckets for balance-xor and 802.3ad: the load view, and opt-in
//! rebalancing, as Open vSwitch's `bond/show` and `bond-rebalance-interval`
//! give.
//!
//! A frame's hash `h` falls in bucket `h % B`, where `B` is the largest
//! multiple of the transmitting slave count `n` not above [`HASH_BUCKETS`]:
//! since `B` is a multiple of `n`, the bucket's default slave `bucket % n` is
//! the kernel's `h % n`, so the view changes nothing. The workers count the
//! bytes per bucket; the control loop reports them here every sample, and
//! the status shows each bucket's slave and recent load, so that an
//! operator sees an unlucky spread.
//!
//! With `rebalance_interval` set, every interval the buckets are given to
//! the slaves anew (the heaviest first, each to the least loaded slave) when
//! that lowers the busiest slave's load by a tenth or more. Moving a bucket
//! moves its flows to another link mid-stream: frames of a moved flow can
//! arrive out of order once. Off by default, as in the kernel (which never
//! moves a flow while the slave set stays).

use std::time::{Duration, Instant};

/// Buckets at most (the bucket is a `u8`).
pub const HASH_BUCKETS: usize = 256;

/// The bucket count for `n` transmitting slaves: the largest multiple of `n`
/// not above [`HASH_BUCKETS`] (0 without slaves).
pub fn bucket_count(n: usize) -> u32 {
    if n == 0 {
        return 0;
    }
    (HASH_BUCKETS / n * n) as u32
}

/// The load view and the rebalanced table.
#[derive(Debug, Clone)]
pub struct HashBuckets {
    /// Recent bytes per bucket (a decaying sum over about a second).
    recent: Box<[u64; HASH_BUCKETS]>,
    /// Bucket -> position in the transmitting slaves, when rebalanced for
    /// `n` slaves.
    table: Option<(usize, Box<[u8; HASH_BUCKETS]>)>,
    interval: Option<Duration>,
    next: Instant,
    /// Times the table changed.
    moves: u64,
}

impl HashBuckets {
    /// No load yet; rebalancing every `interval` when set.
    pub fn new(interval: Option<Duration>, now: Instant) -> HashBuckets {
        HashBuckets {
            recent: Box::new([0; HASH_BUCKETS]),
            table: None,
            interval,
            next: now + interval.unwrap_or_default(),
            moves: 0,
        }
    }

    /// A new interval (`rebalance_interval` changed at run time); `None`
    /// goes back to the kernel's mapping.
    pub fn set_interval(&mut self, interval: Option<Duration>, now: Instant) {
        self.interval = interval;
        self.next = now + interval.unwrap_or_default();
        if interval.is_none() {
            self.table = None;
        }
    }

    /// The table for `n` transmitting slaves, if rebalanced for that many.
    pub fn table(&self, n: usize) -> Option<&[u8; HASH_BUCKETS]> {
        self.table
            .as_ref()
            .filter(|(m, _)| *m == n)
            .map(|(_, t)| &**t)
    }

    /// The slave position of `bucket` among `n` transmitting slaves.
    pub fn slot(&self, bucket: usize, n: usize) -> usize {
        match self.table(n) {
            Some(t) => usize::from(t[bucket]),
            None => bucket % n.max(1),
        }
    }

    /// Bytes the workers sent per bucket since the last sample, with `n`
    /// slaves transmitting. Returns true when the table changed (publish a
    /// new plan).
    pub fn note(&mut self, seen: &[u64; HASH_BUCKETS], n: usize, now: Instant) -> bool {
        for (r, s) in self.recent.iter_mut().zip(seen) {
            // Sampled every 100 ms: a decaying sum over about a second.
            *r = *r - r.div_ceil(8) + s;
        }
        let Some(interval) = self.interval else {
            return false;
        };
        if now < self.next || n < 2 {
            return false;
        }
        self.next = now + interval;
        let b = bucket_count(n) as usize;
        let load = |slot: &dyn Fn(usize) -> usize| {
            let mut per = vec![0u64; n];
            for (i, r) in self.recent[..b].iter().enumerate() {
                per[slot(i)] += r;
            }
            per
        };
        let now_per = load(&|i| self.slot(i, n));
        let busiest = now_per.iter().copied().max().unwrap_or(0);
        if busiest == 0 {
            return false;
        }
        // Longest processing time first: the heaviest bucket to the least
        // loaded slave; empty buckets keep the kernel's mapping.
        let mut order: Vec<usize> = (0..b).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.recent[i]));
        let mut table = Box::new([0u8; HASH_BUCKETS]);
        let mut per = vec![0u64; n];
        for i in order {
            let s = if self.recent[i] == 0 {
                i % n
            } else {
                (0..n).min_by_key(|&s| (per[s], s)).unwrap_or(0)
            };
            table[i] = s as u8;
            per[s] += self.recent[i];
        }
        let new_busiest = per.iter().copied().max().unwrap_or(0);
        if new_busiest * 10 > busiest * 9 {
            return false;
        }
        self.table = Some((n, table));
        self.moves += 1;
        true
    }

    /// Buckets with recent load, with their slave position among `n`
    /// transmitting slaves: (bucket, position, bytes).
    pub fn loaded(&self, n: usize) -> Vec<(u8, usize, u64)> {
        let b = bucket_count(n) as usize;
        (0..b)
            .filter(|&i| self.recent[i] > 0)
            .map(|i| (i as u8, self.slot(i, n), self.recent[i]))
            .collect()
    }

    /// Times the buckets were given out anew.
    pub fn moves(&self) -> u64 {
        self.moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::pick;

    #[test]
    fn the_default_mapping_is_the_kernels() {
        let hb = HashBuckets::new(None, Instant::now());
        for n in 1..=16 {
            let b = bucket_count(n);
            assert_eq!(b % n as u32, 0);
            assert!(b as usize <= HASH_BUCKETS && b as usize > HASH_BUCKETS - n);
            for h in (0..100_000u32).map(|x| x.wrapping_mul(2_654_435_761)) {
                assert_eq!(hb.slot((h % b) as usize, n), pick(h, n), "n {n} h {h}");
            }
        }
    }

    #[test]
    fn an_unlucky_spread_is_rebalanced_only_when_asked() {
        let t0 = Instant::now();
        // Two heavy buckets that the kernel's mapping puts on slot 0 of 2.
        let mut seen = [0u64; HASH_BUCKETS];
        seen[4] = 1_000_000;
        seen[10] = 900_000;
        seen[3] = 10;
        let mut off = HashBuckets::new(None, t0);
        assert!(!off.note(&seen, 2, t0 + Duration::from_secs(5)));
        assert_eq!((off.slot(4, 2), off.slot(10, 2)), (0, 0));
        let mut on = HashBuckets::new(Some(Duration::from_secs(1)), t0);
        assert!(!on.note(&seen, 2, t0), "not before the interval");
        assert!(on.note(&seen, 2, t0 + Duration::from_secs(1)));
        assert_ne!(on.slot(4, 2), on.slot(10, 2), "the heavy buckets split");
        assert_eq!(on.moves(), 1);
        // Balanced now: the next interval changes nothing.
        assert!(!on.note(&seen, 2, t0 + Duration::from_secs(2)));
        // A table is for the slave count it was made for.
        assert_eq!(on.slot(4, 3), 4 % 3);
        let l = on.loaded(2);
        assert_eq!(l.len(), 3);
        on.set_interval(None, t0);
        assert_eq!((on.slot(4, 2), on.slot(10, 2)), (0, 0));
    }
}
