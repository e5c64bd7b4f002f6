//! Links and addresses over rtnetlink (netlink-packet-route), synchronously:
//! look-ups, the upper veth pair, MAC and admin state changes, and a socket
//! that receives link events (carrier changes) as they happen.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use xbond_core::options::MacAddr;

use crate::error::{Error, Result};

/// What xbond needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Current MAC address.
    pub mac: MacAddr,
    /// Permanent MAC, where the driver reports one.
    pub perm_mac: Option<MacAddr>,
    /// Carrier (IFLA_CARRIER, or operstate up when absent).
    pub carrier: bool,
    /// Administratively up.
    pub admin_up: bool,
    /// Number of RX queues.
    pub rx_queues: u32,
    /// Number of TX queues.
    pub tx_queues: u32,
    /// The link kind (`veth`, `bond`, ...), absent for a physical NIC.
    pub kind: Option<String>,
    /// The interface alias (`ip link set NAME alias ...`, /sys/class/net/NAME/ifalias).
    pub alias: Option<String>,
    /// IFLA_LINK: for a veth, the peer's index.
    pub peer_index: Option<u32>,
    /// MTU.
    pub mtu: u32,
    /// IFLA_MAX_MTU: the largest MTU the device takes (0: not reported).
    pub max_mtu: u32,
    /// IFLA_MASTER: the bond or bridge this link is enslaved to.
    pub master: Option<u32>,
    /// Promiscuous: IFF_PROMISC asked by the user, or a promiscuity count
    /// from the kernel (a bridge counts its ports' promiscuity without the
    /// flag).
    pub promisc: bool,
    /// All-multicast: IFF_ALLMULTI, or an all-multicast count.
    pub allmulti: bool,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mac: MacAddr::default(),
            perm_mac: None,
            carrier: false,
            admin_up: m.header.flags.contains(LinkFlags::Up),
            rx_queues: 1,
            tx_queues: 1,
            kind: None,
            alias: None,
            peer_index: None,
            mtu: 0,
            max_mtu: 0,
            master: None,
            promisc: m.header.flags.contains(LinkFlags::Promisc),
            allmulti: m.header.flags.contains(LinkFlags::Allmulti),
        };
        let mut carrier = None;
        let mut oper_up = false;
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(b) => l.mac = mac_from(b).unwrap_or_default(),
                LinkAttribute::PermAddress(b) => l.perm_mac = mac_from(b),
                LinkAttribute::Carrier(c) => carrier = Some(*c != 0),
                LinkAttribute::OperState(s) => oper_up = matches!(s, State::Up),
                LinkAttribute::NumRxQueues(n) => l.rx_queues = *n,
                LinkAttribute::NumTxQueues(n) => l.tx_queues = *n,
                LinkAttribute::IfAlias(a) if !a.is_empty() => l.alias = Some(a.clone()),
                LinkAttribute::Link(i) => l.peer_index = Some(*i),
                LinkAttribute::Mtu(m) => l.mtu = *m,
                LinkAttribute::MaxMtu(m) => l.max_mtu = *m,
                LinkAttribute::Controller(i) => l.master = Some(*i),
                LinkAttribute::Promiscuity(n) if *n > 0 => l.promisc = true,
                LinkAttribute::AllMulticast(n) if *n > 0 => l.allmulti = true,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        l.carrier = carrier.unwrap_or(oper_up) && l.admin_up;
        l
    }
}

fn mac_from(b: &[u8]) -> Option<MacAddr> {
    let a: [u8; 6] = b.try_into().ok()?;
    Some(MacAddr(a))
}

/// A request/response rtnetlink socket.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the current network namespace.
    pub fn open() -> Result<Netlink> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::sys("socket(NETLINK_ROUTE)", "-", e))?;
        sock.bind_auto()
            .map_err(|e| Error::sys("bind(NETLINK_ROUTE)", "-", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::sys("connect(NETLINK_ROUTE)", "-", e))?;
        Ok(Netlink { sock, seq: 1 })
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
        iface: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        self.seq = self.seq.wrapping_add(1);
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock
            .send(&buf, 0)
            .map_err(|e| Error::sys(op, iface, e))?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .sock
                .recv(&mut &mut rbuf[..], 0)
                .map_err(|e| Error::sys(op, iface, e))?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    .map_err(|e| {
                        Error::sys(
                            op,
                            iface,
                            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                        )
                    })?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Ok(out);
                }
                off += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => {
                                let err = io::Error::from_raw_os_error(-code.get());
                                if err.raw_os_error() == Some(libc::ENODEV) {
                                    Err(Error::NoSuchInterface(iface.to_string()))
                                } else {
                                    Err(Error::sys(op, iface, err))
                                }
                            }
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Looks a link up by name.
    pub fn link(&mut self, name: &str) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let r = self.request(RouteNetlinkMessage::GetLink(m), 0, "RTM_GETLINK", name)?;
        match r.first() {
            Some(RouteNetlinkMessage::NewLink(l)) => Ok(Link::from_message(l)),
            _ => Err(Error::NoSuchInterface(name.to_string())),
        }
    }

    /// Looks a link up by index.
    pub fn link_by_index(&mut self, index: u32) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        let r = self.request(RouteNetlinkMessage::GetLink(m), 0, "RTM_GETLINK", "-")?;
        match r.first() {
            Some(RouteNetlinkMessage::NewLink(l)) => Ok(Link::from_message(l)),
            _ => Err(Error::NoSuchInterface(format!("ifindex {index}"))),
        }
    }

    /// Whether a link with this name exists.
    pub fn exists(&mut self, name: &str) -> Result<bool> {
        match self.link(name) {
            Ok(_) => Ok(true),
            Err(Error::NoSuchInterface(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a veth pair `name` <-> `peer` with `queues` RX and TX queues on
    /// each side.
    pub fn create_veth(&mut self, name: &str, peer: &str, queues: u32) -> Result<()> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::NumRxQueues(queues));
        p.attributes.push(LinkAttribute::NumTxQueues(queues));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::NumRxQueues(queues));
        m.attributes.push(LinkAttribute::NumTxQueues(queues));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
            "RTM_NEWLINK veth",
            name,
        )
        .map(drop)
    }

    /// Deletes a link (for a veth, both ends go).
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let link = self.link(name)?;
        let mut m = LinkMessage::default();
        m.header.index = link.index;
        self.request(
            RouteNetlinkMessage::DelLink(m),
            NLM_F_ACK,
            "RTM_DELLINK",
            name,
        )
        .map(drop)
    }

    /// Sets one attribute of a link (RTM_SETLINK, `op` naming it).
    fn set_attribute(&mut self, name: &str, attr: LinkAttribute, op: &'static str) -> Result<()> {
        let link = self.link(name)?;
        let mut m = LinkMessage::default();
        m.header.index = link.index;
        m.attributes.push(attr);
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK, op, name)
            .map(drop)
    }

    /// Sets a link's MAC address.
    pub fn set_mac(&mut self, name: &str, mac: MacAddr) -> Result<()> {
        let attr = LinkAttribute::Address(mac.0.to_vec());
        self.set_attribute(name, attr, "RTM_SETLINK address")
    }

    /// Sets a link's MTU.
    pub fn set_mtu(&mut self, name: &str, mtu: u32) -> Result<()> {
        self.set_attribute(name, LinkAttribute::Mtu(mtu), "RTM_SETLINK mtu")
    }

    /// Sets a link's alias (IFLA_IFALIAS), xbond's mark on what it created.
    pub fn set_alias(&mut self, name: &str, alias: &str) -> Result<()> {
        let attr = LinkAttribute::IfAlias(alias.to_string());
        self.set_attribute(name, attr, "RTM_SETLINK ifalias")
    }

    /// Sets a link administratively up or down.
    pub fn set_up(&mut self, name: &str, up: bool) -> Result<()> {
        let link = self.link(name)?;
        let mut m = LinkMessage::default();
        m.header.index = link.index;
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        self.request(
            RouteNetlinkMessage::SetLink(m),
            NLM_F_ACK,
            "RTM_SETLINK up/down",
            name,
        )
        .map(drop)
    }

    /// A link's own unicast address list (`bridge fdb show dev NAME self`:
    /// the secondary addresses a macvlan, a bridge or `bridge fdb add ...
    /// self` put on it), without its own MAC.
    pub fn unicast_list(&mut self, name: &str) -> Result<Vec<MacAddr>> {
        let link = self.link(name)?;
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        let r = self.request(
            RouteNetlinkMessage::GetNeighbour(m),
            NLM_F_DUMP,
            "RTM_GETNEIGH (AF_BRIDGE)",
            name,
        )?;
        let mut out = Vec::new();
        for msg in r {
            let RouteNetlinkMessage::NewNeighbour(n) = msg else {
                continue;
            };
            // The device's own list is NTF_SELF; a bridge's entries for
            // its port are NTF_MASTER.
            if n.header.ifindex != link.index || !n.header.flags.contains(NeighbourFlags::Own) {
                continue;
            }
            for attr in &n.attributes {
                if let NeighbourAttribute::LinkLayerAddress(b) = attr {
                    match mac_from(b) {
                        Some(mac) if mac.0[0] & 1 == 0 && mac != link.mac => out.push(mac),
                        _ => {}
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The route the kernel takes to `dst` (`ip route get DST`): the output
    /// interface's index and the preferred source address, if any.
    pub fn route_get(&mut self, dst: IpAddr) -> Result<(u32, Option<IpAddr>)> {
        let mut m = RouteMessage::default();
        m.header.address_family = match dst {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let r = self.request(
            RouteNetlinkMessage::GetRoute(m),
            0,
            "RTM_GETROUTE",
            &dst.to_string(),
        )?;
        let Some(RouteNetlinkMessage::NewRoute(route)) = r.first() else {
            return Err(Error::Unsupported(format!("no route to {dst}")));
        };
        let (mut oif, mut src) = (None, None);
        for a in &route.attributes {
            match a {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::PrefSource(RouteAddress::Inet(ip)) => src = Some(IpAddr::V4(*ip)),
                RouteAttribute::PrefSource(RouteAddress::Inet6(ip)) => src = Some(IpAddr::V6(*ip)),
                _ => {}
            }
        }
        let oif = oif.ok_or_else(|| Error::Unsupported(format!("no route to {dst}")))?;
        Ok((oif, src))
    }

    /// The IPv4 and IPv6 addresses on a link (IPv6 link-local included).
    pub fn addresses(&mut self, name: &str) -> Result<Addresses> {
        let link = self.link(name)?;
        Ok(self
            .all_addresses()?
            .remove(&link.index)
            .unwrap_or_default())
    }

    /// The IPv4 and IPv6 addresses of every link, by index, from one dump.
    pub fn all_addresses(&mut self) -> Result<HashMap<u32, Addresses>> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Unspec;
        let r = self.request(
            RouteNetlinkMessage::GetAddress(m),
            NLM_F_DUMP,
            "RTM_GETADDR",
            "-",
        )?;
        let mut out: HashMap<u32, Addresses> = HashMap::new();
        for msg in r {
            let RouteNetlinkMessage::NewAddress(a) = msg else {
                continue;
            };
            let (v4, v6) = out.entry(a.header.index).or_default();
            for attr in &a.attributes {
                match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => v4.push(*ip),
                    AddressAttribute::Address(IpAddr::V6(ip)) => v6.push(*ip),
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}

/// A link's IPv4 and IPv6 addresses.
pub type Addresses = (Vec<Ipv4Addr>, Vec<Ipv6Addr>);

/// A socket subscribed to link events (RTNLGRP_LINK: carrier and admin
/// changes) and address events (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR), as
/// they happen.
#[derive(Debug)]
pub struct LinkEvents {
    sock: Socket,
    buf: Vec<u8>,
    addresses_changed: bool,
    deleted: Vec<u32>,
}

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

impl LinkEvents {
    /// Subscribes to link events in the current network namespace.
    pub fn open() -> Result<LinkEvents> {
        let mut sock =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::sys("socket(NETLINK_ROUTE)", "-", e))?;
        let groups = [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR]
            .iter()
            .fold(0u32, |m, g| m | 1 << (g - 1));
        sock.bind(&SocketAddr::new(0, groups))
            .map_err(|e| Error::sys("bind(RTNLGRP_LINK)", "-", e))?;
        sock.set_non_blocking(true)
            .map_err(|e| Error::sys("fcntl(O_NONBLOCK)", "-", e))?;
        Ok(LinkEvents {
            addresses_changed: false,
            deleted: Vec::new(),
            sock,
            buf: vec![0u8; 1 << 16],
        })
    }

    /// The socket's file descriptor, to wait on with poll().
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.sock.as_raw_fd()
    }

    /// Waits up to `timeout` for events or for any of `also` (other
    /// descriptors: a [`crate::sys::Waker`], slow-protocol sockets) to
    /// become readable, then reads every pending event.
    pub fn wait(&mut self, also: &[std::os::fd::RawFd], timeout: std::time::Duration) -> Vec<Link> {
        let fds: Vec<_> = std::iter::once(self.fd())
            .chain(also.iter().copied())
            .collect();
        // A timeout or an error is as good as a wake-up: the drain below
        // finds whatever is there, and never blocks.
        let _ = crate::sys::poll(&fds, timeout, "-");
        self.drain()
    }

    /// Whether an address was added or removed since the last call.
    pub fn take_addresses_changed(&mut self) -> bool {
        std::mem::take(&mut self.addresses_changed)
    }

    /// The indices of the links deleted since the last call (RTM_DELLINK:
    /// an interface removed or a NIC unplugged).
    pub fn take_deleted(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.deleted)
    }

    /// Reads every pending event; returns the links they describe (new state).
    /// Never blocks.
    pub fn drain(&mut self) -> Vec<Link> {
        let mut out = Vec::new();
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(_) => return out,
            };
            let mut off = 0;
            while off < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                else {
                    break;
                };
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        out.push(Link::from_message(&l));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                        self.deleted.push(l.header.index);
                    }
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_),
                    ) => self.addresses_changed = true,
                    _ => {}
                }
            }
        }
    }
}

/// Reads carriers cheaply for the `miimon` poll: from sysfs
/// (`/sys/class/net/<name>/carrier`, one small read per link) when the sysfs
/// this process sees belongs to its network namespace (the ifindex there
/// matches netlink's), otherwise with RTM_GETLINK.
#[derive(Debug)]
pub struct CarrierReader {
    sysfs_ok: bool,
}

impl CarrierReader {
    /// Checks whether sysfs can be trusted for `links` (name, ifindex).
    pub fn new(links: &[(String, u32)]) -> CarrierReader {
        let sysfs_ok = links.iter().all(|(name, idx)| {
            std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                == Some(*idx)
        });
        CarrierReader { sysfs_ok }
    }

    /// Whether readings come from sysfs.
    pub fn uses_sysfs(&self) -> bool {
        self.sysfs_ok
    }

    /// The carrier of `name` (false when the link is down or gone).
    pub fn carrier(&self, nl: &mut Netlink, name: &str) -> Result<bool> {
        if self.sysfs_ok {
            // Reading `carrier` of an admin-down link fails with EINVAL: no carrier.
            return Ok(
                std::fs::read_to_string(format!("/sys/class/net/{name}/carrier"))
                    .map(|s| s.trim() == "1")
                    .unwrap_or(false),
            );
        }
        nl.link(name).map(|l| l.carrier)
    }
}

/// Link speed (Mb/s) and duplex from sysfs, where the driver reports them.
pub fn speed_duplex(name: &str) -> (Option<u32>, Option<bool>) {
    let read = |f: &str| std::fs::read_to_string(format!("/sys/class/net/{name}/{f}")).ok();
    let speed = read("speed")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .and_then(|s| u32::try_from(s).ok());
    let duplex = read("duplex").and_then(|d| match d.trim() {
        "full" => Some(true),
        "half" => Some(false),
        _ => None,
    });
    (speed, duplex)
}
