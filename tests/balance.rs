//! The hash buckets of balance-xor and 802.3ad: the load view in the
//! status (each loaded bucket with its slave, as the kernel's `hash %
//! slaves` puts it), and opt-in rebalancing, turned on at run time, that
//! splits flows an unlucky hash put on one slave.

mod common;

use std::time::Duration;

use common::{exe, status, wait_status, TwoLinks};

const HANG: Duration = Duration::from_secs(30);

fn tx(sock: &str) -> [u64; 2] {
    let s = status(sock);
    [s.slaves[0].runtime.tx_frames, s.slaves[1].runtime.tx_frames]
}

/// Sends `count` frames of one flow from `src` through bond0.
fn flow(t: &TwoLinks, dst_mac: &str, src: &str, count: u64, rate: u64) {
    let exe = exe().display().to_string();
    t.lab
        .exec(
            &t.host,
            &[
                &exe,
                "pktgen",
                "send",
                "--iface",
                "bond0",
                "--dst-mac",
                dst_mac,
                "--src-ip",
                src,
                "--dst-ip",
                "10.97.0.2",
                "--count",
                &count.to_string(),
                "--rate",
                &rate.to_string(),
            ],
        )
        .unwrap();
}

#[test]
fn the_load_view_shows_each_bucket_on_its_slave_and_rebalancing_splits_an_unlucky_pair() {
    let mut t = TwoLinks::new("bx");
    t.far_bridge("10.97.0.2/24");
    let host = t.host.clone();
    let sock = t.start(
        &host,
        "xa",
        "name = \"bond0\"\nslaves = [\"a0\", \"a1\"]\nmode = \"balance-xor\"\nxmit_hash_policy = \"layer3+4\"\nmiimon = 100\n",
        "10.97.0.1/24",
    );
    wait_status(&sock, HANG, |s| {
        s.slaves.iter().all(|x| x.mii_status == "up")
    });
    let mac = t.mac(&t.far, "br0");
    // Which slave each of three flows takes: two must share one.
    let mut on = Vec::new();
    for src in ["10.97.1.1", "10.97.1.2", "10.97.1.3"] {
        let before = tx(&sock);
        flow(&t, &mac, src, 2000, 20_000);
        let after = wait_status(&sock, HANG, |s| {
            s.slaves[0].runtime.tx_frames + s.slaves[1].runtime.tx_frames
                >= before[0] + before[1] + 2000
        });
        let grew = [
            after.slaves[0].runtime.tx_frames - before[0],
            after.slaves[1].runtime.tx_frames - before[1],
        ];
        // One flow, one slave (with the odd ARP or IGMP frame beside it).
        let slave = usize::from(grew[1] > grew[0]);
        assert!(
            grew[slave] >= 2000 && grew[1 - slave] < 50,
            "{src}: {grew:?}"
        );
        on.push((src, slave));
        // The load view: the heaviest bucket now, this flow's, is on that
        // slave (the view decays: earlier flows' buckets fade).
        let name = ["a0", "a1"][slave];
        let s = wait_status(&sock, HANG, |s| {
            s.balance.as_ref().is_some_and(|b| {
                b.buckets
                    .iter()
                    .max_by_key(|(_, _, l)| *l)
                    .is_some_and(|(_, n, l)| n == name && *l > 0)
            })
        });
        let b = s.balance.expect("a load view in balance-xor");
        assert_eq!(b.rebalances, 0);
    }
    let (a, b) = (0..3)
        .flat_map(|i| (i + 1..3).map(move |j| (i, j)))
        .find(|&(i, j)| on[i].1 == on[j].1)
        .map(|(i, j)| (on[i].0, on[j].0))
        .expect("two of three flows on one of two slaves");
    // Turned on at run time: the pair is split across the slaves.
    let out = std::process::Command::new(exe())
        .args([
            "ctl",
            "bond0",
            "--socket",
            &sock,
            "set",
            "rebalance_interval",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe_s = exe().display().to_string();
    for (name, src) in [("fa", a), ("fb", b)] {
        t.lab
            .spawn(
                &host,
                name,
                &[
                    &exe_s,
                    "pktgen",
                    "send",
                    "--iface",
                    "bond0",
                    "--dst-mac",
                    &mac,
                    "--src-ip",
                    src,
                    "--dst-ip",
                    "10.97.0.2",
                    "--count",
                    "200000",
                    "--rate",
                    "5000",
                ],
            )
            .unwrap();
    }
    let s = wait_status(&sock, HANG, |s| {
        s.balance.as_ref().is_some_and(|b| b.rebalances >= 1)
    });
    let _ = s;
    let before = tx(&sock);
    let after = wait_status(&sock, HANG, |s| {
        s.slaves[0].runtime.tx_frames > before[0] + 2000
            && s.slaves[1].runtime.tx_frames > before[1] + 2000
    });
    let view = after.balance.unwrap();
    let mut by_load = view.buckets.clone();
    by_load.sort_by_key(|(_, _, l)| std::cmp::Reverse(*l));
    assert!(by_load.len() >= 2, "{by_load:?}");
    assert_ne!(
        by_load[0].1, by_load[1].1,
        "the two busiest buckets on two slaves: {by_load:?}"
    );
    t.lab.stop("fa").unwrap();
    t.lab.stop("fb").unwrap();
}
