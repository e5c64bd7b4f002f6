//! Simulation: two whole bonds (the control core and the worker engine)
//! joined by in-memory links with delay, loss and carrier flaps, driven by a
//! hand-held clock. Nothing sleeps and nothing depends on the machine: every
//! figure below is the same on every run.
//!
//! Back to back (bond A's slave i to bond B's slave i) for balance-rr,
//! active-backup, balance-xor, broadcast and 802.3ad; through a learning
//! switch for balance-tlb and balance-alb (whose transmit balancing needs
//! one; balance-alb's receive balancing needs the hosts' ARP and is tested
//! on veth in tests/alb.rs). Host A sends a numbered stream to host B; the
//! tests check convergence, how the stream spread over the links, and that
//! across a carrier loss the frames that did not arrive are exactly those
//! the links and ports counted as dropped.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use xbond_core::alb::TLB_BUCKETS;
use xbond_core::bond::{Bond, BondEvent, SlaveSpec};
use xbond_core::config::BondConfig;
use xbond_core::datapath::engine::{Engine, Taps, HOST_ARP};
use xbond_core::datapath::mem::{MemFrame, MemFrames, MemPort};
use xbond_core::options::MacAddr;
use xbond_core::plan::TxPlan;
use xbond_core::wire::ETH_P_SLOW;

const RING: usize = 256;
const TICK: Duration = Duration::from_micros(500);
/// Frames host A sends per tick (2000 ticks a second).
const PER_TICK: u64 = 4;
/// UDP destination port that marks the test stream.
const STREAM_PORT: u16 = 9000;

struct Node {
    bond: Bond,
    engine: Engine<MemFrame>,
    upper: MemPort,
    slaves: Vec<MemPort>,
    plan: TxPlan,
    taps: Taps,
    /// Frames the host received (out of the upper port's TX ring).
    delivered: Vec<Vec<u8>>,
    tlb_seen: [u64; TLB_BUCKETS],
    last_tlb: Instant,
    /// "active eth0 -> eth1", "link eth0 down", in order.
    log: Vec<String>,
}

impl Node {
    fn new(toml: &str, macs: [[u8; 6]; 2], now: Instant) -> Node {
        let cfg = BondConfig::from_toml_str(toml).expect("a valid config");
        let specs = cfg
            .slaves
            .iter()
            .zip(macs)
            .map(|(name, mac)| SlaveSpec {
                name: name.clone(),
                perm_mac: MacAddr(mac),
                speed_mbps: Some(10_000),
                full_duplex: Some(true),
            })
            .collect();
        let bond = Bond::new(cfg, specs, now);
        let mut engine = Engine::new(MemFrames::frames(6 * RING, 2048), 2, 7);
        engine.set_raw(false);
        let plan = bond.tx_plan();
        Node {
            bond,
            engine,
            upper: MemPort::new(RING),
            slaves: (0..2).map(|_| MemPort::new(RING)).collect(),
            plan,
            taps: Taps::default(),
            delivered: Vec::new(),
            tlb_seen: [0; TLB_BUCKETS],
            last_tlb: now,
            log: Vec::new(),
        }
    }

    fn name(&self, i: usize) -> String {
        self.bond.config().slaves[i].clone()
    }

    /// One tick of this bond; returns the frames it put on its slaves' wires.
    fn run(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        if self.bond.poll_timeout().is_some_and(|t| t <= now) {
            self.bond.handle_timeout(now);
        }
        while let Some(ev) = self.bond.poll_event() {
            match ev {
                BondEvent::PlanChanged => self.plan = self.bond.tx_plan(),
                BondEvent::PollLinks => {
                    for i in 0..self.slaves.len() {
                        let c = self.slaves[i].carrier();
                        self.bond.handle_carrier(i, c, now);
                    }
                }
                BondEvent::ActiveChanged { old, new } => {
                    let n = |i: Option<usize>| i.map_or("none".into(), |i| self.name(i));
                    self.log.push(format!("active {} -> {}", n(old), n(new)));
                }
                BondEvent::Link { slave, up } => {
                    let state = if up { "up" } else { "down" };
                    self.log.push(format!("link {} {state}", self.name(slave)));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        while let Some(t) = self.bond.poll_transmit() {
            out.push((t.slave, t.frame));
        }
        for _ in 0..8 {
            let pass = self.engine.pass(
                &MemFrames,
                &mut self.upper,
                &mut self.slaves,
                &self.plan,
                &self.taps,
            );
            if pass.work == 0 {
                break;
            }
        }
        while let Some((slave, frame)) = self.taps.pop() {
            if slave == HOST_ARP {
                self.bond.handle_host_arp(frame, now);
            } else {
                self.bond.handle_arp_frame(usize::from(slave), &frame, now);
            }
        }
        if now.duration_since(self.last_tlb) >= Duration::from_millis(100) {
            self.last_tlb = now;
            let stats = self.engine.stats();
            let mut load = [0u64; TLB_BUCKETS];
            for (b, l) in load.iter_mut().enumerate() {
                let total = stats.tlb_bytes[b].load(std::sync::atomic::Ordering::Relaxed);
                *l = total - self.tlb_seen[b];
                self.tlb_seen[b] = total;
            }
            self.bond.note_tlb_load(&load);
        }
        for (i, s) in self.slaves.iter_mut().enumerate() {
            while let Some(f) = s.wire_transmit() {
                out.push((i, f));
            }
        }
        while let Some(f) = self.upper.wire_transmit() {
            self.delivered.push(f);
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Slave { node: usize, slave: usize },
    Switch(usize),
}

/// Data-frame counters of one wire.
#[derive(Debug, Default, Clone, Copy)]
struct WireCounts {
    /// Stream frames carried, per direction (0: from `ends[0]`).
    carried: [u64; 2],
    /// Stream frames lost to the wire's loss.
    lost: u64,
    /// Stream frames dropped because the wire was down (sent onto it, or in
    /// flight when it went down).
    down: u64,
}

struct Wire {
    ends: [End; 2],
    up: bool,
    delay: Duration,
    /// Every `loss_every`-th stream frame is lost (0: none).
    loss_every: u64,
    seen: u64,
    queue: [VecDeque<(Instant, Vec<u8>)>; 2],
    counts: WireCounts,
}

fn is_stream(f: &[u8]) -> bool {
    f.len() >= 50 && f[12..14] == [0x08, 0x00] && f[36..38] == STREAM_PORT.to_be_bytes()
}

fn stream_seq(f: &[u8]) -> u64 {
    u64::from_be_bytes(f[42..50].try_into().expect("8 bytes"))
}

struct Sim {
    now: Instant,
    nodes: Vec<Node>,
    wires: Vec<Wire>,
    /// A learning switch's MAC table: MAC -> switch port.
    fdb: HashMap<[u8; 6], usize>,
    sent: u64,
}

impl Sim {
    fn new(nodes: Vec<Node>, ends: &[[End; 2]], now: Instant) -> Sim {
        let wires = ends
            .iter()
            .map(|e| Wire {
                ends: *e,
                up: true,
                delay: Duration::from_millis(1),
                loss_every: 0,
                seen: 0,
                queue: [VecDeque::new(), VecDeque::new()],
                counts: WireCounts::default(),
            })
            .collect();
        Sim {
            now,
            nodes,
            wires,
            fdb: HashMap::new(),
            sent: 0,
        }
    }

    fn back_to_back(a: &str, b: &str) -> Sim {
        let now = Instant::now();
        let nodes = vec![
            Node::new(a, [[2, 0xa, 0, 0, 0, 1], [2, 0xa, 0, 0, 0, 2]], now),
            Node::new(b, [[2, 0xb, 0, 0, 0, 1], [2, 0xb, 0, 0, 0, 2]], now),
        ];
        let s = |node, slave| End::Slave { node, slave };
        Sim::new(nodes, &[[s(0, 0), s(1, 0)], [s(0, 1), s(1, 1)]], now)
    }

    fn switched(a: &str, b: &str) -> Sim {
        let now = Instant::now();
        let nodes = vec![
            Node::new(a, [[2, 0xa, 0, 0, 0, 1], [2, 0xa, 0, 0, 0, 2]], now),
            Node::new(b, [[2, 0xb, 0, 0, 0, 1], [2, 0xb, 0, 0, 0, 2]], now),
        ];
        let s = |node, slave| End::Slave { node, slave };
        let ends = [
            [s(0, 0), End::Switch(0)],
            [s(0, 1), End::Switch(1)],
            [s(1, 0), End::Switch(2)],
            [s(1, 1), End::Switch(3)],
        ];
        Sim::new(nodes, &ends, now)
    }

    fn wire_of(&self, end: End) -> Option<(usize, usize)> {
        self.wires.iter().enumerate().find_map(|(w, wire)| {
            wire.ends
                .iter()
                .position(|e| *e == end)
                .map(|side| (w, side))
        })
    }

    /// Puts `frame` on wire `w` from side `side`.
    fn send(&mut self, w: usize, side: usize, frame: Vec<u8>) {
        let now = self.now;
        let wire = &mut self.wires[w];
        let stream = is_stream(&frame);
        if !wire.up {
            wire.counts.down += u64::from(stream);
            return;
        }
        if stream {
            wire.seen += 1;
            if wire.loss_every > 0 && wire.seen.is_multiple_of(wire.loss_every) {
                wire.counts.lost += 1;
                return;
            }
            wire.counts.carried[side] += 1;
        }
        wire.queue[side].push_back((now + wire.delay, frame));
    }

    /// The frame arrived at `end`.
    fn arrive(&mut self, end: End, frame: Vec<u8>) {
        match end {
            End::Slave { node, slave } => {
                let n = &mut self.nodes[node];
                if frame.len() >= 14 && frame[12..14] == ETH_P_SLOW.to_be_bytes() {
                    // XDP passes slow protocols to the kernel and the control
                    // plane reads them on its own socket.
                    let _ = n.bond.handle_slow_frame(slave, &frame, self.now);
                } else {
                    n.slaves[slave].wire_receive(&frame);
                }
            }
            End::Switch(port) => {
                let src: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
                let dst: [u8; 6] = frame[0..6].try_into().expect("6 bytes");
                if frame[12..14] == ETH_P_SLOW.to_be_bytes() {
                    return; // 802.1D: slow protocols are not forwarded.
                }
                self.fdb.insert(src, port);
                let outs: Vec<usize> = match self.fdb.get(&dst) {
                    Some(&p) if dst[0] & 1 == 0 => vec![p],
                    _ => (0..4).collect(),
                };
                for p in outs.into_iter().filter(|&p| p != port) {
                    if let Some((w, side)) = self.wire_of(End::Switch(p)) {
                        self.send(w, side, frame.clone());
                    }
                }
            }
        }
    }

    /// Advances one tick: host A sends `stream` frames, both bonds run, the
    /// wires deliver what is due.
    fn tick(&mut self, stream: u64) {
        self.now += TICK;
        for _ in 0..stream {
            let seq = self.sent;
            let dst = self.nodes[1].bond.bond_mac().0;
            let src = self.nodes[0].bond.bond_mac().0;
            self.nodes[0]
                .upper
                .wire_receive(&stream_frame(dst, src, seq));
            self.sent += 1;
        }
        for n in 0..self.nodes.len() {
            let out = self.nodes[n].run(self.now);
            for (slave, frame) in out {
                if let Some((w, side)) = self.wire_of(End::Slave { node: n, slave }) {
                    self.send(w, side, frame);
                }
            }
        }
        for w in 0..self.wires.len() {
            for side in 0..2 {
                while self.wires[w].queue[side]
                    .front()
                    .is_some_and(|(at, _)| *at <= self.now)
                {
                    let Some((_, f)) = self.wires[w].queue[side].pop_front() else {
                        break;
                    };
                    let to = self.wires[w].ends[1 - side];
                    self.arrive(to, f);
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration, stream: u64) {
        let until = self.now + d;
        while self.now < until {
            self.tick(stream);
        }
    }

    /// Runs until `done` holds; panics after `limit` of simulated time.
    fn run_until(&mut self, limit: Duration, what: &str, done: impl Fn(&Sim) -> bool) {
        let until = self.now + limit;
        while !done(self) {
            assert!(
                self.now < until,
                "{what}: not within {limit:?} of simulated time"
            );
            self.tick(0);
        }
    }

    /// The wire's carrier goes down (or up) at both ends, as a cable pull:
    /// the frames on it are lost and each bond hears of it at once (netlink).
    fn set_wire(&mut self, w: usize, up: bool) {
        let now = self.now;
        let wire = &mut self.wires[w];
        wire.up = up;
        if !up {
            for q in &mut wire.queue {
                wire.counts.down += q.drain(..).filter(|(_, f)| is_stream(f)).count() as u64;
            }
        }
        for end in self.wires[w].ends {
            if let End::Slave { node, slave } = end {
                let n = &mut self.nodes[node];
                n.slaves[slave].set_carrier(up);
                n.bond.handle_carrier(slave, up, now);
            }
        }
    }

    /// Stream sequence numbers host B received, and how many copies.
    fn received(&self) -> (BTreeSet<u64>, u64) {
        let mut set = BTreeSet::new();
        let mut copies = 0;
        for f in self.nodes[1].delivered.iter().filter(|f| is_stream(f)) {
            copies += 1;
            set.insert(stream_seq(f));
        }
        (set, copies)
    }

    /// Stream frames the wires and the ports counted as dropped.
    fn counted_drops(&self) -> u64 {
        let wires: u64 = self
            .wires
            .iter()
            .map(|w| w.counts.lost + w.counts.down)
            .sum();
        let ports: u64 = self
            .nodes
            .iter()
            .flat_map(|n| n.slaves.iter().chain(std::iter::once(&n.upper)))
            .map(|p| p.counters().rx_dropped + p.counters().tx_carrier_lost)
            .sum();
        let stats = self.nodes[0].engine.stats();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let engine =
            get(&stats.tx_no_slave) + stats.slaves.iter().map(|s| get(&s.tx_dropped)).sum::<u64>();
        let b = self.nodes[1].engine.stats();
        let b_drops = get(&b.upper_tx_dropped)
            + b.slaves
                .iter()
                .map(|s| get(&s.rx_inactive) + get(&s.rx_malformed))
                .sum::<u64>();
        wires + ports + engine + b_drops
    }

    /// Every frame of both engines is free, in a fill ring or on a TX ring,
    /// and the ports hold exactly the ones lent to them.
    fn assert_books_balance(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let c = n.engine.pool();
            assert!(c.balanced(), "bond {i}: {c:?}");
            let held: usize = n
                .slaves
                .iter()
                .chain(std::iter::once(&n.upper))
                .map(MemPort::held)
                .sum();
            assert_eq!(held, c.in_fill + c.in_tx, "bond {i}: frames the ports hold");
        }
    }
}

/// A stream frame: IPv4/UDP to port STREAM_PORT, 64 flows (source ports) and
/// 64 destination addresses, the sequence number in the payload.
fn stream_frame(dst: [u8; 6], src: [u8; 6], seq: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 1, (seq % 64) as u8]);
    f.extend_from_slice(&(40_000 + (seq % 64) as u16).to_be_bytes());
    f.extend_from_slice(&STREAM_PORT.to_be_bytes());
    f.extend_from_slice(&[0, 16, 0, 0]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(64, 0);
    f
}

fn config(mode: &str, extra: &str) -> String {
    format!("name = \"bond0\"\nslaves = [\"eth0\", \"eth1\"]\nmode = \"{mode}\"\nmiimon = 100\n{extra}\n")
}

/// Runs a stream of `secs` with wire 0 pulled at a third and put back at two
/// thirds; returns (sent, unique received, copies received).
fn stream_across_a_flap(sim: &mut Sim, secs: u64) -> (u64, u64, u64) {
    let third = Duration::from_millis(secs * 1000 / 3);
    sim.run_for(third, PER_TICK);
    sim.set_wire(0, false);
    sim.run_for(third, PER_TICK);
    sim.set_wire(0, true);
    sim.run_for(third, PER_TICK);
    // Let everything in flight land.
    sim.run_for(Duration::from_millis(50), 0);
    let (got, copies) = sim.received();
    (sim.sent, got.len() as u64, copies)
}

fn carried(sim: &Sim, w: usize) -> u64 {
    sim.wires[w].counts.carried[0]
}

#[test]
fn active_backup_fails_over_losing_exactly_what_was_on_the_dead_link() {
    let cfg = config("active-backup", "primary = \"eth0\"");
    let mut sim = Sim::back_to_back(&cfg, &cfg);
    sim.run_until(Duration::from_secs(1), "both bonds up", |s| {
        s.nodes
            .iter()
            .all(|n| n.bond.carrier() && n.bond.active() == Some(0))
    });
    sim.run_for(Duration::from_millis(100), PER_TICK);
    assert_eq!(carried(&sim, 1), 0, "the backup carries nothing");
    let before = carried(&sim, 0);
    assert!(before > 0);
    let (sent, got, copies) = stream_across_a_flap(&mut sim, 3);
    let lost = sent - got;
    assert_eq!(copies, got, "each frame arrives once");
    assert_eq!(
        lost,
        sim.counted_drops(),
        "every lost frame is counted where it died"
    );
    // What was lost is what was on the wire and its rings when it was pulled:
    // at most the wire's delay of traffic plus a batch.
    assert!(lost > 0 && lost <= 2 * PER_TICK + 64, "lost {lost}");
    assert!(carried(&sim, 1) > 0, "the backup took over");
    assert_eq!(
        sim.nodes[0].log,
        [
            "link eth0 up",
            "active none -> eth0",
            "link eth1 up",
            "link eth0 down",
            "active eth0 -> eth1",
            "link eth0 up",
            "active eth1 -> eth0",
        ],
        "failover and return, in order"
    );
    sim.assert_books_balance();
}

#[test]
fn balance_rr_and_xor_spread_the_stream_and_lose_only_the_dead_links_share() {
    for mode in ["balance-rr", "balance-xor"] {
        let cfg = config(mode, "xmit_hash_policy = \"layer3+4\"");
        let mut sim = Sim::back_to_back(&cfg, &cfg);
        sim.run_until(Duration::from_secs(1), "both bonds up", |s| {
            s.nodes.iter().all(|n| n.plan.tx_count == 2)
        });
        sim.run_for(Duration::from_millis(200), PER_TICK);
        let (a, b) = (carried(&sim, 0), carried(&sim, 1));
        assert!(a > 0 && b > 0, "{mode}: both links carry ({a}, {b})");
        // 64 flows: an even hash leaves one link with 32 +- 4; a third of
        // the total apart is 2.7 standard deviations.
        assert!(a.abs_diff(b) <= (a + b) / 3, "{mode}: spread ({a}, {b})");
        let (sent, got, _) = stream_across_a_flap(&mut sim, 3);
        assert_eq!(
            sent - got,
            sim.counted_drops(),
            "{mode}: every loss counted"
        );
        sim.assert_books_balance();
    }
}

#[test]
fn broadcast_loses_nothing_when_one_link_dies_and_delivers_once() {
    let cfg = config("broadcast", "");
    let mut sim = Sim::back_to_back(&cfg, &cfg);
    sim.run_until(Duration::from_secs(1), "both bonds up", |s| {
        s.nodes.iter().all(|n| n.plan.tx_count == 2)
    });
    let (sent, got, copies) = stream_across_a_flap(&mut sim, 3);
    assert_eq!(got, sent, "the other link's copy arrives");
    assert_eq!(copies, sent, "duplicates are dropped");
    assert!(sim.wires[0].counts.down > 0, "wire 0 did drop copies");
    sim.assert_books_balance();
}

#[test]
fn lacp_converges_distributes_and_survives_a_lossy_link_and_a_flap() {
    let cfg = config(
        "802.3ad",
        "lacp_rate = \"fast\"\nxmit_hash_policy = \"layer3+4\"",
    );
    let mut sim = Sim::back_to_back(&cfg, &cfg);
    // Every 7th stream frame on wire 1 is lost: LACPDUs are not (they are
    // not stream frames), so the aggregation holds while data suffers.
    sim.wires[1].loss_every = 7;
    sim.run_until(Duration::from_secs(10), "LACP aggregates both links", |s| {
        s.nodes
            .iter()
            .all(|n| n.plan.tx_count == 2 && n.bond.carrier())
    });
    sim.run_for(Duration::from_millis(200), PER_TICK);
    assert!(carried(&sim, 0) > 0 && carried(&sim, 1) > 0, "distributes");
    let (sent, got, copies) = stream_across_a_flap(&mut sim, 6);
    assert_eq!(copies, got);
    assert_eq!(sent - got, sim.counted_drops(), "every loss counted");
    assert!(sim.wires[1].counts.lost > 0);
    // Back after the flap: both links aggregated again.
    sim.run_until(Duration::from_secs(10), "LACP re-aggregates", |s| {
        s.nodes.iter().all(|n| n.plan.tx_count == 2)
    });
    sim.assert_books_balance();
}

#[test]
fn tlb_and_alb_balance_destinations_over_a_switch_and_fail_over() {
    for mode in ["balance-tlb", "balance-alb"] {
        let a = config(mode, "");
        let b = config("active-backup", "primary = \"eth0\"");
        let mut sim = Sim::switched(&a, &b);
        sim.run_until(Duration::from_secs(1), "both bonds up", |s| {
            s.nodes.iter().all(|n| n.bond.carrier())
        });
        // B announces itself so that the switch learns where it is.
        let (dst, src) = (
            sim.nodes[0].bond.bond_mac().0,
            sim.nodes[1].bond.bond_mac().0,
        );
        let mut hello = stream_frame(dst, src, u64::MAX);
        hello[36..38].copy_from_slice(&1u16.to_be_bytes());
        sim.nodes[1].upper.wire_receive(&hello);
        sim.run_for(Duration::from_millis(10), 0);
        // Long enough for the load to be sampled and destinations assigned.
        sim.run_for(Duration::from_millis(500), PER_TICK);
        let (a0, a1) = (carried(&sim, 0), carried(&sim, 1));
        assert!(
            a0 > 0 && a1 > 0,
            "{mode}: both of A's slaves send ({a0}, {a1})"
        );
        let (sent, got, copies) = stream_across_a_flap(&mut sim, 3);
        assert_eq!(copies, got, "{mode}");
        assert_eq!(
            sent - got,
            sim.counted_drops(),
            "{mode}: every loss counted"
        );
        assert!(
            sim.nodes[0].log.iter().any(|l| l == "link eth0 down"),
            "{mode}: {:?}",
            sim.nodes[0].log
        );
        sim.assert_books_balance();
    }
}
