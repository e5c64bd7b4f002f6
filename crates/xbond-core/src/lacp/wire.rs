//! LACPDU and Marker PDU codecs (IEEE 802.1AX-2014 clause 6.4.2 and 6.5.3).
//!
//! A slow-protocol frame is parsed from the whole Ethernet frame into typed
//! values; emitting is the exact inverse. Parsing never panics on any input:
//! a frame that is not a well-formed LACPDU or Marker PDU yields a
//! [`SlowError`] that names the reason, for the counters. Multi-byte fields are
//! big-endian on the wire.

use std::fmt;

use crate::options::MacAddr;
use crate::wire::ETH_P_SLOW;

/// The slow-protocols group address, 01:80:C2:00:00:02.
pub const SLOW_PROTOCOLS_MAC: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
/// Bytes of a LACPDU or Marker PDU after the EtherType.
pub const PDU_LEN: usize = 110;
/// Bytes of a whole slow-protocol frame without FCS.
pub const FRAME_LEN: usize = 14 + PDU_LEN;
/// Longest frame accepted: a PDU plus a trailing FCS some capture paths keep.
pub const MAX_FRAME_LEN: usize = FRAME_LEN + 4;

const SUBTYPE_LACP: u8 = 1;
const SUBTYPE_MARKER: u8 = 2;

/// The actor/partner state byte (802.1AX 6.4.2.3, item m).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PortState(pub u8);

impl PortState {
    /// LACP_Activity: active (1) or passive (0).
    pub const ACTIVITY: u8 = 1 << 0;
    /// LACP_Timeout: short (1) or long (0).
    pub const TIMEOUT: u8 = 1 << 1;
    /// Aggregation: aggregatable (1) or individual (0).
    pub const AGGREGATION: u8 = 1 << 2;
    /// Synchronization: in sync with the aggregator.
    pub const SYNCHRONIZATION: u8 = 1 << 3;
    /// Collecting.
    pub const COLLECTING: u8 = 1 << 4;
    /// Distributing.
    pub const DISTRIBUTING: u8 = 1 << 5;
    /// Defaulted: using administrative partner values.
    pub const DEFAULTED: u8 = 1 << 6;
    /// Expired: the receive machine is in EXPIRED.
    pub const EXPIRED: u8 = 1 << 7;

    /// Whether `bit` is set.
    #[inline]
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Sets or clears `bit`.
    #[inline]
    pub fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

impl fmt::Debug for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            "act", "short", "aggr", "sync", "coll", "dist", "defl", "expd",
        ];
        write!(f, "{:#04x}[", self.0)?;
        let mut first = true;
        for (i, n) in names.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        f.write_str("]")
    }
}

/// The Actor or Partner information of a LACPDU (802.1AX 6.4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PortInfo {
    /// System priority.
    pub system_priority: u16,
    /// System ID (a MAC address).
    pub system: MacAddr,
    /// Operational key.
    pub key: u16,
    /// Port priority.
    pub port_priority: u16,
    /// Port number.
    pub port: u16,
    /// State bits.
    pub state: PortState,
}

/// A LACPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lacpdu {
    /// Version number as received (1 for 802.3ad / 802.1AX-2008).
    pub version: u8,
    /// The sender's view of itself.
    pub actor: PortInfo,
    /// The sender's view of us.
    pub partner: PortInfo,
    /// CollectorMaxDelay, tens of microseconds.
    pub collector_max_delay: u16,
}

/// Which Marker PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// Marker Information (a request).
    Information,
    /// Marker Response.
    Response,
}

/// A Marker PDU (802.1AX 6.5.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerPdu {
    /// Information or Response.
    pub kind: MarkerKind,
    /// Requester_Port.
    pub requester_port: u16,
    /// Requester_System.
    pub requester_system: MacAddr,
    /// Requester_Transaction_ID.
    pub transaction_id: u32,
}

/// A parsed slow-protocol frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPdu {
    /// A LACPDU.
    Lacp(Lacpdu),
    /// A Marker PDU.
    Marker(MarkerPdu),
}

/// Why a frame is not a LACPDU or Marker PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlowError {
    /// Shorter than a slow-protocol PDU.
    #[error("truncated: {0} bytes, a slow-protocol frame has {FRAME_LEN}")]
    Truncated(usize),
    /// Longer than a slow-protocol PDU.
    #[error("oversized: {0} bytes, a slow-protocol frame has {FRAME_LEN}")]
    Oversized(usize),
    /// Not sent to 01:80:C2:00:00:02.
    #[error("destination {0} is not the slow-protocols address 01:80:c2:00:00:02")]
    WrongDestination(MacAddr),
    /// EtherType is not 0x8809.
    #[error("EtherType {0:#06x} is not 0x8809")]
    WrongEtherType(u16),
    /// A slow protocol other than LACP and Marker (e.g. OAM): not ours.
    #[error("slow-protocol subtype {0} is neither LACP (1) nor Marker (2)")]
    UnknownSubtype(u8),
    /// Version 0.
    #[error("version {0} is not valid")]
    BadVersion(u8),
    /// Our own LACPDU, looped back (the actor system is ours).
    #[error("our own LACPDU came back (loopback): the actor system is this bond's")]
    Loopback,
    /// A TLV with the wrong type or length.
    #[error("TLV at byte {at}: type {tlv_type} length {len}, expected type {want_type} length {want_len}")]
    BadTlv {
        /// Offset in the frame.
        at: usize,
        /// Type found.
        tlv_type: u8,
        /// Length found.
        len: u8,
        /// Type expected.
        want_type: u8,
        /// Length expected.
        want_len: u8,
    },
}

impl SlowError {
    /// True for frames that are valid slow-protocol frames of another
    /// protocol (counted as unknown rather than illegal).
    pub fn is_unknown(&self) -> bool {
        matches!(self, SlowError::UnknownSubtype(_))
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn mac(b: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    MacAddr(m)
}

fn tlv(f: &[u8], at: usize, want_type: u8, want_len: u8) -> Result<(), SlowError> {
    let (tlv_type, len) = (f[at], f[at + 1]);
    if tlv_type != want_type || len != want_len {
        return Err(SlowError::BadTlv {
            at,
            tlv_type,
            len,
            want_type,
            want_len,
        });
    }
    Ok(())
}

fn port_info(f: &[u8], at: usize) -> PortInfo {
    PortInfo {
        system_priority: be16(f, at),
        system: mac(f, at + 2),
        key: be16(f, at + 8),
        port_priority: be16(f, at + 10),
        port: be16(f, at + 12),
        state: PortState(f[at + 14]),
    }
}

/// Parses a whole Ethernet frame as a LACPDU or Marker PDU.
pub fn parse(f: &[u8]) -> Result<SlowPdu, SlowError> {
    if f.len() < FRAME_LEN {
        // Too short even for the header? Report what we can.
        if f.len() >= 14 && be16(f, 12) != ETH_P_SLOW {
            return Err(SlowError::WrongEtherType(be16(f, 12)));
        }
        return Err(SlowError::Truncated(f.len()));
    }
    if f.len() > MAX_FRAME_LEN {
        return Err(SlowError::Oversized(f.len()));
    }
    // From here on every index is below FRAME_LEN <= f.len().
    let dst = mac(f, 0);
    if dst != SLOW_PROTOCOLS_MAC {
        return Err(SlowError::WrongDestination(dst));
    }
    let ethertype = be16(f, 12);
    if ethertype != ETH_P_SLOW {
        return Err(SlowError::WrongEtherType(ethertype));
    }
    let (subtype, version) = (f[14], f[15]);
    if subtype != SUBTYPE_LACP && subtype != SUBTYPE_MARKER {
        return Err(SlowError::UnknownSubtype(subtype));
    }
    if version == 0 {
        return Err(SlowError::BadVersion(version));
    }
    if subtype == SUBTYPE_LACP {
        tlv(f, 16, 1, 20)?;
        tlv(f, 36, 2, 20)?;
        tlv(f, 56, 3, 16)?;
        tlv(f, 72, 0, 0)?;
        Ok(SlowPdu::Lacp(Lacpdu {
            version,
            actor: port_info(f, 18),
            partner: port_info(f, 38),
            collector_max_delay: be16(f, 58),
        }))
    } else {
        let kind = match f[16] {
            1 => MarkerKind::Information,
            2 => MarkerKind::Response,
            t => {
                return Err(SlowError::BadTlv {
                    at: 16,
                    tlv_type: t,
                    len: f[17],
                    want_type: 1,
                    want_len: 16,
                })
            }
        };
        tlv(f, 16, f[16], 16)?;
        tlv(f, 32, 0, 0)?;
        Ok(SlowPdu::Marker(MarkerPdu {
            kind,
            requester_port: be16(f, 18),
            requester_system: mac(f, 20),
            transaction_id: u32::from_be_bytes([f[26], f[27], f[28], f[29]]),
        }))
    }
}

fn header(src: MacAddr, subtype: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_LEN);
    f.extend_from_slice(&SLOW_PROTOCOLS_MAC.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ETH_P_SLOW.to_be_bytes());
    f.push(subtype);
    f.push(1);
    f
}

fn push_port_info(f: &mut Vec<u8>, tlv_type: u8, p: &PortInfo) {
    f.push(tlv_type);
    f.push(20);
    f.extend_from_slice(&p.system_priority.to_be_bytes());
    f.extend_from_slice(&p.system.0);
    f.extend_from_slice(&p.key.to_be_bytes());
    f.extend_from_slice(&p.port_priority.to_be_bytes());
    f.extend_from_slice(&p.port.to_be_bytes());
    f.push(p.state.0);
    f.extend_from_slice(&[0; 3]);
}

impl Lacpdu {
    /// The whole Ethernet frame, sent from `src` (the port's own MAC).
    pub fn emit(&self, src: MacAddr) -> Vec<u8> {
        let mut f = header(src, SUBTYPE_LACP);
        f[15] = self.version;
        push_port_info(&mut f, 1, &self.actor);
        push_port_info(&mut f, 2, &self.partner);
        f.push(3);
        f.push(16);
        f.extend_from_slice(&self.collector_max_delay.to_be_bytes());
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&[0, 0]);
        f.resize(FRAME_LEN, 0);
        f
    }
}

impl MarkerPdu {
    /// The whole Ethernet frame, sent from `src`.
    pub fn emit(&self, src: MacAddr) -> Vec<u8> {
        let mut f = header(src, SUBTYPE_MARKER);
        f.push(match self.kind {
            MarkerKind::Information => 1,
            MarkerKind::Response => 2,
        });
        f.push(16);
        f.extend_from_slice(&self.requester_port.to_be_bytes());
        f.extend_from_slice(&self.requester_system.0);
        f.extend_from_slice(&self.transaction_id.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&[0, 0]);
        f.resize(FRAME_LEN, 0);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdu() -> Lacpdu {
        Lacpdu {
            version: 1,
            actor: PortInfo {
                system_priority: 65535,
                system: MacAddr([2, 0, 0, 0, 0, 1]),
                key: 15,
                port_priority: 255,
                port: 1,
                state: PortState(0x3f),
            },
            partner: PortInfo {
                system_priority: 32768,
                system: MacAddr([0, 0x1b, 0x21, 0, 0, 9]),
                key: 7,
                port_priority: 128,
                port: 0x102,
                state: PortState(0x3d),
            },
            collector_max_delay: 0,
        }
    }

    /// A LACPDU as a Linux kernel bond sends it (bytes laid out by hand from
    /// the standard's figure 6-7).
    fn fixture() -> Vec<u8> {
        let mut f = vec![
            0x01, 0x80, 0xc2, 0x00, 0x00, 0x02, // destination
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source
            0x88, 0x09, // slow protocols
            0x01, 0x01, // LACP, version 1
            0x01, 0x14, // actor TLV
            0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x00, 0xff, 0x00, 0x01,
            0x3f, 0, 0, 0, // actor: prio, system, key 15, port prio 255, port 1, state, rsvd
            0x02, 0x14, // partner TLV
            0x80, 0x00, 0x00, 0x1b, 0x21, 0x00, 0x00, 0x09, 0x00, 0x07, 0x00, 0x80, 0x01, 0x02,
            0x3d, 0, 0, 0, //
            0x03, 0x10, 0x00, 0x00, // collector TLV, max delay 0
        ];
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&[0x00, 0x00]); // terminator
        f.extend_from_slice(&[0; 50]);
        f
    }

    #[test]
    fn lacpdu_fixture_parses_and_emits_identically() {
        let f = fixture();
        assert_eq!(f.len(), FRAME_LEN);
        assert_eq!(parse(&f), Ok(SlowPdu::Lacp(pdu())));
        assert_eq!(pdu().emit(MacAddr([2, 0, 0, 0, 0, 1])), f);
    }

    #[test]
    fn marker_round_trips() {
        let m = MarkerPdu {
            kind: MarkerKind::Information,
            requester_port: 3,
            requester_system: MacAddr([2, 0, 0, 0, 0, 5]),
            transaction_id: 0xdead_beef,
        };
        let f = m.emit(MacAddr([2, 0, 0, 0, 0, 5]));
        assert_eq!(f.len(), FRAME_LEN);
        assert_eq!(parse(&f), Ok(SlowPdu::Marker(m)));
        let r = MarkerPdu {
            kind: MarkerKind::Response,
            ..m
        };
        assert_eq!(parse(&r.emit(MacAddr::default())), Ok(SlowPdu::Marker(r)));
    }

    #[test]
    fn bad_frames_are_rejected_with_a_reason() {
        let f = fixture();
        assert_eq!(parse(&f[..100]), Err(SlowError::Truncated(100)));
        let mut long = f.clone();
        long.resize(200, 0);
        assert_eq!(parse(&long), Err(SlowError::Oversized(200)));
        let mut g = f.clone();
        g[5] = 0x03;
        assert!(matches!(parse(&g), Err(SlowError::WrongDestination(_))));
        let mut g = f.clone();
        g[14] = 3; // OAM
        assert_eq!(parse(&g), Err(SlowError::UnknownSubtype(3)));
        assert!(parse(&g).unwrap_err().is_unknown());
        let mut g = f.clone();
        g[17] = 19;
        assert!(matches!(parse(&g), Err(SlowError::BadTlv { at: 16, .. })));
        let mut g = f.clone();
        g[56] = 4;
        assert!(matches!(parse(&g), Err(SlowError::BadTlv { at: 56, .. })));
        let mut g = f;
        g[15] = 0;
        assert_eq!(parse(&g), Err(SlowError::BadVersion(0)));
    }

    #[test]
    fn parse_never_panics() {
        // Every prefix, and every single-byte corruption of the fixture.
        let f = fixture();
        for n in 0..=f.len() + 8 {
            let mut g = f.clone();
            g.resize(n, 0xaa);
            let _ = parse(&g);
        }
        for i in 0..f.len() {
            for v in [0u8, 1, 2, 0x14, 0xff] {
                let mut g = f.clone();
                g[i] = v;
                let _ = parse(&g);
            }
        }
    }
}
