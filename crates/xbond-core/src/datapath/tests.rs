//! Verdicts for every mode, on byte fixtures.

use super::*;
use crate::alb::TLB_UNASSIGNED;
use crate::options::{HashPolicy, MacAddr};

const BOND: [u8; 6] = [0x02, 0xb0, 0, 0, 0, 0x01];
const SLAVE1: [u8; 6] = [0x02, 0x51, 0, 0, 0, 0x02];
const PEER: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x09];

/// An IPv4/UDP frame, written out byte by byte.
fn udp(dst_mac: [u8; 6], src_mac: [u8; 6], dst_ip: [u8; 4], sport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]); // IPv4
    f.extend_from_slice(&[0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&dst_ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&[0, 80, 0, 12, 0, 0]);
    f.extend_from_slice(&[0xaa; 4]);
    f
}

/// An ARP request from `src_mac`.
fn arp(src_mac: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 2]);
    f
}

fn plan(mode: Mode, slaves: &[u8]) -> TxPlan {
    let mut p = TxPlan::with_slaves(mode, slaves);
    p.policy = HashPolicy::Layer34;
    p.bond_mac = MacAddr(BOND);
    p.slave_macs[0] = MacAddr(BOND);
    p.slave_macs[1] = MacAddr(SLAVE1);
    p
}

fn tx(p: &TxPlan, frames: &[Vec<u8>]) -> Vec<TxVerdict> {
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut out = vec![TxVerdict::default(); frames.len()];
    tx_batch(p, &mut Selector::default(), &refs, &mut out);
    out
}

fn rx(p: &TxPlan, slave: usize, dups: &mut DupFilter, frames: &[Vec<u8>]) -> Vec<RxVerdict> {
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut out = vec![RxVerdict::default(); frames.len()];
    rx_batch(p, slave, dups, &refs, &mut out);
    out
}

fn actions(v: &[TxVerdict]) -> Vec<TxAction> {
    v.iter().map(|v| v.action).collect()
}

#[test]
fn round_robin_and_xor_send_on_a_slave_unchanged() {
    let frames: Vec<Vec<u8>> = (0..4).map(|i| udp(PEER, BOND, [10, 0, 0, 2], i)).collect();
    let v = tx(&plan(Mode::BalanceRr, &[0, 1]), &frames);
    use TxAction::Slave;
    assert_eq!(actions(&v), [Slave(0), Slave(1), Slave(0), Slave(1)]);
    assert!(v.iter().all(|v| v.load_bucket.is_none()));
    let v = tx(&plan(Mode::BalanceXor, &[0, 1]), &frames);
    assert!(v.iter().all(|v| matches!(v.action, Slave(0 | 1))));
}

#[test]
fn active_backup_and_802_3ad_send_only_where_the_plan_says() {
    let frames = vec![udp(PEER, BOND, [10, 0, 0, 2], 1)];
    assert_eq!(
        actions(&tx(&plan(Mode::ActiveBackup, &[1]), &frames)),
        [TxAction::Slave(1)]
    );
    assert_eq!(
        actions(&tx(&plan(Mode::Ieee8023ad, &[1]), &frames)),
        [TxAction::Slave(1)]
    );
    for mode in Mode::ALL {
        assert_eq!(
            actions(&tx(&plan(*mode, &[]), &frames)),
            [TxAction::NoSlave],
            "{mode}: no slave, no send"
        );
    }
}

#[test]
fn broadcast_copies_to_all() {
    let frames = vec![udp(PEER, BOND, [10, 0, 0, 2], 1)];
    assert_eq!(
        actions(&tx(&plan(Mode::Broadcast, &[0, 1]), &frames)),
        [TxAction::All]
    );
}

#[test]
fn tlb_rewrites_the_source_off_the_active_slave_and_counts_the_bucket() {
    let mut p = plan(Mode::BalanceTlb, &[0, 1]);
    let frame = udp(PEER, BOND, [10, 0, 0, 2], 1);
    let bucket = crate::alb::tlb_bucket(&frame).expect("IPv4 is balanced");
    p.tlb_table[usize::from(bucket)] = 1;
    let v = tx(&p, std::slice::from_ref(&frame));
    assert_eq!(v[0].action, TxAction::SlaveOwnSource(1));
    assert_eq!(v[0].load_bucket, Some(bucket));
    let mut out = frame.clone();
    rewrite_source(&p, 1, &mut out);
    assert_eq!(&out[6..12], &SLAVE1, "the slave's own MAC as source");
    assert_eq!(&out[..6], &frame[..6]);
    assert_eq!(&out[12..], &frame[12..]);
    // On the active slave the frame goes as it is.
    p.tlb_table[usize::from(bucket)] = TLB_UNASSIGNED;
    assert_eq!(tx(&p, &[frame])[0].action, TxAction::Slave(0));
}

#[test]
fn alb_diverts_the_hosts_arp_and_tlb_does_not() {
    let frames = vec![arp(BOND), udp(PEER, BOND, [10, 0, 0, 2], 1)];
    let mut p = plan(Mode::BalanceAlb, &[0, 1]);
    p.divert_host_arp = true;
    let v = tx(&p, &frames);
    assert_eq!(v[0].action, TxAction::Divert);
    assert_eq!(v[1].action, TxAction::Slave(0));
    let v = tx(&plan(Mode::BalanceTlb, &[0, 1]), &frames);
    assert_eq!(v[0].action, TxAction::Slave(0), "ARP is not balanced");
    assert_eq!(v[0].load_bucket, None);
}

#[test]
fn a_runt_frame_is_malformed_in_both_directions() {
    let runt = vec![vec![0u8; 13]];
    for mode in Mode::ALL {
        let p = plan(*mode, &[0, 1]);
        assert_eq!(actions(&tx(&p, &runt)), [TxAction::Malformed], "{mode}");
        let v = rx(&p, 0, &mut DupFilter::default(), &runt);
        assert_eq!(v[0].action, RxAction::Malformed, "{mode}");
    }
}

#[test]
fn a_backup_slave_delivers_nothing_but_its_arp_is_tapped() {
    let mut p = plan(Mode::ActiveBackup, &[0]);
    p.tap_arp = true;
    let frames = vec![arp(PEER), udp(BOND, PEER, [10, 0, 0, 1], 1)];
    let v = rx(&p, 1, &mut DupFilter::default(), &frames);
    assert_eq!(
        v,
        [
            RxVerdict {
                action: RxAction::Inactive,
                tap: true
            },
            RxVerdict {
                action: RxAction::Inactive,
                tap: false
            },
        ]
    );
    let v = rx(&p, 0, &mut DupFilter::default(), &frames);
    assert_eq!(v[0].action, RxAction::Deliver);
    assert!(v[0].tap);
    p.tap_arp = false;
    assert!(!rx(&p, 0, &mut DupFilter::default(), &frames)[0].tap);
}

#[test]
fn alb_takes_frames_to_a_slave_mac_and_rewrites_them_to_the_bond() {
    let p = plan(Mode::BalanceAlb, &[0, 1]);
    let to_slave = udp(SLAVE1, PEER, [10, 0, 0, 1], 1);
    let flood = arp(PEER);
    let frames = vec![to_slave.clone(), flood];
    let v = rx(&p, 1, &mut DupFilter::default(), &frames);
    assert_eq!(v[0].action, RxAction::DeliverToBond);
    assert_eq!(
        v[1].action,
        RxAction::Inactive,
        "floods come in on the active slave only"
    );
    let v = rx(&p, 0, &mut DupFilter::default(), &frames);
    assert_eq!(v[1].action, RxAction::Deliver);
    let mut out = to_slave.clone();
    rewrite_destination(&p, &mut out);
    assert_eq!(&out[..6], &BOND);
    assert_eq!(&out[6..], &to_slave[6..]);
}

#[test]
fn broadcast_drops_the_copy_from_the_second_slave() {
    let p = plan(Mode::Broadcast, &[0, 1]);
    let frames = vec![udp(BOND, PEER, [10, 0, 0, 1], 7)];
    let mut dups = DupFilter::default();
    assert_eq!(rx(&p, 0, &mut dups, &frames)[0].action, RxAction::Deliver);
    assert_eq!(rx(&p, 1, &mut dups, &frames)[0].action, RxAction::Duplicate);
    // In the other modes the same frame twice is delivered twice.
    let p = plan(Mode::BalanceRr, &[0, 1]);
    let mut dups = DupFilter::default();
    assert_eq!(rx(&p, 0, &mut dups, &frames)[0].action, RxAction::Deliver);
    assert_eq!(rx(&p, 1, &mut dups, &frames)[0].action, RxAction::Deliver);
}

/// A worker whose ports have memories of their own (the zero-copy layout:
/// a UMEM per slave socket): frames crossing between the upper port and a
/// slave are copied into the receiving port's region, nothing is lost, and
/// the books of every region close.
#[test]
fn frames_cross_between_regions_by_one_copy_and_the_books_close() {
    use super::engine::{Engine, Taps};
    use super::mem::{MemFrames, MemPort};
    let mut frames = MemFrames::frames_in(64, 2048, 0);
    frames.extend(MemFrames::frames_in(64, 2048, 1));
    frames.extend(MemFrames::frames_in(64, 2048, 2));
    let mut engine = Engine::new(frames, 2, 1);
    let mut upper = MemPort::in_region(16, 0);
    let mut slaves = vec![MemPort::in_region(16, 1), MemPort::in_region(16, 2)];
    let taps = Taps::default();
    for mode in [Mode::BalanceRr, Mode::Broadcast] {
        let p = plan(mode, &[0, 1]);
        engine.pass(&MemFrames, &mut upper, &mut slaves, &p, &taps);
        let sent: Vec<Vec<u8>> = (0..8).map(|i| udp(PEER, BOND, [10, 0, 0, 9], i)).collect();
        for f in &sent {
            assert!(upper.wire_receive(f));
        }
        engine.pass(&MemFrames, &mut upper, &mut slaves, &p, &taps);
        let mut out: Vec<Vec<u8>> = Vec::new();
        for s in &mut slaves {
            while let Some(f) = s.wire_transmit() {
                out.push(f);
            }
        }
        let copies = if mode == Mode::Broadcast { 2 } else { 1 };
        assert_eq!(out.len(), sent.len() * copies, "{mode:?}");
        for f in &sent {
            assert_eq!(out.iter().filter(|o| *o == f).count(), copies, "{mode:?}");
        }
        // And back: from each slave to the host.
        assert!(slaves[0].wire_receive(&udp(BOND, PEER, [10, 0, 0, 1], 1)));
        assert!(slaves[1].wire_receive(&udp(BOND, PEER, [10, 0, 0, 1], 2)));
        engine.pass(&MemFrames, &mut upper, &mut slaves, &p, &taps);
        let mut got = Vec::new();
        while let Some(f) = upper.wire_transmit() {
            got.push(f);
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                udp(BOND, PEER, [10, 0, 0, 1], 1),
                udp(BOND, PEER, [10, 0, 0, 1], 2)
            ],
            "{mode:?}"
        );
        engine.pass(&MemFrames, &mut upper, &mut slaves, &p, &taps);
        let c = engine.pool();
        assert!(c.balanced(), "{mode:?}: {c:?}");
        assert_eq!((c.total, c.in_tx), (192, 0), "{mode:?}: {c:?}");
        let held = upper.held() + slaves.iter().map(MemPort::held).sum::<usize>();
        assert_eq!(held, c.in_fill, "{mode:?}: every region's fill ring");
    }
}
