//! The full status: the core's view plus the data plane's counters.

use xbond_core::bond::Bond;
use xbond_core::config::BondConfig;
use xbond_core::status::{BondRuntime, QueueRuntime, SlaveRuntime, SocketRuntime, Status};
use xbond_xdp::dataplane::Dataplane;
use xbond_xdp::worker::SocketInfo;

use super::mtu::MtuState;

/// Builds the full status: the core's view plus the data plane's counters.
pub fn status(bond: &Bond, dp: &Dataplane, cfg: &BondConfig, mtu: &MtuState) -> Status {
    // What the socket of `iface` on queue 0 got.
    let bound = |iface: &str| {
        dp.sockets()
            .first()
            .and_then(|q| q.iter().find(|s| s.iface == iface))
            .map_or("none", |s| s.mode.as_str())
            .to_string()
    };
    let mut runtime = BondRuntime {
        peer_name: cfg.peer_name.clone(),
        upper_xdp_bind: bound(&cfg.peer_name),
        workers: dp.worker_threads() as u32,
        mtu: mtu.mtu,
        max_frame: mtu.max_frame as u64,
        notes: mtu.notes.clone(),
        announced: bond
            .upper_addresses()
            .iter()
            .map(|u| {
                let addrs: Vec<String> = u
                    .ipv4
                    .iter()
                    .map(ToString::to_string)
                    .chain(u.ipv6.iter().map(ToString::to_string))
                    .collect();
                format!(
                    "{} (vlan {}, {}): {}",
                    u.name,
                    u.vlan,
                    u.mac,
                    addrs.join(" ")
                )
            })
            .collect(),
        reported: bond
            .joined_groups()
            .iter()
            .map(|j| {
                let groups: Vec<String> = j
                    .groups4
                    .iter()
                    .map(ToString::to_string)
                    .chain(j.groups6.iter().map(ToString::to_string))
                    .collect();
                format!("{} (vlan {}): {}", j.name, j.vlan, groups.join(" "))
            })
            .collect(),
        ..BondRuntime::default()
    };
    // Frames shorter than an Ethernet header are dropped and counted in XDP
    // (on the upper port and on every slave) and, past XDP (the in-process
    // upper port), by the workers.
    runtime.malformed = dp
        .upper_program()
        .into_iter()
        .chain(dp.slave_programs())
        .map(|p| p.counters().dropped_runt)
        .sum();
    let mut slaves = vec![SlaveRuntime::default(); cfg.slaves.len()];
    for (i, s) in slaves.iter_mut().enumerate() {
        s.xdp_bind = bound(&cfg.slaves[i]);
        if let Some(p) = dp.slave_programs().get(i) {
            s.xdp_attach = p.mode().as_str().to_string();
            let c = p.counters();
            s.rx_dropped_inactive = c.dropped_inactive;
            s.rx_dropped_no_socket = c.dropped_no_socket;
            s.rx_passed_to_kernel = c.passed_slow;
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    for w in dp.stats() {
        let slave_sum = |f: fn(&xbond_xdp::worker::SlaveCounters) -> u64| -> u64 {
            w.slaves.iter().map(f).sum()
        };
        let oversize = w.tx_oversize.load(Relaxed) + slave_sum(|c| c.rx_oversize.load(Relaxed));
        let sockets = dp
            .sockets()
            .get(runtime.queues.len())
            .map(|v| v.iter().map(socket).collect())
            .unwrap_or_default();
        runtime.queues.push(QueueRuntime {
            from_host: w.upper_rx.load(Relaxed),
            to_host: w.upper_tx.load(Relaxed),
            dropped: w.tx_no_slave.load(Relaxed)
                + w.tx_malformed.load(Relaxed)
                + w.upper_tx_dropped.load(Relaxed)
                + oversize
                + slave_sum(|c| c.tx_dropped.load(Relaxed) + c.rx_malformed.load(Relaxed)),
            sockets,
            busy_passes: w.busy_passes.load(Relaxed),
            kicks: w.kicks.load(Relaxed),
            sleeps: w.sleeps.load(Relaxed),
            coalesce_waits: w.coalesce_waits.load(Relaxed),
        });
        runtime.oversize += oversize;
        runtime.tx_no_slave += w.tx_no_slave.load(Relaxed);
        runtime.malformed += w.tx_malformed.load(Relaxed);
        runtime.malformed += w
            .slaves
            .iter()
            .map(|s| s.rx_malformed.load(Relaxed))
            .sum::<u64>();
        let pool = w.pool();
        runtime.pool_free += pool.free as u64;
        runtime.pool_in_fill += pool.in_fill as u64;
        runtime.pool_in_tx += pool.in_tx as u64;
        runtime.pool_total += pool.total as u64;
        for (s, c) in slaves.iter_mut().zip(&w.slaves) {
            s.rx_frames += c.rx.load(Relaxed);
            s.tx_frames += c.tx.load(Relaxed);
            s.rx_dropped_inactive += c.rx_inactive.load(Relaxed);
            s.rx_dropped_duplicate += c.rx_duplicate.load(Relaxed);
            s.tx_dropped += c.tx_dropped.load(Relaxed);
        }
    }
    Status::new(bond, runtime, &slaves)
}

/// One socket's status: what it got, and the kernel's counters now.
fn socket(s: &SocketInfo) -> SocketRuntime {
    let k = s
        .stats
        .as_ref()
        .and_then(|h| h.read().ok())
        .unwrap_or_default();
    SocketRuntime {
        iface: s.iface.clone(),
        xdp_bind: s.mode.as_str().to_string(),
        multi_buffer: s.multi_buffer,
        own_umem: s.own_umem,
        refused: s.refused.clone(),
        rx_dropped: k.rx_dropped,
        rx_ring_full: k.rx_ring_full,
        fill_ring_empty: k.fill_ring_empty,
        invalid_descs: k.rx_invalid + k.tx_invalid,
    }
}
