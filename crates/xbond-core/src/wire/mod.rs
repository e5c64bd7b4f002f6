//! Frame headers: the Ethernet header ([`EthInfo`], and [`push_eth_header`],
//! the one writer of it and of its 802.1Q tag), the flow fields the hash
//! policies read ([`parse_flow`]), the Internet checksum, and, in
//! submodules re-exported here, the one ARP codec ([`ArpInfo`], with the
//! gratuitous ARP and the ARP probe) and IPv6 neighbour discovery
//! ([`parse_nd`], the NS probe, the unsolicited neighbour advertisement).
//!
//! Parsing never panics: every read is bounds-checked, and a frame too short
//! for a header simply yields fewer fields (a hash policy then falls back the
//! way the kernel's does). Multi-byte fields on the wire are big-endian
//! (network order); the comments say where a value is kept in wire order.

mod arp;
mod igmp;
mod nd;

pub use crate::options::MacAddr;
pub use arp::{
    arp_frame, arp_request, gratuitous_arp, parse_arp, set_arp_sender_mac, ArpInfo, ARPOP_REPLY,
    ARPOP_REQUEST, ARP_LEN,
};
pub use igmp::{igmp_reports, mld_reports, GROUPS_PER_REPORT};
pub use nd::{neighbour_solicitation, parse_nd, unsolicited_na, NdInfo, NdKind};

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of an IEEE 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an IEEE 802.1ad service VLAN tag.
pub const ETH_P_8021AD: u16 = 0x88a8;
/// EtherType of the IEEE slow protocols (LACP, Marker).
pub const ETH_P_SLOW: u16 = 0x8809;
/// Length of an Ethernet header without VLAN tags.
pub const ETH_HLEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_HLEN: usize = 4;
/// Minimum Ethernet frame length without FCS (`ETH_ZLEN`): the frames the
/// bond builds are padded with zeros to it.
pub const ETH_ZLEN: usize = 60;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(array::<2>(b, at)?))
}

#[inline(always)]
fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Layer-2 view of a frame: addresses, the EtherType after any VLAN tags, the
/// first VLAN id, and where the network header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthInfo {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType after up to two VLAN tags (what a NIC with VLAN offload reports).
    pub ethertype: u16,
    /// VLAN id of the outer tag, 0 if untagged.
    pub vlan: u16,
    /// Offset of the network header.
    pub l3_offset: usize,
}

impl EthInfo {
    /// Parses the Ethernet header and up to two VLAN tags; `None` if the frame
    /// is shorter than an Ethernet header (or a tag it announces).
    #[inline(always)]
    pub fn parse(frame: &[u8]) -> Option<EthInfo> {
        let ethertype = be16(frame, 12)?;
        let mut info = EthInfo::known(frame, ethertype, 0, ETH_HLEN)?;
        if is_vlan(info.ethertype) {
            let tag = array::<4>(frame, ETH_HLEN)?;
            info.vlan = u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff;
            info.ethertype = u16::from_be_bytes([tag[2], tag[3]]);
            info.l3_offset += VLAN_HLEN;
            if is_vlan(info.ethertype) {
                info.ethertype = be16(frame, info.l3_offset + 2)?;
                info.l3_offset += VLAN_HLEN;
            }
        }
        Some(info)
    }
}

impl EthInfo {
    /// The frame's addresses with an EtherType, VLAN id and network-header
    /// offset the caller has already read; `None` if the frame is shorter
    /// than an Ethernet header.
    #[inline(always)]
    pub fn known(frame: &[u8], ethertype: u16, vlan: u16, l3_offset: usize) -> Option<EthInfo> {
        let h: &[u8; ETH_HLEN] = frame.get(..ETH_HLEN)?.try_into().ok()?;
        Some(EthInfo {
            dst: [h[0], h[1], h[2], h[3], h[4], h[5]],
            src: [h[6], h[7], h[8], h[9], h[10], h[11]],
            ethertype,
            vlan,
            l3_offset,
        })
    }
}

#[inline(always)]
fn is_vlan(ethertype: u16) -> bool {
    ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD
}

/// Network addresses of a flow, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addrs {
    /// IPv4 source and destination.
    V4 {
        /// Source address bytes.
        src: [u8; 4],
        /// Destination address bytes.
        dst: [u8; 4],
    },
    /// IPv6 source and destination.
    V6 {
        /// Source address bytes.
        src: [u8; 16],
        /// Destination address bytes.
        dst: [u8; 16],
    },
}

/// Layer-3/4 fields of a flow as the kernel's flow dissector sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    /// Addresses of the (outer, or with `decap` innermost) IP header.
    pub addrs: Addrs,
    /// Source and destination port bytes in wire order (TCP, UDP, SCTP,
    /// UDP-Lite, first fragment only), or zero.
    pub ports: [u8; 4],
    /// ICMP type, code and identifier of a message that has one (echo and
    /// timestamp, request and reply) as the kernel's flow dissector keeps
    /// them (`skb_flow_get_icmp_tci()`): the identifier converted to host
    /// order, read here as little-endian, and an identifier of 0 taken as 1.
    /// Zero for every other message.
    pub icmp: [u8; 4],
}

/// Parses the IP header at `eth.l3_offset` and the L4 ports. With `decap`,
/// follows IP-in-IP, IPv6-in-IP and GRE (IPv4/IPv6 payloads) to the innermost
/// header, as the kernel's encap2+3 / encap3+4 policies do. `None` for non-IP
/// frames and truncated headers.
#[inline]
pub fn parse_flow(frame: &[u8], eth: &EthInfo, decap: bool) -> Option<FlowInfo> {
    let view = if decap {
        flow_view::<true>(frame, eth)?
    } else {
        flow_view::<false>(frame, eth)?
    };
    let addrs = match view.addrs {
        AddrView::V4(a) => Addrs::V4 {
            src: [a[0], a[1], a[2], a[3]],
            dst: [a[4], a[5], a[6], a[7]],
        },
        AddrView::V6(a) => {
            let (src, dst) = a.split_at(16);
            Addrs::V6 {
                src: src.try_into().ok()?,
                dst: dst.try_into().ok()?,
            }
        }
    };
    let (ports, icmp) = if view.icmp {
        ([0; 4], view.l4.to_le_bytes())
    } else {
        (view.l4.to_le_bytes(), [0; 4])
    };
    Some(FlowInfo { addrs, ports, icmp })
}

/// The flow fields the hash policies read, borrowed from the frame: what
/// [`parse_flow`] gives, in the shape the hashes consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowView<'a> {
    /// Source then destination address, as they lie in the IP header.
    pub addrs: AddrView<'a>,
    /// The ICMP type, code and identifier when `icmp` (as
    /// [`FlowInfo::icmp`]), else the port bytes (as [`FlowInfo::ports`]),
    /// read as a little-endian `u32`, as the kernel reads them.
    pub l4: u32,
    /// `l4` holds an ICMP message's type, code and identifier.
    pub icmp: bool,
}

/// Source then destination address of a flow, borrowed from its IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrView<'a> {
    /// IPv4: 4 bytes each.
    V4(&'a [u8; 8]),
    /// IPv6: 16 bytes each.
    V6(&'a [u8; 32]),
}

/// [`parse_flow`] without copies, for the per-frame hash: each header is
/// bounds-checked once as a whole, and with `DECAP` a constant the loop over
/// tunnel headers disappears where it is not wanted.
#[inline(always)]
pub fn flow_view<'a, const DECAP: bool>(frame: &'a [u8], eth: &EthInfo) -> Option<FlowView<'a>> {
    match common_flow(frame, eth) {
        Some(view) => Some(view),
        None => any_flow::<DECAP>(frame, eth),
    }
}

/// The addresses alone, for the policies that read no ports (layer2+3,
/// encap2+3): what [`flow_view`] gives as `addrs`, with a shorter shortcut,
/// since an IPv4 header's addresses lie at a fixed offset whatever its
/// options, fragment bits or protocol, and an IPv6 header's whatever its
/// payload but extension headers (which the general parse must walk, and
/// may find truncated) and, with `DECAP`, tunnels.
#[inline(always)]
pub fn addr_view<'a, const DECAP: bool>(frame: &'a [u8], eth: &EthInfo) -> Option<AddrView<'a>> {
    match common_addrs::<DECAP>(frame, eth) {
        Some(addrs) => Some(addrs),
        None => any_flow::<DECAP>(frame, eth).map(|view| view.addrs),
    }
}

/// [`addr_view`]'s shortcut: `None` where the general parse must decide.
#[inline(always)]
fn common_addrs<'a, const DECAP: bool>(frame: &'a [u8], eth: &EthInfo) -> Option<AddrView<'a>> {
    let off = eth.l3_offset;
    let tunnel = |proto: u8| DECAP && L4_KIND[usize::from(proto)] == L4_TUNNEL;
    match eth.ethertype {
        ETH_P_IP => {
            let h: &[u8; 20] = frame.get(off..off + 20)?.try_into().ok()?;
            // Version 4 and a header length of at least 20 bytes.
            if !(0x45..=0x4f).contains(&h[0]) || tunnel(h[9]) {
                return None;
            }
            let (_, rest) = h.split_first_chunk::<12>()?;
            Some(AddrView::V4(rest.first_chunk::<8>()?))
        }
        ETH_P_IPV6 => {
            let h: &[u8; 40] = frame.get(off..off + 40)?.try_into().ok()?;
            if h[0] >> 4 != 6 || L4_KIND[usize::from(h[6])] == L4_EXTENSION || tunnel(h[6]) {
                return None;
            }
            let (_, rest) = h.split_first_chunk::<8>()?;
            Some(AddrView::V6(rest.first_chunk::<32>()?))
        }
        _ => None,
    }
}

/// The general parse behind [`flow_view`]: IP options, IPv6 extension
/// headers, fragments, ICMP, truncated headers and (with `DECAP`) tunnels.
#[inline(always)]
fn any_flow<'a, const DECAP: bool>(frame: &'a [u8], eth: &EthInfo) -> Option<FlowView<'a>> {
    let mut header = ip_header(frame, eth.ethertype, eth.l3_offset)?;
    if DECAP {
        // Bounded: a fourth nested tunnel header gives no flow.
        for depth in 1.. {
            let (_, proto, l4, fragmented) = header;
            if fragmented {
                break;
            }
            let inner = match proto {
                IPPROTO_IPIP => (ETH_P_IP, l4),
                IPPROTO_IPV6 => (ETH_P_IPV6, l4),
                IPPROTO_GRE => match parse_gre(frame, l4) {
                    Some(inner) => inner,
                    None => break,
                },
                _ => break,
            };
            if depth == 4 {
                return None;
            }
            header = ip_header(frame, inner.0, inner.1)?;
        }
    }
    let (addrs, proto, l4, fragmented) = header;
    let mut view = FlowView {
        addrs,
        l4: 0,
        icmp: false,
    };
    if !fragmented {
        match L4_KIND[usize::from(proto)] {
            L4_PORTS => view.l4 = array::<4>(frame, l4).map_or(0, u32::from_le_bytes),
            L4_ICMP => {
                if let Some(h) = array::<6>(frame, l4) {
                    // The kernel's icmp_has_id(): the same types for ICMP
                    // and ICMPv6.
                    if matches!(h[0], 0 | 8 | 13 | 14 | 128 | 129) {
                        let id = u16::from_be_bytes([h[4], h[5]]).max(1);
                        view.l4 = u32::from(u16::from_le_bytes([h[0], h[1]])) | u32::from(id) << 16;
                        view.icmp = true;
                    }
                }
            }
            _ => {}
        }
    }
    Some(view)
}

/// The commonest frames' flow, with one bounds check and no loop: IPv4
/// without options or IPv6 without extension headers, not fragmented,
/// carrying TCP, UDP, SCTP or UDP-Lite (so no tunnel either). `None` for
/// every other frame; where it answers, the general parse gives the same.
#[inline(always)]
fn common_flow<'a>(frame: &'a [u8], eth: &EthInfo) -> Option<FlowView<'a>> {
    let off = eth.l3_offset;
    let view = |addrs, l4: &[u8; 4]| FlowView {
        addrs,
        l4: u32::from_le_bytes(*l4),
        icmp: false,
    };
    match eth.ethertype {
        ETH_P_IP => {
            let (addrs, l4) = ipv4_tuple_at(frame, off)?.split_first_chunk::<8>()?;
            Some(view(AddrView::V4(addrs), l4.first_chunk::<4>()?))
        }
        ETH_P_IPV6 => {
            let h: &[u8; 44] = frame.get(off..off + 44)?.try_into().ok()?;
            if h[0] >> 4 != 6 || L4_KIND[usize::from(h[6])] != L4_PORTS {
                return None;
            }
            let (_, rest) = h.split_first_chunk::<8>()?;
            let (addrs, l4) = rest.split_first_chunk::<32>()?;
            Some(view(AddrView::V6(addrs), l4.first_chunk::<4>()?))
        }
        _ => None,
    }
}

/// An IPv4 frame's source and destination addresses and ports, the twelve
/// bytes as they lie together in the frame, where [`flow_view`]'s shortcut
/// answers (no IP options, not fragmented, TCP, UDP, SCTP or UDP-Lite):
/// `None` for every other frame. The same bytes as [`flow_view`]'s `addrs`
/// then its `l4` in little-endian order.
#[inline(always)]
pub fn ipv4_tuple<'a>(frame: &'a [u8], eth: &EthInfo) -> Option<&'a [u8; 12]> {
    if eth.ethertype != ETH_P_IP {
        return None;
    }
    ipv4_tuple_at(frame, eth.l3_offset)
}

#[inline(always)]
fn ipv4_tuple_at(frame: &[u8], off: usize) -> Option<&[u8; 12]> {
    let h: &[u8; 24] = frame.get(off..off + 24)?.try_into().ok()?;
    // Version 4, no options (byte 0 is 0x45) and neither a fragment offset
    // nor more fragments (bytes 6 and 7 but the DF and reserved bits): one
    // test of the header's first word.
    let (first, _) = h.split_first_chunk::<8>()?;
    if u64::from_le_bytes(*first) & 0xff3f_0000_0000_00ff != 0x45
        || L4_KIND[usize::from(h[9])] != L4_PORTS
    {
        return None;
    }
    h.last_chunk::<12>()
}

/// The IPv6 extension headers [`parse_ipv6`] walks: hop-by-hop options,
/// routing, fragment, destination options.
const IPV6_EXTENSIONS: [u8; 4] = [0, 43, 44, 60];

const L4_NONE: u8 = 0;
const L4_PORTS: u8 = 1;
const L4_ICMP: u8 = 2;
const L4_TUNNEL: u8 = 3;
const L4_EXTENSION: u8 = 4;

/// What follows an IP header, by protocol number: ports (TCP, UDP, SCTP,
/// UDP-Lite), an ICMP header, a tunnelled packet (IPv4, IPv6, GRE), an IPv6
/// extension header the parse walks, or nothing the hashes read. One load instead
/// of a chain of comparisons per frame.
const L4_KIND: [u8; 256] = {
    let mut t = [L4_NONE; 256];
    t[IPPROTO_TCP as usize] = L4_PORTS;
    t[IPPROTO_UDP as usize] = L4_PORTS;
    t[IPPROTO_SCTP as usize] = L4_PORTS;
    t[IPPROTO_UDPLITE as usize] = L4_PORTS;
    t[IPPROTO_ICMP as usize] = L4_ICMP;
    t[IPPROTO_ICMPV6 as usize] = L4_ICMP;
    t[IPPROTO_IPIP as usize] = L4_TUNNEL;
    t[IPPROTO_IPV6 as usize] = L4_TUNNEL;
    t[IPPROTO_GRE as usize] = L4_TUNNEL;
    let mut e = 0;
    while e < IPV6_EXTENSIONS.len() {
        t[IPV6_EXTENSIONS[e] as usize] = L4_EXTENSION;
        e += 1;
    }
    t
};

#[inline(always)]
fn ip_header(frame: &[u8], ethertype: u16, off: usize) -> Option<(AddrView<'_>, u8, usize, bool)> {
    match ethertype {
        ETH_P_IP => parse_ipv4(frame, off),
        ETH_P_IPV6 => parse_ipv6(frame, off),
        _ => None,
    }
}

/// Returns (source and destination addresses, protocol, L4 offset,
/// fragmented-not-first-or-more).
#[inline(always)]
fn parse_ipv4(frame: &[u8], off: usize) -> Option<(AddrView<'_>, u8, usize, bool)> {
    let h: &[u8; 20] = frame.get(off..off + 20)?.try_into().ok()?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    // More-fragments flag or a non-zero offset: no L4 header to trust.
    let fragmented = frag & 0x3fff != 0;
    let addrs = h[12..20].try_into().ok()?;
    Some((AddrView::V4(addrs), h[9], off + ihl, fragmented))
}

#[inline(always)]
fn parse_ipv6(frame: &[u8], off: usize) -> Option<(AddrView<'_>, u8, usize, bool)> {
    let h: &[u8; 40] = frame.get(off..off + 40)?.try_into().ok()?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut next = h[6];
    let mut l4 = off + 40;
    let mut fragmented = false;
    // Skip up to 8 extension headers.
    if L4_KIND[usize::from(next)] == L4_EXTENSION {
        for _ in 0..8 {
            match next {
                0 | 43 | 60 => {
                    let nh = *frame.get(l4)?;
                    let len = (usize::from(*frame.get(l4 + 1)?) + 1) * 8;
                    next = nh;
                    l4 += len;
                }
                44 => {
                    let nh = *frame.get(l4)?;
                    let frag = be16(frame, l4 + 2)?;
                    fragmented = frag & 0xfff9 != 0;
                    next = nh;
                    l4 += 8;
                }
                _ => break,
            }
        }
    }
    let addrs = h[8..40].try_into().ok()?;
    Some((AddrView::V6(addrs), next, l4, fragmented))
}

/// GRE (RFC 2784/2890) carrying IPv4 or IPv6: returns the inner EtherType and
/// offset.
#[inline]
fn parse_gre(frame: &[u8], off: usize) -> Option<(u16, usize)> {
    let flags = be16(frame, off)?;
    if flags & 0x0007 != 0 {
        return None; // only version 0
    }
    let proto = be16(frame, off + 2)?;
    let mut len = 4;
    if flags & 0x8000 != 0 {
        len += 4; // checksum + reserved
    }
    if flags & 0x2000 != 0 {
        len += 4; // key
    }
    if flags & 0x1000 != 0 {
        len += 4; // sequence
    }
    match proto {
        ETH_P_IP | ETH_P_IPV6 => Some((proto, off + len)),
        _ => None,
    }
}

/// Appends an Ethernet header: `dst`, `src`, an IEEE 802.1Q tag when `vlan`
/// is non-zero (priority 0, the low 12 bits of `vlan` as the VLAN id), then
/// `ethertype`. Every frame the bond builds starts here; [`EthInfo::parse`]
/// reads the header back.
pub fn push_eth_header(f: &mut Vec<u8>, dst: MacAddr, src: MacAddr, vlan: u16, ethertype: u16) {
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if vlan != 0 {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
}

/// True for frames the link monitors and ALB look at: ARP, and IPv6
/// neighbour solicitations and advertisements. Cheap enough for the data path.
#[inline]
pub fn is_arp_or_nd(frame: &[u8]) -> bool {
    let Some(eth) = EthInfo::parse(frame) else {
        return false;
    };
    match eth.ethertype {
        ETH_P_ARP => true,
        ETH_P_IPV6 => {
            let o = eth.l3_offset;
            frame.get(o + 6) == Some(&IPPROTO_ICMPV6)
                && matches!(frame.get(o + 40), Some(135 | 136))
        }
        _ => false,
    }
}

/// The Internet checksum (RFC 1071) over `parts` taken as one byte string
/// (each part of even length except possibly the last).
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for bytes in parts {
        for c in bytes.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn parses_vlan_tagged_ipv4_udp() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(42.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000);
        let mut f = Vec::new();
        b.write(&mut f, &[1, 2, 3]).unwrap();
        let eth = EthInfo::parse(&f).unwrap();
        assert_eq!((eth.vlan, eth.ethertype, eth.l3_offset), (42, ETH_P_IP, 18));
        let flow = parse_flow(&f, &eth, false).unwrap();
        assert_eq!(
            flow.addrs,
            Addrs::V4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2]
            }
        );
        assert_eq!(flow.ports, [0x03, 0xe8, 0x07, 0xd0]);
    }

    /// Frames of every shape the parse knows, and some it refuses.
    fn shapes() -> Vec<Vec<u8>> {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut out = Vec::new();
        let mut push = |r: Result<(), etherparse::err::packet::BuildWriteError>, f: Vec<u8>| {
            r.unwrap();
            out.push(f);
        };
        for vlan in [None, Some(7u16)] {
            let eth = || match vlan {
                Some(v) => PacketBuilder::ethernet2(a, b).single_vlan(v.try_into().unwrap()),
                None => PacketBuilder::ethernet2(a, b).single_vlan(0.try_into().unwrap()),
            };
            let mut f = Vec::new();
            push(
                eth()
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .udp(1, 2)
                    .write(&mut f, &[0; 8]),
                f,
            );
            let mut f = Vec::new();
            push(
                eth()
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .tcp(3, 4, 1, 9)
                    .write(&mut f, &[]),
                f,
            );
            let mut f = Vec::new();
            push(
                eth()
                    .ipv6([1; 16], [2; 16], 64)
                    .udp(5, 6)
                    .write(&mut f, &[0; 8]),
                f,
            );
            let mut f = Vec::new();
            push(
                eth()
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                    .icmpv4_echo_request(9, 1)
                    .write(&mut f, &[0; 8]),
                f,
            );
            let mut f = Vec::new();
            push(
                eth()
                    .ipv6([1; 16], [2; 16], 64)
                    .icmpv6_echo_request(9, 1)
                    .write(&mut f, &[0; 8]),
                f,
            );
        }
        // Untagged copies of the tagged ones.
        let untagged: Vec<Vec<u8>> = out.iter().map(|f| [&f[..12], &f[16..]].concat()).collect();
        out.extend(untagged);
        out
    }

    #[test]
    fn the_shortcuts_agree_with_the_general_parse() {
        // Every shape, mutated byte by byte over the headers (version, IHL,
        // fragment bits, protocol or next header: ports, ICMP, tunnels,
        // extension headers...) and cut at every length.
        let (mut answered, mut addrs_answered) = (0, 0);
        for base in shapes() {
            let mut variants = vec![base.clone()];
            for at in 12..base.len().min(60) {
                for v in [
                    0x00, 0x04, 0x06, 0x11, 0x29, 0x2b, 0x2c, 0x2f, 0x3a, 0x45, 0x46, 0x4f, 0x60,
                    0xff,
                ] {
                    let mut f = base.clone();
                    f[at] = v;
                    variants.push(f);
                }
            }
            for f in variants {
                for cut in 0..=f.len() {
                    let f = &f[..cut];
                    let Some(eth) = EthInfo::parse(f) else {
                        continue;
                    };
                    let tuple = ipv4_tuple(f, &eth);
                    if let Some(view) = common_flow(f, &eth) {
                        // The IPv4 tuple is there exactly when the flow
                        // shortcut answers an IPv4 frame, and is its bytes.
                        match view.addrs {
                            AddrView::V4(a) => {
                                let mut t = a.to_vec();
                                t.extend(view.l4.to_le_bytes());
                                assert_eq!(tuple.map(|t| t.to_vec()), Some(t), "{f:02x?}");
                            }
                            AddrView::V6(_) => assert_eq!(tuple, None, "{f:02x?}"),
                        }
                        answered += 1;
                        assert_eq!(Some(view), any_flow::<false>(f, &eth), "{f:02x?}");
                        assert_eq!(Some(view), any_flow::<true>(f, &eth), "{f:02x?}");
                    }
                    if common_flow(f, &eth).is_none() {
                        assert_eq!(tuple, None, "{f:02x?}");
                    }
                    let general = |decap: bool| parse_flow(f, &eth, decap).map(|_| ());
                    if let Some(addrs) = common_addrs::<false>(f, &eth) {
                        addrs_answered += 1;
                        let view = any_flow::<false>(f, &eth).map(|v| v.addrs);
                        assert_eq!(Some(addrs), view, "{f:02x?}");
                        assert_eq!(general(false), Some(()), "{f:02x?}");
                    }
                    if let Some(addrs) = common_addrs::<true>(f, &eth) {
                        let view = any_flow::<true>(f, &eth).map(|v| v.addrs);
                        assert_eq!(Some(addrs), view, "{f:02x?}");
                        assert_eq!(general(true), Some(()), "{f:02x?}");
                    }
                }
            }
        }
        assert!(answered > 1000, "the flow shortcut took {answered} frames");
        assert!(
            addrs_answered > answered,
            "the address shortcut took {addrs_answered} frames, the flow shortcut {answered}"
        );
    }

    #[test]
    fn truncated_frames_never_panic() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4);
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        for n in 0..f.len() {
            if let Some(eth) = EthInfo::parse(&f[..n]) {
                let _ = parse_flow(&f[..n], &eth, true);
            }
        }
        let eth = EthInfo::parse(&f).unwrap();
        assert!(parse_flow(&f, &eth, false).is_some());
    }

    #[test]
    fn eth_header_parses_back() {
        let (dst, src) = (MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]));
        for (vlan, len) in [(0, ETH_HLEN), (100, ETH_HLEN + 4), (0x1064, ETH_HLEN + 4)] {
            let mut f = Vec::new();
            push_eth_header(&mut f, dst, src, vlan, ETH_P_IPV6);
            assert_eq!(
                EthInfo::parse(&f),
                Some(EthInfo {
                    dst: dst.0,
                    src: src.0,
                    ethertype: ETH_P_IPV6,
                    vlan: vlan & 0x0fff,
                    l3_offset: len,
                })
            );
        }
    }
}
