//! Tests of the receive balancer: the host's ARP replies spread over the
//! slaves, updates after an ARP request, failover and return, learning from
//! peers, a MAC swap, and the bound on the client table.

use super::*;
use crate::alb::fixtures::*;
use crate::alb::swap_on_failover;

#[test]
fn host_replies_to_four_peers_spread_over_two_slave_macs() {
    let now = Instant::now();
    let mut r = rlb2(now);
    let mut per_slave = [0; 2];
    for i in 2..6u8 {
        let mut f = host_reply(ip(i), peer_mac(i));
        let orig = f.clone();
        let s = r
            .rewrite_host_arp(&mut f, now)
            .expect("a reply is balanced");
        per_slave[usize::from(s)] += 1;
        let smac = mac(0x10 + s);
        let a = read_arp(&f);
        assert_eq!(a.sha, smac, "ARP sender hardware address");
        assert_eq!(&f[6..12], &smac.0, "Ethernet source");
        assert_eq!(a.spa, BOND_IP);
        assert_eq!((a.tha, a.tpa), (peer_mac(i), ip(i)));
        assert_eq!(&f[..6], &orig[..6], "destination untouched");
        assert_eq!(&f[20..22], &orig[20..22], "op untouched");
        assert_eq!(
            &f[28..],
            &orig[28..],
            "addresses after the sender untouched"
        );
        assert_eq!(r.slave_of(ip(i)), Some(s));
        // Asking again keeps the peer on its slave.
        let mut again = host_reply(ip(i), peer_mac(i));
        assert_eq!(r.rewrite_host_arp(&mut again, now), Some(s));
    }
    assert_eq!(per_slave, [2, 2]);
    assert_eq!(r.clients().len(), 4);
    assert!(r.clients().iter().all(|c| !c.needs_update));
    assert_eq!(r.poll_transmit(now + Duration::from_secs(1)), None);
}

#[test]
fn host_reply_through_a_vlan_is_rewritten() {
    let now = Instant::now();
    let mut r = rlb2(now);
    let mut f = ArpInfo {
        eth_dst: peer_mac(7),
        eth_src: BOND_MAC,
        vlan: 42,
        op: ARPOP_REPLY,
        sha: BOND_MAC,
        spa: BOND_IP,
        tha: peer_mac(7),
        tpa: ip(7),
    }
    .emit();
    let s = r.rewrite_host_arp(&mut f, now).unwrap();
    let a = read_arp(&f);
    assert_eq!((a.vlan, a.sha), (42, mac(0x10 + s)));
    assert_eq!(&f[6..12], &mac(0x10 + s).0);
}

#[test]
fn host_request_is_untouched_and_its_peer_is_updated_after_200ms() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    // A client already on slave 0, so the new peer goes to slave 1.
    let mut f = host_reply(ip(2), peer_mac(2));
    assert_eq!(r.rewrite_host_arp(&mut f, t0), Some(0));

    let mut req = host_request(ip(9));
    let orig = req.clone();
    assert_eq!(r.rewrite_host_arp(&mut req, t0), None);
    assert_eq!(req, orig, "requests keep the bond MAC");
    assert_eq!(r.slave_of(ip(9)), Some(1));
    assert!(r.clients().iter().all(|c| c.needs_update));
    assert_eq!(r.poll_transmit(t0 + Duration::from_millis(199)), None);
    // The peer answers 5 ms later.
    r.learn_from_peer(
        &peer_reply(ip(9), peer_mac(9)),
        t0 + Duration::from_millis(5),
    );
    assert_eq!(r.poll_timeout(), Some(t0 + RLB_UPDATE_DELAY));
    assert_eq!(r.poll_transmit(t0 + Duration::from_millis(199)), None);

    let sent = drain(&mut r, t0 + RLB_UPDATE_DELAY);
    // The broadcast request also taught the other client the bond MAC.
    let to9: Vec<_> = sent
        .iter()
        .filter(|(_, f)| read_arp(f).tpa == ip(9))
        .collect();
    let to2: Vec<_> = sent
        .iter()
        .filter(|(_, f)| read_arp(f).tpa == ip(2))
        .collect();
    assert_eq!((to9.len(), to2.len()), (2, 2), "a burst of two each");
    for (s, f) in to9 {
        let a = read_arp(f);
        assert_eq!(*s, 1);
        assert_eq!(a.op, ARPOP_REPLY);
        assert_eq!((a.sha, a.spa), (mac(0x11), BOND_IP));
        assert_eq!((a.tha, a.tpa), (peer_mac(9), ip(9)));
        assert_eq!(&f[..6], &peer_mac(9).0, "Ethernet destination is the peer");
        assert_eq!(&f[6..12], &mac(0x11).0, "Ethernet source is the slave");
        assert_eq!(f.len(), 60);
    }
    for (s, f) in to2 {
        assert_eq!((*s, read_arp(f).sha), (0, mac(0x10)));
    }
    assert!(r.clients().iter().all(|c| !c.needs_update));
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.poll_transmit(t0 + Duration::from_secs(5)), None);

    // A peer that never answers cannot be updated: its MAC is unknown.
    let t1 = t0 + Duration::from_secs(10);
    let mut req = host_request(ip(10));
    assert_eq!(r.rewrite_host_arp(&mut req, t1), None);
    let sent = drain(&mut r, t1 + Duration::from_secs(1));
    assert!(sent.iter().all(|(_, f)| read_arp(f).tpa != ip(10)));
    assert_eq!(sent.len(), 4, "the other clients heard the broadcast");
    let c10 = r.clients().into_iter().find(|c| c.ip == ip(10)).unwrap();
    assert!(c10.needs_update && c10.mac.is_zero());
    assert_eq!(r.poll_timeout(), None, "nothing sendable is pending");
}

#[test]
fn slave_failure_moves_clients_and_updates_them() {
    let t0 = Instant::now();
    let mut r = Rlb::new(
        vec![mac(0x10), mac(0x11), mac(0x12)],
        BOND_MAC,
        vec![BOND_IP],
    );
    r.set_usable(&[true, true, true], t0);
    for i in 2..8u8 {
        let mut f = host_reply(ip(i), peer_mac(i));
        r.rewrite_host_arp(&mut f, t0).unwrap();
    }
    let on1: Vec<Ipv4Addr> = r
        .clients()
        .iter()
        .filter(|c| c.slave == 1)
        .map(|c| c.ip)
        .collect();
    assert_eq!(on1.len(), 2);

    let t1 = t0 + Duration::from_secs(3);
    r.set_usable(&[true, false, true], t1);
    let clients = r.clients();
    assert!(clients.iter().all(|c| c.slave != 1));
    let counts = [0u8, 2].map(|s| clients.iter().filter(|c| c.slave == s).count());
    assert_eq!(counts, [3, 3], "spread over the slaves left");
    assert_eq!(r.poll_timeout(), Some(t1));
    let sent = drain(&mut r, t1);
    assert_eq!(
        sent.len(),
        2 * on1.len(),
        "only the moved clients are updated"
    );
    for (s, f) in &sent {
        let a = read_arp(f);
        assert!(on1.contains(&a.tpa));
        assert_eq!(Some(*s), r.slave_of(a.tpa));
        assert_eq!(a.sha, mac(0x10 + s), "names the new slave's MAC");
        assert_eq!(&f[6..12], &a.sha.0);
    }
}

#[test]
fn returning_slave_gets_clients_back() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    for i in 2..6u8 {
        let mut f = host_reply(ip(i), peer_mac(i));
        r.rewrite_host_arp(&mut f, t0).unwrap();
    }
    r.set_usable(&[true, false], t0);
    assert!(r.clients().iter().all(|c| c.slave == 0));
    assert_eq!(drain(&mut r, t0).len(), 4);

    let t1 = t0 + Duration::from_secs(1);
    r.set_usable(&[true, true], t1);
    let back: Vec<Ipv4Addr> = r
        .clients()
        .iter()
        .filter(|c| c.slave == 1)
        .map(|c| c.ip)
        .collect();
    assert_eq!(back.len(), 2);
    let sent = drain(&mut r, t1);
    assert_eq!(sent.len(), 4, "two clients, a burst of two each");
    for (s, f) in &sent {
        let a = read_arp(f);
        assert_eq!(*s, 1);
        assert!(back.contains(&a.tpa));
        assert_eq!(a.sha, mac(0x11));
    }
}

#[test]
fn no_usable_slave_means_no_rewrite_and_clients_wait() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    let mut f = host_reply(ip(2), peer_mac(2));
    assert_eq!(r.rewrite_host_arp(&mut f, t0), Some(0));
    r.set_usable(&[false, false], t0);
    let mut f = host_reply(ip(3), peer_mac(3));
    let orig = f.clone();
    assert_eq!(r.rewrite_host_arp(&mut f, t0), None);
    assert_eq!(f, orig);
    assert_eq!(r.poll_transmit(t0), None);
    r.set_usable(&[false, true], t0);
    assert_eq!(r.slave_of(ip(2)), Some(1));
    assert_eq!(drain(&mut r, t0).len(), 2);
}

#[test]
fn learning_from_peers() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    // A request for the bond creates an entry; a reply with no entry does not.
    r.learn_from_peer(&peer_request(ip(3), peer_mac(3)), t0);
    r.learn_from_peer(&peer_reply(ip(4), peer_mac(4)), t0);
    assert_eq!(r.clients().len(), 1);
    let c = r.clients()[0];
    assert_eq!((c.ip, c.mac, c.needs_update), (ip(3), peer_mac(3), false));
    // The host's reply then uses that slave.
    let mut f = host_reply(ip(3), peer_mac(3));
    assert_eq!(r.rewrite_host_arp(&mut f, t0), Some(c.slave));

    // The bond's own address, 0.0.0.0 and our own MACs are ignored.
    r.learn_from_peer(&peer_request(BOND_IP, peer_mac(5)), t0);
    r.learn_from_peer(&peer_request(Ipv4Addr::UNSPECIFIED, peer_mac(5)), t0);
    r.learn_from_peer(&peer_request(ip(6), mac(0x11)), t0);
    r.learn_from_peer(&peer_request(ip(6), MacAddr::BROADCAST), t0);
    // A request for another host.
    let mut other = peer_request(ip(7), peer_mac(7));
    other[38..42].copy_from_slice(&ip(200).octets());
    r.learn_from_peer(&other, t0);
    // Malformed: IPv6 ARP, bad op, not ARP.
    let mut bad = peer_request(ip(8), peer_mac(8));
    bad[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
    r.learn_from_peer(&bad, t0);
    let mut bad = peer_request(ip(8), peer_mac(8));
    bad[20..22].copy_from_slice(&3u16.to_be_bytes());
    r.learn_from_peer(&bad, t0);
    r.learn_from_peer(&ipv4_frame([10, 0, 0, 1], &[], 17), t0);
    assert_eq!(r.clients().len(), 1, "{:?}", r.clients());

    // The peer's address moves to another host: it is told its slave.
    let t1 = t0 + Duration::from_secs(1);
    r.learn_from_peer(&peer_reply(ip(3), peer_mac(33)), t1);
    assert_eq!(r.clients()[0].mac, peer_mac(33));
    let sent = drain(&mut r, t1);
    assert_eq!(sent.len(), 2);
    assert_eq!(read_arp(&sent[0].1).tha, peer_mac(33));
}

#[test]
fn host_arp_not_from_the_bond_is_left_alone() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    // A bridged guest behind the bond.
    let mut f = ArpInfo {
        eth_dst: peer_mac(2),
        eth_src: mac(0x77),
        vlan: 0,
        op: ARPOP_REPLY,
        sha: mac(0x77),
        spa: ip(77),
        tha: peer_mac(2),
        tpa: ip(2),
    }
    .emit();
    let orig = f.clone();
    assert_eq!(r.rewrite_host_arp(&mut f, t0), None);
    assert_eq!(f, orig);
    // Gratuitous ARP from the bond.
    let mut g = crate::wire::gratuitous_arp(BOND_MAC, BOND_IP, 0);
    let orig = g.clone();
    assert_eq!(r.rewrite_host_arp(&mut g, t0), None);
    assert_eq!(g, orig);
    // A reply to a broadcast address.
    let mut b = host_reply(ip(2), MacAddr::BROADCAST);
    assert_eq!(r.rewrite_host_arp(&mut b, t0), None);
    assert!(r.clients().is_empty());
}

#[test]
fn slave_mac_change_updates_its_clients() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    for i in 2..6u8 {
        let mut f = host_reply(ip(i), peer_mac(i));
        r.rewrite_host_arp(&mut f, t0).unwrap();
    }
    let mut macs = vec![mac(0x10), mac(0x11)];
    let changes = swap_on_failover(&mut macs, mac(0x10), 1);
    assert_eq!(changes, vec![(1, mac(0x10)), (0, mac(0x11))]);
    r.set_slave_macs(macs, t0);
    let sent = drain(&mut r, t0);
    assert_eq!(sent.len(), 8);
    for (s, f) in sent {
        assert_eq!(read_arp(&f).sha, if s == 0 { mac(0x11) } else { mac(0x10) });
    }
}

#[test]
fn client_table_is_bounded() {
    let t0 = Instant::now();
    let mut r = rlb2(t0);
    for i in 0..(RLB_MAX_CLIENTS as u32 + 10) {
        let o = (i + 2).to_be_bytes();
        let p = Ipv4Addr::new(10, o[1], o[2], o[3]);
        let now = t0 + Duration::from_millis(u64::from(i));
        r.learn_from_peer(&peer_request(p, peer_mac(1)), now);
    }
    assert_eq!(r.clients().len(), RLB_MAX_CLIENTS);
    assert_eq!(
        r.slave_of(Ipv4Addr::new(10, 0, 0, 2)),
        None,
        "oldest evicted"
    );
}
