//! `xbond pktgen`: a traffic generator and sink for the tests, the demo, the
//! failover measurement and the benchmark. Frames are UDP/IPv4 (or, with
//! [`Mix::Varied`], UDP, TCP and ICMP echo over IPv4 and IPv6) with a payload
//! that names the stream, the flow and a sequence number, so the sink can
//! report frames per interface, loss and the longest gap, duplicates,
//! reordering, and how flows spread over the interfaces.
//!
//! Two engines, chosen with `--engine`:
//!
//! - AF_PACKET ([`send`], [`sink`]), the default: works beside a running
//!   bond (e.g. on its bond0) and is enough for functional tests, up to
//!   about 100 kpps.
//! - AF_XDP in copy mode ([`send_xdp`], [`sink_xdp`], over
//!   [`xbond_xdp::gen`]): far faster, the benchmark's generator and the
//!   failover measurement's sender. The sink attaches the xbond XDP program
//!   to its interfaces, so it cannot count on interfaces a bond uses.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xbond_core::options::MacAddr;
use xbond_xdp::packet::{PacketSocket, ETH_P_ALL};

const MAGIC: &[u8; 4] = b"XBPG";
const UDP_BASE_PORT: u16 = 20000;
const UDP_DST_PORT: u16 = 9; // discard

/// What to send.
#[derive(Debug, Clone)]
pub struct SendSpec {
    /// Interface to send on.
    pub iface: String,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC; default: the interface's.
    pub src_mac: MacAddr,
    /// Source IPv4.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 (the first of `dst_ips`).
    pub dst_ip: Ipv4Addr,
    /// Number of destination addresses (consecutive from `dst_ip`), used
    /// with the flows: flow f goes to `dst_ip + f % dst_ips`.
    pub dst_ips: u32,
    /// Number of flows (distinct UDP source ports), used round robin.
    pub flows: u32,
    /// Frames to send.
    pub count: u64,
    /// Frames per second; 0 = as fast as possible.
    pub rate: u64,
    /// Frame size in bytes (without FCS), at least 60.
    pub size: usize,
    /// Stream id, so a sink ignores other traffic.
    pub stream: u32,
    /// What the flows are made of.
    pub mix: Mix,
}

/// What a stream's flows are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mix {
    /// UDP over IPv4 between the spec's MACs and addresses; flows differ in
    /// the UDP source port (and the destination address, with `dst_ips`).
    #[default]
    Udp4,
    /// Flow f is UDP, TCP, ICMP echo over IPv4, then the same over IPv6, in
    /// turn, each with MACs (the low bytes of the spec's), addresses, ports
    /// and echo id of its own: every field some `xmit_hash_policy` reads
    /// varies from flow to flow. The hash oracle's input.
    Varied,
}

/// Builds frame `seq` of a stream.
pub fn build_frame(spec: &SendSpec, seq: u64) -> Vec<u8> {
    let flow = (seq % u64::from(spec.flows.max(1))) as u32;
    if spec.mix == Mix::Varied {
        return varied_frame(spec, flow, seq);
    }
    // 60 bytes minimum (Ethernet), 1514 maximum (no jumbo frames).
    let size = spec.size.clamp(60, 1514);
    let mut f = Vec::with_capacity(size);
    f.extend_from_slice(&spec.dst_mac.0);
    f.extend_from_slice(&spec.src_mac.0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&spec.src_ip.octets());
    let dst = u32::from(spec.dst_ip).wrapping_add(flow % spec.dst_ips.max(1));
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let csum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&(UDP_BASE_PORT.wrapping_add(flow as u16)).to_be_bytes());
    f.extend_from_slice(&UDP_DST_PORT.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&spec.stream.to_be_bytes());
    f.extend_from_slice(&flow.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(size, 0);
    f
}

fn ipv4_checksum(h: &[u8; 20]) -> u16 {
    xbond_core::wire::inet_checksum(&[h])
}

/// Frame `seq` of flow `flow` of a [`Mix::Varied`] stream.
fn varied_frame(spec: &SendSpec, flow: u32, seq: u64) -> Vec<u8> {
    // Spreads the flow number's bits over every field.
    let x = flow.wrapping_add(1).wrapping_mul(0x9e37_79b1);
    let b = x.to_be_bytes();
    let (mut dst, mut src) = (spec.dst_mac.0, spec.src_mac.0);
    // The first byte (unicast, locally administered) is kept.
    dst[4] ^= b[0];
    dst[5] ^= b[1];
    src[4] ^= b[2];
    src[5] ^= b[3];
    let v6 = flow % 6 >= 3;
    let (proto, l4_len) = match flow % 3 {
        0 => (17u8, 8usize),
        1 => (6, 20),
        _ => (if v6 { 58 } else { 1 }, 8),
    };
    let mut l4 = vec![0u8; l4_len];
    let sport = 1024 + (x >> 7) as u16 % 60000;
    let dport = 1 + (x >> 19) as u16 % 1000;
    if l4_len == 20 {
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[12] = 5 << 4; // data offset: 5 words
        l4[13] = 0x18; // PSH, ACK
        l4[14..16].copy_from_slice(&8192u16.to_be_bytes());
    } else if proto == 17 {
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
    } else {
        l4[0] = if v6 { 128 } else { 8 }; // echo request
                                          // A non-zero id: the kernel's layer3+4 hash takes the id then.
        l4[4..6].copy_from_slice(&((x >> 5) as u16 | 0x100).to_be_bytes());
        l4[6..8].copy_from_slice(&(seq as u16).to_be_bytes());
    }
    let mut payload = Vec::with_capacity(20);
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(&spec.stream.to_be_bytes());
    payload.extend_from_slice(&flow.to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    let l3_len = if v6 { 40 } else { 20 };
    let size = spec.size.clamp(14 + l3_len + l4_len + payload.len(), 1514);
    let ip_payload = size - 14 - l3_len;
    if proto == 17 {
        l4[4..6].copy_from_slice(&(ip_payload as u16).to_be_bytes());
    }
    let mut f = Vec::with_capacity(size);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if v6 {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(ip_payload as u16).to_be_bytes());
        ip[6] = proto;
        ip[7] = 64;
        let addr = |v: u32| {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[1] = 0x78;
            a[8..12].copy_from_slice(&v.rotate_left(13).to_be_bytes());
            a[12..16].copy_from_slice(&v.to_be_bytes());
            a
        };
        ip[8..24].copy_from_slice(&addr(u32::from(spec.src_ip) ^ (x >> 3)));
        ip[24..40].copy_from_slice(&addr(u32::from(spec.dst_ip) ^ (x >> 11)));
        f.extend_from_slice(&ip);
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((ip_payload + 20) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        // Within the spec's /16s.
        let src_ip = u32::from(spec.src_ip) ^ ((x >> 3) & 0xffff);
        let dst_ip = u32::from(spec.dst_ip) ^ ((x >> 11) & 0xffff);
        ip[12..16].copy_from_slice(&src_ip.to_be_bytes());
        ip[16..20].copy_from_slice(&dst_ip.to_be_bytes());
        let csum = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&l4);
    f.extend_from_slice(&payload);
    f.resize(size, 0);
    f
}

/// The stream id the sink gives the Linux kernel's pktgen frames (UDP with
/// pktgen's header: its magic, then a sequence number); their flow is the
/// UDP source port.
pub const KERNEL_PKTGEN_STREAM: u32 = 0;

/// pktgen's `PKTGEN_MAGIC` (net/core/pktgen.c), at the start of the UDP payload.
const KERNEL_PKTGEN_MAGIC: [u8; 4] = [0xbe, 0x9b, 0xe9, 0x55];

/// Parses a generator frame (UDP, TCP or ICMP echo over IPv4 or IPv6,
/// behind up to two VLAN tags), or a frame of the kernel's pktgen: (stream,
/// flow, seq).
pub fn parse_frame(f: &[u8]) -> Option<(u32, u32, u64)> {
    let eth = xbond_core::wire::EthInfo::parse(f)?;
    let l3 = eth.l3_offset;
    let (proto, l4) = match eth.ethertype {
        0x0800 => (*f.get(l3 + 9)?, l3 + usize::from(*f.get(l3)? & 0x0f) * 4),
        0x86dd => (*f.get(l3 + 6)?, l3 + 40),
        _ => return None,
    };
    let p = l4
        + match proto {
            6 => usize::from(*f.get(l4 + 12)? >> 4) * 4,
            17 | 1 | 58 => 8,
            _ => return None,
        };
    if proto == 17 && f.get(p..p + 4)? == KERNEL_PKTGEN_MAGIC {
        let sport = u16::from_be_bytes(f.get(l4..l4 + 2)?.try_into().ok()?);
        let seq = u32::from_be_bytes(f.get(p + 4..p + 8)?.try_into().ok()?);
        return Some((KERNEL_PKTGEN_STREAM, u32::from(sport), u64::from(seq)));
    }
    if f.get(p..p + 4)? != MAGIC {
        return None;
    }
    let stream = u32::from_be_bytes(f.get(p + 4..p + 8)?.try_into().ok()?);
    let flow = u32::from_be_bytes(f.get(p + 8..p + 12)?.try_into().ok()?);
    let seq = u64::from_be_bytes(f.get(p + 12..p + 20)?.try_into().ok()?);
    Some((stream, flow, seq))
}

/// What the sender did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReport {
    /// Frames sent.
    pub sent: u64,
    /// Send errors (e.g. ENOBUFS, carrier down).
    pub errors: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// The AF_XDP generator with a rate: when its schedule started
    /// (nanoseconds since the Unix epoch; frame `seq` was due `seq / rate`
    /// seconds later), else 0.
    #[serde(default)]
    pub start_ns: u64,
    /// The AF_XDP generator with a rate: rounds of frames written late, as
    /// `[first frame, nanoseconds late]` (see `xbond_xdp::gen::GenReport`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late: Vec<[u64; 2]>,
    /// The generator ran late more often than it could record: past its
    /// last recorded late round, sending times are unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_truncated: bool,
}

impl SendReport {
    /// With a rate: when frame `seq` was due, in nanoseconds since the Unix
    /// epoch. `None` without a schedule.
    pub fn due_ns(&self, seq: u64, rate: u64) -> Option<u64> {
        if self.start_ns == 0 || rate == 0 {
            return None;
        }
        let after = u64::try_from(u128::from(seq) * 1_000_000_000 / u128::from(rate)).ok()?;
        self.start_ns.checked_add(after)
    }

    /// With a rate: when frame `seq` left, in nanoseconds since the Unix
    /// epoch: when it was due, or, if the last late round at or before it
    /// wrote it later than that, when that round ran. `None` without a
    /// schedule, or past the last late round recorded when more came than
    /// were kept.
    pub fn sent_at_ns(&self, seq: u64, rate: u64) -> Option<u64> {
        let due = self.due_ns(seq, rate)?;
        if self.late_truncated && self.late.last().is_none_or(|[first, _]| seq > *first) {
            return None;
        }
        // The late rounds are in stream order: the last at or before `seq`
        // by binary search (up to LATE_KEPT of them, and a call per lost
        // frame).
        let at_or_before = self.late.partition_point(|[first, _]| *first <= seq);
        let round = at_or_before
            .checked_sub(1)
            .and_then(|i| self.late.get(i))
            .and_then(|&[first, ns]| Some(self.due_ns(first, rate)? + ns));
        Some(round.map_or(due, |r| due.max(r)))
    }
}

/// Nanoseconds since the Unix epoch now (CLOCK_REALTIME, the clock of the
/// kernel's packet stamps).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Sends a stream.
pub fn send(spec: &SendSpec) -> Result<SendReport> {
    send_paced(&spec.iface, spec.count, spec.rate, |seq| {
        build_frame(spec, seq)
    })
}

/// Sends `count` frames, frame `seq` being `frame(seq)`, on `iface` over
/// AF_PACKET at `rate` frames/s (0: as fast as the socket takes them).
fn send_paced(
    iface: &str,
    count: u64,
    rate: u64,
    mut frame: impl FnMut(u64) -> Vec<u8>,
) -> Result<SendReport> {
    let sock = PacketSocket::open(iface, 0)?;
    let start = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    for seq in 0..count {
        pace(start, seq, rate);
        match sock.send(&frame(seq)) {
            Ok(()) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    Ok(SendReport {
        sent,
        errors,
        seconds: start.elapsed().as_secs_f64(),
        start_ns: 0,
        late: Vec::new(),
        late_truncated: false,
    })
}

/// Waits until frame `seq` of a stream started at `start` is due at `rate`
/// frames/s (0: at once).
fn pace(start: Instant, seq: u64, rate: u64) {
    let Some(due_ns) = seq.saturating_mul(1_000_000_000).checked_div(rate) else {
        return;
    };
    let due = Duration::from_nanos(due_ns);
    loop {
        let el = start.elapsed();
        if el >= due {
            return;
        }
        let left = due - el;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Bad input for the fault tests (`xbond pktgen inject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Junk {
    /// Well-formed LACPDUs from a system of their own ([`JUNK_SYSTEM`]),
    /// a port number per frame.
    Lacpdu,
    /// LACPDUs that break a rule each, in turn: version 0, a wrong TLV
    /// type, a wrong TLV length, cut short.
    LacpduMalformed,
    /// Frames whose EtherType promises more than they hold, in turn: IPv4,
    /// IPv6, ARP, a VLAN tag, two VLAN tags, a slow-protocol subtype.
    Truncated,
    /// Random bytes of random length (14 to 1514) to a random destination.
    Garbage,
}

/// The actor system of [`Junk::Lacpdu`] frames.
pub const JUNK_SYSTEM: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x99, 0x99]);

/// The `seq`th frame of `kind`, from `src` to `dst` (where it has one).
pub fn junk_frame(kind: Junk, seq: u64, src: MacAddr, dst: MacAddr, rng: &mut u64) -> Vec<u8> {
    use xbond_core::lacp::wire::{Lacpdu, PortInfo, PortState};
    let lacpdu = || {
        let port = |p: u16| PortInfo {
            system_priority: 65535,
            system: JUNK_SYSTEM,
            key: 99,
            port_priority: 255,
            port: p,
            state: PortState(
                PortState::ACTIVITY | PortState::AGGREGATION | PortState::SYNCHRONIZATION,
            ),
        };
        Lacpdu {
            version: 1,
            actor: port((seq % 1000) as u16 + 1),
            partner: port(0),
            collector_max_delay: 0,
        }
        .emit(src)
    };
    let mut next = || {
        // xorshift64: reproducible garbage.
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let eth = |ethertype: u16, body: &[u8]| {
        let mut f = Vec::with_capacity(14 + body.len());
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(body);
        f
    };
    match kind {
        Junk::Lacpdu => lacpdu(),
        Junk::LacpduMalformed => {
            let mut f = lacpdu();
            match seq % 4 {
                0 => f[15] = 0,
                1 => f[16] = 7,
                2 => f[17] = 19,
                _ => f.truncate(60),
            }
            f
        }
        Junk::Truncated => match seq % 6 {
            0 => eth(0x0800, &[0x45, 0x00, 0x00]),
            1 => eth(0x86dd, &[0x60, 0, 0, 0, 0, 8, 17]),
            2 => eth(0x0806, &[0, 1, 8, 0, 6]),
            3 => eth(0x8100, &[0x00]),
            4 => eth(0x88a8, &[0x00, 0x05, 0x81, 0x00, 0x00]),
            _ => {
                let mut f = eth(xbond_core::wire::ETH_P_SLOW, &[1]);
                f[..6].copy_from_slice(&xbond_core::lacp::wire::SLOW_PROTOCOLS_MAC.0);
                f
            }
        },
        Junk::Garbage => {
            let len = 14 + (next() % 1501) as usize;
            (0..len).map(|_| next() as u8).collect()
        }
    }
}

/// Sends `count` frames of `kind` on `iface` at `rate` frames/s (0: as fast
/// as the socket takes them).
pub fn inject(iface: &str, kind: Junk, dst: MacAddr, count: u64, rate: u64) -> Result<SendReport> {
    let src = xbond_xdp::netlink::Netlink::open()?.link(iface)?.mac;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    send_paced(iface, count, rate, |seq| {
        junk_frame(kind, seq, src, dst, &mut rng)
    })
}

/// What a sink saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkReport {
    /// Frames of the stream per interface.
    pub per_iface: BTreeMap<String, u64>,
    /// All frames of the stream received.
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Frames received more than once.
    pub duplicates: u64,
    /// Expected frames (given, or highest seq + 1).
    pub expected: u64,
    /// expected - unique.
    pub lost: u64,
    /// Longest run of consecutive missing sequence numbers.
    pub longest_gap: u64,
    /// The frames around a cut, with the sink's cut file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub around_cut: Option<AroundCut>,
    /// The frames on either side of the longest gap, when it has both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_gap_edges: Option<GapEdges>,
    /// Runs of missing sequence numbers as `[first, length]`, in order (the
    /// first 100).
    #[serde(default)]
    pub gaps: Vec<[u64; 2]>,
    /// Frames that arrived after a higher sequence number of the same flow.
    pub reordered: u64,
    /// Distinct flows seen.
    pub flows: u64,
    /// Flows seen on more than one interface.
    pub flows_on_several_ifaces: u64,
    /// The interface each flow's first frame arrived on.
    #[serde(default)]
    pub flow_iface: BTreeMap<u32, String>,
    /// Fraction of consecutive sequence numbers (both received) that arrived
    /// on different interfaces: ~1.0 for round robin over two links.
    pub alternation: f64,
    /// Seconds from the first to the last frame (AF_XDP sink only).
    #[serde(default)]
    pub seconds: f64,
    /// Frames the kernel dropped at the sink's own sockets (AF_PACKET sink:
    /// the socket buffer was full), of any stream.
    #[serde(default)]
    pub dropped_at_sink: u64,
}

/// The frames that bound the longest gap of a stream, and when they came:
/// nanoseconds since the Unix epoch, the kernel's arrival stamp (AF_PACKET
/// sink) or the reading time (AF_XDP sink).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapEdges {
    /// The last frame received before the gap.
    pub before: u64,
    /// When it arrived.
    pub before_ns: u64,
    /// The first frame received after the gap.
    pub after: u64,
    /// When it arrived.
    pub after_ns: u64,
    /// Distinct frames received below the gap.
    pub received_before: u64,
}

/// The frames that came last before and first after a cut: a caller that
/// cut a path (a carrier, a link) writes to the sink's cut file, as two
/// numbers, when its cut began and ended (nanoseconds since the Unix
/// epoch). A frame that arrived after the end crossed the path that was
/// left; frames within the cut are neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AroundCut {
    /// The cut's start and end, as read from the file.
    pub cut_ns: [u64; 2],
    /// The last frame that arrived before the cut began: `[seq, ns]`.
    pub last_before: Option<[u64; 2]>,
    /// The first frame that arrived after it ended: `[seq, ns]`.
    pub first_after: Option<[u64; 2]>,
}

impl AroundCut {
    /// Reads a cut file: two numbers, the cut's start and end. `None` if
    /// it is absent or says something else.
    pub fn read_cut(path: &std::path::Path) -> Option<[u64; 2]> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut n = text.split_whitespace().map(str::parse::<u64>);
        match (n.next(), n.next(), n.next()) {
            (Some(Ok(a)), Some(Ok(b)), None) if a <= b => Some([a, b]),
            _ => None,
        }
    }

    /// The frames of `v` around `cut`.
    fn find(v: &[Arrival], cut: [u64; 2]) -> AroundCut {
        let mut r = AroundCut {
            cut_ns: cut,
            ..AroundCut::default()
        };
        for &(seq, _, _, at) in v {
            if at < cut[0] && r.last_before.is_none_or(|[_, t]| at > t) {
                r.last_before = Some([seq, at]);
            }
            if at >= cut[1] && r.first_after.is_none_or(|[_, t]| at < t) {
                r.first_after = Some([seq, at]);
            }
        }
        r
    }
}

/// One received frame: sequence number, flow, interface index, arrival
/// time (nanoseconds since the Unix epoch).
type Arrival = (u64, u32, usize, u64);

/// When a sink stops, and what it counts.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// Streams to count (frames of others are ignored).
    pub streams: Vec<u32>,
    /// Give up after this long.
    pub duration: Duration,
    /// Stop when this long passes without a frame after the first one.
    pub idle: Duration,
    /// Frames expected per stream (for loss).
    pub expected: Option<u64>,
    /// Stop as soon as every stream has `expected` distinct frames.
    pub until_expected: bool,
    /// A file where a caller writes, while the sink runs, when it cut a path
    /// (see [`AroundCut`]).
    pub cut_file: Option<std::path::PathBuf>,
}

/// What the AF_PACKET sink's threads collect.
#[derive(Default)]
struct Seen {
    arrivals: BTreeMap<u32, Vec<Arrival>>,
    seqs: HashMap<u32, std::collections::HashSet<u64>>,
    last: Option<Instant>,
}

/// Receives on `ifaces` until the spec says stop; a report per stream.
pub fn sink(ifaces: &[String], spec: &SinkSpec) -> Result<BTreeMap<u32, SinkReport>> {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut socks = Vec::new();
    for name in ifaces {
        let sock =
            PacketSocket::open(name, ETH_P_ALL).with_context(|| format!("sink on {name}"))?;
        // Room for a second of traffic: a sink descheduled on a busy machine
        // catches up instead of losing frames.
        sock.set_rcvbuf(SINK_RCVBUF)?;
        // The kernel's arrival time, not the reading thread's: a sink that
        // slept through a gap wakes later than its first frame came.
        sock.enable_timestamps()?;
        sock.take_drops()?;
        socks.push(sock);
    }
    let mut threads = Vec::new();
    for (i, sock) in socks.into_iter().enumerate() {
        let seen = seen.clone();
        let stop = stop.clone();
        let streams = spec.streams.clone();
        threads.push(std::thread::spawn(move || -> u64 {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match sock.recv_stamped(&mut buf, Duration::from_millis(20)) {
                    Ok(Some((n, stamp))) if n > 0 => {
                        let Some((s, flow, seq)) = parse_frame(&buf[..n]) else {
                            continue;
                        };
                        if !streams.contains(&s) {
                            continue;
                        }
                        if let Ok(mut v) = seen.lock() {
                            let now = Instant::now();
                            let at = stamp.unwrap_or_else(now_ns);
                            v.arrivals.entry(s).or_default().push((seq, flow, i, at));
                            v.seqs.entry(s).or_default().insert(seq);
                            v.last = Some(now);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            sock.take_drops().unwrap_or(0)
        }));
    }
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if start.elapsed() >= spec.duration {
            break;
        }
        let Ok(v) = seen.lock() else { break };
        if v.last.is_some_and(|last| last.elapsed() >= spec.idle) {
            break;
        }
        if let (true, Some(want)) = (spec.until_expected, spec.expected) {
            let got = |s: &u32| v.seqs.get(s).map_or(0, |q| q.len() as u64);
            if spec.streams.iter().all(|s| got(s) >= want) {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let cut = spec.cut_file.as_deref().and_then(AroundCut::read_cut);
    let mut dropped = 0;
    for t in threads {
        dropped += t.join().unwrap_or(0);
    }
    let mut v = std::mem::take(
        &mut *seen
            .lock()
            .map_err(|_| anyhow::anyhow!("sink thread panicked"))?,
    );
    Ok(spec
        .streams
        .iter()
        .map(|s| {
            let arrivals = v.arrivals.remove(s).unwrap_or_default();
            let mut r = summarize(ifaces, &arrivals, spec.expected);
            r.around_cut = cut.map(|c| AroundCut::find(&arrivals, c));
            r.dropped_at_sink = dropped;
            (*s, r)
        })
        .collect())
}

/// The AF_PACKET sink's receive buffer per socket.
const SINK_RCVBUF: i32 = 32 << 20;

/// Offset of the sequence number in a generator frame (20-byte IPv4
/// header): Ethernet 14 + IPv4 20 + UDP 8 + magic, stream and flow 12.
const SEQ_AT: usize = 54;

/// Sends a stream through AF_XDP (copy mode on veth): the generator for the
/// benchmark, far faster than AF_PACKET. Over `queues` TX queues (a socket
/// each, one thread), flow `f` on queue `f % queues`: on a veth the peer
/// receives each on the RX queue of the same number.
pub fn send_xdp(spec: &SendSpec, duration: Duration, queues: u32) -> Result<SendReport> {
    // The generator rewrites the sequence number at one offset for all.
    anyhow::ensure!(
        spec.mix == Mix::Udp4,
        "the AF_XDP generator sends only the udp4 mix"
    );
    let mut nl = xbond_xdp::netlink::Netlink::open()?;
    let link = nl.link(&spec.iface)?;
    let mut ports = xbond_xdp::gen::XskPort::open_queues(&spec.iface, link.index, queues, false)
        .with_context(|| format!("AF_XDP generator on {} ({queues} queue(s))", spec.iface))?;
    let templates = (0..u64::from(spec.flows.max(1)))
        .map(|f| build_frame(spec, f))
        .collect();
    let g = xbond_xdp::gen::generate(
        &mut ports,
        &xbond_xdp::gen::GenSpec {
            templates,
            seq_at: SEQ_AT,
            count: spec.count,
            rate: spec.rate,
            duration,
        },
    )?;
    Ok(SendReport {
        sent: g.sent,
        errors: 0,
        seconds: g.seconds,
        start_ns: g.start_ns,
        late: g.late,
        late_truncated: g.late_truncated,
    })
}

/// Receives through AF_XDP on queues `0..queues` of each of `ifaces`
/// (attaching the xbond XDP program to each, so not on interfaces a bond
/// uses), as [`sink`] does. Once every socket is bound and registered with
/// the program, writes their number to `ready_file`, for a caller to wait
/// on.
pub fn sink_xdp(
    ifaces: &[String],
    stream: u32,
    duration: Duration,
    idle: Duration,
    expected: Option<u64>,
    queues: u32,
    ready_file: Option<&std::path::Path>,
) -> Result<SinkReport> {
    let mut nl = xbond_xdp::netlink::Netlink::open()?;
    let mut ports = Vec::new();
    // Per socket, its interface's index in `ifaces`.
    let mut iface_of = Vec::new();
    for (i, name) in ifaces.iter().enumerate() {
        let link = nl.link(name)?;
        let q = xbond_xdp::gen::XskPort::open_queues(name, link.index, queues, true)
            .with_context(|| format!("AF_XDP sink on {name} ({queues} queue(s))"))?;
        iface_of.extend(std::iter::repeat_n(i, q.len()));
        ports.extend(q);
    }
    if let Some(path) = ready_file {
        std::fs::write(path, format!("{}\n", ports.len()))
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    let mut v: Vec<Arrival> = Vec::with_capacity(1 << 20);
    xbond_xdp::gen::receive(&mut ports, duration, idle, |k, f| {
        if let Some((s, flow, seq)) = parse_frame(f) {
            if s == stream {
                v.push((seq, flow, iface_of[k], now_ns()));
            }
        }
    })?;
    let mut r = summarize(ifaces, &v, expected);
    r.seconds = match (v.first(), v.last()) {
        (Some(f), Some(l)) => l.3.saturating_sub(f.3) as f64 / 1e9,
        _ => 0.0,
    };
    Ok(r)
}

fn summarize(ifaces: &[String], v: &[Arrival], expected: Option<u64>) -> SinkReport {
    let mut r = SinkReport::default();
    for name in ifaces {
        r.per_iface.insert(name.clone(), 0);
    }
    // Per sequence number: the interface and time of its first arrival.
    let mut first_iface: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut flow_max: HashMap<u32, u64> = HashMap::new();
    let mut flow_ifaces: HashMap<u32, u32> = HashMap::new();
    for &(seq, flow, i, at) in v {
        r.received += 1;
        if let Some(c) = r.per_iface.get_mut(&ifaces[i]) {
            *c += 1;
        }
        match first_iface.entry(seq) {
            std::collections::hash_map::Entry::Occupied(_) => r.duplicates += 1,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((i, at));
            }
        }
        let m = flow_max.entry(flow).or_insert(0);
        if seq < *m {
            r.reordered += 1;
        }
        *m = (*m).max(seq);
        *flow_ifaces.entry(flow).or_insert(0) |= 1 << i.min(31);
        r.flow_iface
            .entry(flow)
            .or_insert_with(|| ifaces[i].clone());
    }
    r.unique = first_iface.len() as u64;
    let max_seq = first_iface.keys().max().map_or(0, |m| m + 1);
    r.expected = expected.unwrap_or(max_seq);
    r.lost = r.expected.saturating_sub(r.unique);
    let mut gap = 0;
    // The longest gap's first sequence number.
    let mut longest_at = 0;
    let (mut pairs, mut alternating) = (0u64, 0u64);
    for seq in 0..r.expected {
        match first_iface.get(&seq).map(|&(i, _)| i) {
            None => {
                gap += 1;
                if gap > r.longest_gap {
                    r.longest_gap = gap;
                    longest_at = seq + 1 - gap;
                }
                if gap == 1 && r.gaps.len() < 100 {
                    r.gaps.push([seq, 0]);
                }
                if let Some(g) = r.gaps.last_mut().filter(|g| g[0] + g[1] == seq) {
                    g[1] += 1;
                }
            }
            Some(i) => {
                gap = 0;
                if let Some(&(j, _)) = seq.checked_sub(1).and_then(|p| first_iface.get(&p)) {
                    pairs += 1;
                    if i != j {
                        alternating += 1;
                    }
                }
            }
        }
    }
    r.alternation = if pairs > 0 {
        alternating as f64 / pairs as f64
    } else {
        0.0
    };
    if r.longest_gap > 0 {
        let before = longest_at.checked_sub(1);
        let after = longest_at + r.longest_gap;
        let at = |s: Option<u64>| s.and_then(|s| first_iface.get(&s)).map(|&(_, t)| t);
        if let (Some(b), Some(before_ns), Some(after_ns)) = (before, at(before), at(Some(after))) {
            r.longest_gap_edges = Some(GapEdges {
                before: b,
                before_ns,
                after,
                after_ns,
                received_before: first_iface.keys().filter(|&&s| s < longest_at).count() as u64,
            });
        }
    }
    r.flows = flow_ifaces.len() as u64;
    r.flows_on_several_ifaces = flow_ifaces.values().filter(|m| m.count_ones() > 1).count() as u64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SendSpec {
        SendSpec {
            iface: "x".into(),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            dst_ips: 1,
            flows: 4,
            count: 10,
            rate: 0,
            size: 64,
            stream: 7,
            mix: Mix::Udp4,
        }
    }

    #[test]
    fn varied_flows_round_trip_and_differ_in_every_hashed_field() {
        let s = SendSpec {
            mix: Mix::Varied,
            flows: 256,
            ..spec()
        };
        let mut ethertypes = std::collections::BTreeSet::new();
        let mut protos = std::collections::BTreeSet::new();
        let mut srcs = std::collections::BTreeSet::new();
        let mut dsts = std::collections::BTreeSet::new();
        for seq in 0..256u64 {
            let f = build_frame(&s, seq);
            assert_eq!(parse_frame(&f), Some((7, seq as u32, seq)), "flow {seq}");
            let eth = xbond_core::wire::EthInfo::parse(&f).unwrap();
            assert_eq!(eth.dst[0], 2, "unicast");
            ethertypes.insert(eth.ethertype);
            protos.insert(if eth.ethertype == 0x0800 {
                f[23]
            } else {
                f[20]
            });
            srcs.insert(eth.src);
            dsts.insert(eth.dst);
            let flow = xbond_core::wire::parse_flow(&f, &eth, false).expect("an IP flow");
            if matches!(f[if eth.ethertype == 0x0800 { 23 } else { 20 }], 1 | 58) {
                assert_ne!(flow.icmp[2..], [0, 0], "echo id");
            }
        }
        assert_eq!(ethertypes.len(), 2);
        assert_eq!(protos.into_iter().collect::<Vec<_>>(), vec![1, 6, 17, 58]);
        assert!(
            srcs.len() > 200 && dsts.len() > 200,
            "{} {}",
            srcs.len(),
            dsts.len()
        );
        // The kernel's pktgen: its magic, then the sequence number.
        let mut k = build_frame(&spec(), 0);
        k[42..50].copy_from_slice(&[0xbe, 0x9b, 0xe9, 0x55, 0, 0, 1, 2]);
        assert_eq!(parse_frame(&k), Some((KERNEL_PKTGEN_STREAM, 20000, 258)));
        // A VLAN tag in front changes nothing for the sink.
        let mut t = build_frame(&s, 5);
        t.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        assert_eq!(parse_frame(&t), Some((7, 5, 5)));
    }

    #[test]
    fn frames_round_trip_and_carry_a_valid_ip_header() {
        let f = build_frame(&spec(), 13);
        assert_eq!(f.len(), 64);
        assert_eq!(parse_frame(&f), Some((7, 1, 13)));
        let mut h = [0u8; 20];
        h.copy_from_slice(&f[14..34]);
        let c = u16::from_be_bytes([h[10], h[11]]);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(ipv4_checksum(&h), c);
        assert_eq!(parse_frame(&f[..40]), None);
    }

    #[test]
    fn a_late_round_moves_its_frames_sending_time_until_the_schedule_catches_up() {
        // 1000 frames/s from t = 1 s; the round that wrote frames 10.. ran
        // 5 ms late.
        let r = SendReport {
            sent: 100,
            errors: 0,
            seconds: 0.1,
            start_ns: 1_000_000_000,
            late: vec![[10, 5_000_000]],
            late_truncated: false,
        };
        let ms = |seq| {
            r.sent_at_ns(seq, 1000)
                .map(|ns| (ns - 1_000_000_000) / 1_000_000)
        };
        assert_eq!(ms(9), Some(9));
        assert_eq!(ms(10), Some(15));
        assert_eq!(ms(14), Some(15), "written in the late round");
        assert_eq!(ms(16), Some(16), "on schedule again");
        assert_eq!(r.sent_at_ns(1, 0), None);
        // More late rounds than kept: past the last one, unknown.
        let t = SendReport {
            late_truncated: true,
            ..r.clone()
        };
        assert!(t.sent_at_ns(10, 1000).is_some(), "the last kept round");
        assert_eq!(t.sent_at_ns(11, 1000), None, "past the last kept round");
    }

    #[test]
    fn summary_counts_loss_gaps_duplicates_and_alternation() {
        let ifs = vec!["a".to_string(), "b".to_string()];
        // seq 0..10 alternating, 4..7 missing, 9 twice; frame s arrives at
        // 1000 + s ns.
        let mut v: Vec<Arrival> = (0..10u64)
            .filter(|s| !(4..7).contains(s))
            .map(|s| (s, (s % 2) as u32, (s % 2) as usize, 1000 + s))
            .collect();
        v.push((9, 1, 0, 2000));
        let r = summarize(&ifs, &v, Some(10));
        assert_eq!(
            (r.unique, r.lost, r.longest_gap, r.duplicates),
            (7, 3, 3, 1)
        );
        assert_eq!(r.per_iface["a"], 4);
        assert_eq!(r.gaps, vec![[4, 3]]);
        assert_eq!(
            r.longest_gap_edges,
            Some(GapEdges {
                before: 3,
                before_ns: 1003,
                after: 7,
                after_ns: 1007,
                received_before: 4,
            })
        );
        assert!(r.alternation > 0.99, "{}", r.alternation);
        assert_eq!(r.flows_on_several_ifaces, 1);
    }
}
