//! What the workers read: the immutable transmit plan, batch slave selection
//! and the receive rules per mode.
//!
//! The control thread builds a [`TxPlan`] whenever a decision changes and
//! publishes it; a worker takes the newest plan once per batch and never locks
//! per frame. Selection fills an output array with one [`Choice`] per frame and
//! allocates nothing.

use crate::alb::{tlb_bucket, TLB_BUCKETS, TLB_UNASSIGNED};
use crate::hash::{hash_batch, Divisor};
use crate::hashbal::{bucket_count, HASH_BUCKETS};
use crate::options::{HashFunction, HashPolicy, MacAddr, Mode};
use crate::MAX_SLAVES;

const _: () = assert!(MAX_SLAVES.is_power_of_two());

/// The transmit and receive decisions of the bond at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPlan {
    /// Increases with every published plan.
    pub version: u64,
    /// The bonding mode.
    pub mode: Mode,
    /// Hash policy for balance-xor (and 802.3ad).
    pub policy: HashPolicy,
    /// Hash function over the policy's fields.
    pub function: HashFunction,
    /// balance-rr: frames per slave before moving on; 0 = random slave.
    pub packets_per_slave: u32,
    /// Slaves that may transmit now, in slave order (indices into the bond's
    /// slave list). In active-backup this is the active slave alone.
    pub tx_slaves: [u8; MAX_SLAVES],
    /// How many entries of `tx_slaves` are valid.
    pub tx_count: u8,
    /// The active slave, in modes that have one.
    pub active: Option<u8>,
    /// Bit `i` set: frames received on slave `i` are delivered to the host.
    pub rx_mask: u32,
    /// Copy ARP and IPv6 NS/NA frames received on the slaves to the control
    /// thread (for the ARP/NS monitor and ALB), whether delivered or not.
    pub tap_arp: bool,
    /// balance-tlb/alb: destination bucket -> slave (`TLB_UNASSIGNED`: the
    /// active slave).
    pub tlb_table: [u8; TLB_BUCKETS],
    /// balance-tlb/alb: each slave's MAC, written as the source of frames
    /// sent on a slave other than the active one, and matched as the
    /// destination of received frames (rewritten to the bond MAC).
    pub slave_macs: [MacAddr; MAX_SLAVES],
    /// The bond's MAC.
    pub bond_mac: MacAddr,
    /// balance-alb: ARP frames from the host go to the control thread, which
    /// rewrites replies per peer and sends them.
    pub divert_host_arp: bool,
    /// The longest frame that may cross, either way: bond0's MTU plus an
    /// Ethernet header and one VLAN tag, as the kernel forwards
    /// (`usize::MAX` until the MTU is known). Longer frames are counted and
    /// dropped.
    pub max_frame: usize,
    /// With `hash_rebalanced`: bucket -> position in `tx_slaves`, for the
    /// [`bucket_count`] of `tx_count` buckets.
    pub hash_table: [u8; HASH_BUCKETS],
    /// The buckets were given out anew (`rebalance_interval`); otherwise the
    /// kernel's `hash % slaves`.
    pub hash_rebalanced: bool,
}

impl TxPlan {
    /// A plan that transmits nothing and delivers nothing.
    pub fn empty(mode: Mode) -> TxPlan {
        TxPlan {
            version: 0,
            mode,
            policy: HashPolicy::Layer2,
            function: HashFunction::Xxh3,
            packets_per_slave: 1,
            tx_slaves: [0; MAX_SLAVES],
            tx_count: 0,
            active: None,
            rx_mask: 0,
            tap_arp: false,
            tlb_table: [TLB_UNASSIGNED; TLB_BUCKETS],
            slave_macs: [MacAddr::default(); MAX_SLAVES],
            bond_mac: MacAddr::default(),
            divert_host_arp: false,
            max_frame: usize::MAX,
            hash_table: [0; HASH_BUCKETS],
            hash_rebalanced: false,
        }
    }

    /// A plan that transmits on `slaves` (the first is the active one) and
    /// delivers from them; the rest as in [`TxPlan::empty`]. At most
    /// [`MAX_SLAVES`] are taken.
    pub fn with_slaves(mode: Mode, slaves: &[u8]) -> TxPlan {
        let slaves = &slaves[..slaves.len().min(MAX_SLAVES)];
        let mut p = TxPlan::empty(mode);
        p.tx_slaves[..slaves.len()].copy_from_slice(slaves);
        p.tx_count = slaves.len() as u8;
        p.active = slaves.first().copied();
        p.rx_mask = slaves
            .iter()
            .filter(|&&s| s < 32)
            .fold(0, |m, s| m | 1 << s);
        p
    }

    /// The usable transmit slaves.
    pub fn tx_slaves(&self) -> &[u8] {
        &self.tx_slaves[..usize::from(self.tx_count)]
    }

    /// balance-tlb/alb: the slave for a frame of destination bucket `bucket`
    /// (`None`: not balanced): the bucket's slave if it may transmit, else
    /// the active slave.
    #[inline]
    pub fn tlb_choice(&self, bucket: Option<u8>) -> Choice {
        match bucket.map(|b| self.tlb_table[usize::from(b)]) {
            Some(s) if s != TLB_UNASSIGNED && self.tx_slaves().contains(&s) => Choice::Slave(s),
            _ => self.active.map_or(Choice::Drop, Choice::Slave),
        }
    }

    /// Whether a frame received on `slave` reaches the host.
    #[inline]
    pub fn delivers_from(&self, slave: usize) -> bool {
        slave < 32 && self.rx_mask & (1 << slave) != 0
    }
}

/// Where one frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// No slave can carry it: drop and count.
    #[default]
    Drop,
    /// Send on this slave (index into the bond's slaves).
    Slave(u8),
    /// Send a copy on every slave of the plan (broadcast mode).
    All,
}

/// Per-worker selection state (the balance-rr position).
#[derive(Debug, Clone)]
pub struct Selector {
    rr_next: u32,
    rr_sent: u32,
    rng: u64,
    /// balance-xor and 802.3ad: the hash bucket of each frame of the last
    /// batch (its first [`SELECT_BATCH`]), for the load view.
    buckets: [u8; SELECT_BATCH],
    /// The hashes of the chunk being chosen (kept here, so that a batch
    /// does not clear a fresh array first).
    hashes: [u32; SELECT_BATCH],
}

/// Frames of a batch whose hash buckets a [`Selector`] keeps.
pub const SELECT_BATCH: usize = 64;

/// balance-xor and 802.3ad: each frame's slave from its hash, and (with
/// `buckets`) its bucket for the load view. `bucket_of` is `h %
/// buckets`, for [`bucket_count`] of the transmitting slaves. The bucket count is a multiple of the slave count,
/// so `h % slaves` is `bucket % slaves`: one remainder a frame, then the
/// kernel's choice or, rebalanced, the bucket's entry in the table.
#[inline(always)]
fn spread(
    plan: &TxPlan,
    hashes: &[u32],
    outs: &mut [Choice],
    buckets: Option<&mut [u8; SELECT_BATCH]>,
    bucket_of: impl Fn(u32) -> u32,
) {
    let n = usize::from(plan.tx_count).clamp(1, MAX_SLAVES);
    let table = &plan.hash_table;
    // `tx_slaves` has MAX_SLAVES (a power of two) entries and every
    // position is < n <= MAX_SLAVES: the mask only tells the compiler.
    let slave = |idx: usize| Choice::Slave(plan.tx_slaves[idx & (MAX_SLAVES - 1)]);
    // The batch's choices, with what is fixed over a batch (the table or
    // not, a power-of-two slave count or not, the load view kept or not)
    // decided once: each case is its own loop with no test in it.
    macro_rules! each {
        (|$b:ident| $position:expr) => {
            match buckets {
                Some(keep) => {
                    for ((o, &h), k) in outs.iter_mut().zip(hashes).zip(keep.iter_mut()) {
                        let $b = bucket_of(h);
                        *k = $b as u8;
                        *o = slave($position);
                    }
                }
                None => {
                    for (o, &h) in outs.iter_mut().zip(hashes) {
                        let $b = bucket_of(h);
                        *o = slave($position);
                    }
                }
            }
        };
    }
    if plan.hash_rebalanced {
        each!(|b| usize::from(table[(b as usize) & (HASH_BUCKETS - 1)]).min(n - 1))
    } else if n.is_power_of_two() {
        each!(|b| b as usize & (n - 1))
    } else {
        let by_slaves = Divisor::new(n as u32);
        each!(|b| by_slaves.remainder(b) as usize)
    }
}

impl Default for Selector {
    fn default() -> Self {
        Self::new(0x9e37_79b9_7f4a_7c15)
    }
}

impl Selector {
    /// A selector whose random choices (balance-rr with packets_per_slave 0)
    /// start from `seed`.
    pub fn new(seed: u64) -> Selector {
        Selector {
            rr_next: 0,
            rr_sent: 0,
            rng: seed | 1,
            buckets: [0; SELECT_BATCH],
            hashes: [0; SELECT_BATCH],
        }
    }

    /// balance-xor and 802.3ad: the hash bucket of frame `i` of the last
    /// batch.
    #[inline]
    pub fn bucket(&self, i: usize) -> u8 {
        self.buckets.get(i).copied().unwrap_or(0)
    }

    /// Chooses a slave for each frame of a batch; `out[i]` is the choice for
    /// `frames[i]`. `out` must be at least as long as `frames`.
    #[inline]
    pub fn select_batch(&mut self, plan: &TxPlan, frames: &[&[u8]], out: &mut [Choice]) {
        let out = &mut out[..frames.len()];
        let slaves = plan.tx_slaves();
        if slaves.is_empty() {
            out.fill(Choice::Drop);
            return;
        }
        match plan.mode {
            Mode::Broadcast => out.fill(Choice::All),
            Mode::ActiveBackup => out.fill(plan.active.map_or(Choice::Drop, Choice::Slave)),
            Mode::BalanceTlb | Mode::BalanceAlb => Self::select_tlb(plan, frames, out),
            Mode::BalanceRr => {
                let n = slaves.len() as u32;
                for o in out.iter_mut() {
                    let idx = if plan.packets_per_slave == 0 {
                        self.rng ^= self.rng << 13;
                        self.rng ^= self.rng >> 7;
                        self.rng ^= self.rng << 17;
                        (self.rng % u64::from(n)) as u32
                    } else {
                        let i = self.rr_next % n;
                        self.rr_sent += 1;
                        if self.rr_sent >= plan.packets_per_slave {
                            self.rr_sent = 0;
                            self.rr_next = self.rr_next.wrapping_add(1);
                        }
                        i
                    };
                    *o = Choice::Slave(slaves[idx as usize]);
                }
            }
            Mode::BalanceXor | Mode::Ieee8023ad => self.select_hashed(plan, frames, out),
        }
    }

    /// balance-tlb and balance-alb: each frame's slave from its bucket's entry
    /// in the table, or the active slave.
    #[inline(never)]
    fn select_tlb(plan: &TxPlan, frames: &[&[u8]], out: &mut [Choice]) {
        // Each slave number's choice: itself where it may transmit, else
        // the active slave, which the frames without a bucket take too
        // (the last entry). The loop then picks an index, so each of the
        // parse's exits sets one value, not a whole choice.
        let mut by_slave = [plan.active.map_or(Choice::Drop, Choice::Slave); 33];
        for &s in plan.tx_slaves() {
            if let Some(c) = by_slave.get_mut(usize::from(s)).filter(|_| s < 32) {
                *c = Choice::Slave(s);
            }
        }
        for (o, f) in out.iter_mut().zip(frames) {
            let s = tlb_bucket(f).map_or(32, |b| usize::from(plan.tlb_table[usize::from(b)]));
            *o = by_slave[s.min(32)];
        }
    }

    /// balance-xor and 802.3ad: each frame's slave from its hash. A
    /// function of its own (as each mode's loop is), so that the code of one
    /// mode does not move another's.
    #[inline(never)]
    fn select_hashed(&mut self, plan: &TxPlan, frames: &[&[u8]], out: &mut [Choice]) {
        let slaves = plan.tx_slaves();
        // A power-of-two slave count (1, 2, 4, ...) has 256 buckets,
        // so a bucket is the hash's low byte and a slave position
        // its low bits: no division, not even once a batch.
        let by_buckets =
            (!slaves.len().is_power_of_two()).then(|| Divisor::new(bucket_count(slaves.len())));
        for (c, (outs, fs)) in out
            .chunks_mut(SELECT_BATCH)
            .zip(frames.chunks(SELECT_BATCH))
            .enumerate()
        {
            let hashes = &mut self.hashes[..fs.len()];
            hash_batch(fs, plan.policy, plan.function, hashes);
            // The load view keeps the first chunk's buckets.
            let buckets = (c == 0).then_some(&mut self.buckets);
            match by_buckets {
                None => spread(plan, hashes, outs, buckets, |h| h & 0xff),
                Some(by) => spread(plan, hashes, outs, buckets, |h| by.remainder(h)),
            }
        }
    }
}

/// Drops the second copy of a frame that arrives on two slaves (broadcast mode
/// with a broadcasting partner, or a flooding switch): a frame whose content
/// hash was last seen on a *different* slave, among recent frames, is a
/// duplicate. Frames repeated on the same slave are always delivered. The
/// kernel delivers such duplicates twice; xbond does not.
///
/// The memory is a 4-way set-associative table indexed by the content hash,
/// so that the copies still waiting for their twin (a batch or two of
/// frames) do not evict each other: O(1) per frame, no allocation after
/// construction.
#[derive(Debug, Clone)]
pub struct DupFilter {
    /// (content hash, slave, generation) per entry.
    sets: Box<[[(u64, u8, u32); DupFilter::WAYS]]>,
    victim: Box<[u8]>,
    /// Counts frames seen; entries older than `HORIZON` frames are ignored,
    /// so a repeat long after the first copy (a retransmission, a periodic
    /// probe) is delivered.
    generation: u32,
}

impl Default for DupFilter {
    fn default() -> Self {
        DupFilter {
            sets: vec![[(0, u8::MAX, 0); Self::WAYS]; Self::SETS].into_boxed_slice(),
            victim: vec![0; Self::SETS].into_boxed_slice(),
            generation: 0,
        }
    }
}

impl DupFilter {
    /// Number of sets (a power of two).
    pub const SETS: usize = 2048;
    /// Entries per set.
    pub const WAYS: usize = 4;
    /// How many frames later a copy still counts as a duplicate.
    pub const HORIZON: u32 = 1024;

    /// Records `frame` received on `slave`; returns true if it is a duplicate
    /// of a frame recently received on another slave (and must not be
    /// delivered). A duplicate consumes the record, so a third copy counts as
    /// new.
    pub fn is_duplicate(&mut self, frame: &[u8], slave: u8) -> bool {
        let h = xxhash_rust::xxh3::xxh3_64(frame);
        self.generation = self.generation.wrapping_add(1);
        let now = self.generation;
        let idx = (h as usize) & (Self::SETS - 1);
        let set = &mut self.sets[idx];
        for e in set.iter_mut() {
            let fresh = now.wrapping_sub(e.2) <= Self::HORIZON;
            if e.0 == h && e.1 != u8::MAX && fresh {
                if e.1 != slave {
                    *e = (0, u8::MAX, 0);
                    return true;
                }
                // A repeat on the same slave is a new frame.
                e.2 = now;
                return false;
            }
        }
        let v = &mut self.victim[idx];
        set[usize::from(*v)] = (h, slave, now);
        *v = (*v + 1) % Self::WAYS as u8;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(mode: Mode, slaves: &[u8]) -> TxPlan {
        let mut p = TxPlan::with_slaves(mode, slaves);
        p.policy = HashPolicy::Layer34;
        p
    }

    fn frames(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut f = Vec::new();
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .udp(1000 + i as u16, 80)
                    .write(&mut f, &[0; 18])
                    .unwrap();
                f
            })
            .collect()
    }

    #[test]
    fn round_robin_alternates_and_honours_packets_per_slave() {
        let fs = frames(8);
        let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
        let mut out = [Choice::Drop; 8];
        let mut p = plan(Mode::BalanceRr, &[0, 2]);
        Selector::default().select_batch(&p, &refs, &mut out);
        let s = |c: Choice| match c {
            Choice::Slave(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(out.map(s), [0, 2, 0, 2, 0, 2, 0, 2]);
        p.packets_per_slave = 3;
        Selector::default().select_batch(&p, &refs, &mut out);
        assert_eq!(out.map(s), [0, 0, 0, 2, 2, 2, 0, 0]);
    }

    #[test]
    fn round_robin_continues_across_batches() {
        let fs = frames(3);
        let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
        let p = plan(Mode::BalanceRr, &[0, 1]);
        let mut sel = Selector::default();
        let mut a = [Choice::Drop; 3];
        let mut b = [Choice::Drop; 3];
        sel.select_batch(&p, &refs, &mut a);
        sel.select_batch(&p, &refs, &mut b);
        assert_eq!(a[2], Choice::Slave(0));
        assert_eq!(b[0], Choice::Slave(1));
    }

    #[test]
    fn active_backup_uses_only_the_active_slave() {
        let fs = frames(4);
        let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
        let mut p = plan(Mode::ActiveBackup, &[1]);
        p.active = Some(1);
        let mut out = [Choice::Drop; 4];
        Selector::default().select_batch(&p, &refs, &mut out);
        assert!(out.iter().all(|c| *c == Choice::Slave(1)));
    }

    #[test]
    fn xor_keeps_a_flow_on_one_slave_and_spreads_flows() {
        let fs = frames(64);
        let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
        let p = plan(Mode::BalanceXor, &[0, 1]);
        let mut a = [Choice::Drop; 64];
        let mut b = [Choice::Drop; 64];
        Selector::default().select_batch(&p, &refs, &mut a);
        Selector::new(7).select_batch(&p, &refs, &mut b);
        assert_eq!(a, b, "same flow, same slave, whatever the worker");
        let on0 = a.iter().filter(|c| **c == Choice::Slave(0)).count();
        assert!((16..=48).contains(&on0), "{on0} of 64 on slave 0");
    }

    #[test]
    fn xor_picks_the_kernels_hash_modulo_slaves_and_keeps_each_frames_bucket() {
        use crate::hash::frame_hash;
        let fs = frames(200);
        let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
        for function in [HashFunction::Kernel, HashFunction::Xxh3] {
            for n in 1..=MAX_SLAVES as u8 {
                let slaves: Vec<u8> = (0..n).map(|s| (s * 3) % MAX_SLAVES as u8).collect();
                let mut p = plan(Mode::BalanceXor, &slaves);
                p.function = function;
                let buckets = bucket_count(usize::from(n));
                let mut sel = Selector::default();
                let mut out = [Choice::Drop; 200];
                sel.select_batch(&p, &refs, &mut out);
                for (i, f) in refs.iter().enumerate() {
                    let h = frame_hash(f, p.policy, function);
                    let want = slaves[(h % u32::from(n)) as usize];
                    assert_eq!(
                        out[i],
                        Choice::Slave(want),
                        "{function} {n} slaves, frame {i}"
                    );
                    if i < SELECT_BATCH {
                        assert_eq!(
                            u32::from(sel.bucket(i)),
                            h % buckets,
                            "{n} slaves, frame {i}"
                        );
                    }
                }
                // Rebalanced: the bucket's entry in the table, whatever the
                // slave count.
                p.hash_rebalanced = true;
                for (b, e) in p.hash_table.iter_mut().enumerate() {
                    *e = ((b * 7 + 1) % usize::from(n)) as u8;
                }
                sel.select_batch(&p, &refs, &mut out);
                for (i, f) in refs.iter().enumerate() {
                    let b = frame_hash(f, p.policy, function) % buckets;
                    let want = slaves[usize::from(p.hash_table[b as usize])];
                    assert_eq!(
                        out[i],
                        Choice::Slave(want),
                        "rebalanced, {n} slaves, frame {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn broadcast_copies_and_no_slave_drops() {
        let fs = frames(2);
        let refs: Vec<&[u8]> = fs.iter().map(|f| f.as_slice()).collect();
        let mut out = [Choice::Drop; 2];
        Selector::default().select_batch(&plan(Mode::Broadcast, &[0, 1]), &refs, &mut out);
        assert_eq!(out, [Choice::All; 2]);
        for mode in Mode::ALL {
            Selector::default().select_batch(&plan(*mode, &[]), &refs, &mut out);
            assert_eq!(out, [Choice::Drop; 2], "{mode}");
        }
    }

    #[test]
    fn duplicate_from_another_slave_is_dropped_once() {
        let fs = frames(2);
        let mut d = DupFilter::default();
        assert!(!d.is_duplicate(&fs[0], 0));
        assert!(d.is_duplicate(&fs[0], 1), "same frame via slave 1");
        assert!(
            !d.is_duplicate(&fs[0], 0),
            "a repeat on the same slave is real"
        );
        assert!(!d.is_duplicate(&fs[1], 1));
        // Long after, the same content on another slave is a new frame.
        assert!(!d.is_duplicate(&fs[0], 0));
        for i in 0..DupFilter::HORIZON as usize + 1 {
            d.is_duplicate(&i.to_be_bytes(), 0);
        }
        assert!(!d.is_duplicate(&fs[0], 1), "too old to be a copy");
    }
}
