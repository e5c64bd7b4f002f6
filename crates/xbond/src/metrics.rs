//! The Prometheus endpoint (`metrics_listen = "127.0.0.1:9741"`): each
//! scrape of `/metrics` asks the control loop for one status and renders it
//! in the text exposition format (prometheus-client), served by tiny_http
//! on a thread of its own.
//!
//! node_exporter's bonding collector names come first, so that dashboards
//! and alerts built on them keep working: `node_bonding_slaves` and
//! `node_bonding_active` (slaves whose MII status is up), labelled
//! `master`. xbond's own are `xbond_*`, labelled `master` and, per slave,
//! `slave`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use crossbeam::channel::Sender;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use xbond_core::status::Status;
use xbond_xdp::sys::Waker;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Bond {
    master: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BondKind {
    master: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Slave {
    master: String,
    slave: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlaveKind {
    master: String,
    slave: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueKind {
    master: String,
    queue: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Socket {
    master: String,
    queue: String,
    iface: String,
    kind: String,
}

/// A family of gauges or counters registered under `name`.
fn family<L, M>(reg: &mut Registry, name: &str, help: &str) -> Family<L, M>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let f = Family::<L, M>::default();
    reg.register(name, help, f.clone());
    f
}

/// The status `s` in the text exposition format.
pub fn render(s: &Status) -> String {
    let mut reg = Registry::default();
    let bond = Bond {
        master: s.name.clone(),
    };
    let slave = |name: &str| Slave {
        master: s.name.clone(),
        slave: name.to_string(),
    };
    let kind = |name: &str, k: &str| SlaveKind {
        master: s.name.clone(),
        slave: name.to_string(),
        kind: k.to_string(),
    };

    // node_exporter's bonding collector.
    let slaves: Family<Bond, Gauge> = family(
        &mut reg,
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
    );
    slaves.get_or_create(&bond).set(s.slaves.len() as i64);
    let active: Family<Bond, Gauge> = family(
        &mut reg,
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
    );
    active
        .get_or_create(&bond)
        .set(s.slaves.iter().filter(|x| x.mii_status == "up").count() as i64);

    let up: Family<Bond, Gauge> = family(
        &mut reg,
        "xbond_up",
        "Whether the bond has carrier (MII Status up).",
    );
    up.get_or_create(&bond).set(i64::from(s.mii_status));
    let failovers: Family<Bond, Counter> = family(
        &mut reg,
        "xbond_failovers",
        "Failovers: the active slave lost its link and another took over.",
    );
    failovers.get_or_create(&bond).inc_by(s.runtime.failovers);
    let last: Family<Bond, Gauge<f64, std::sync::atomic::AtomicU64>> = family(
        &mut reg,
        "xbond_last_failover_seconds",
        "The last failover, from the first sign of the link loss to the new active slave.",
    );
    if let Some(us) = s.runtime.last_failover_us {
        last.get_or_create(&bond).set(us as f64 / 1e6);
    }
    let dropped: Family<BondKind, Counter> = family(
        &mut reg,
        "xbond_bond_dropped_frames",
        "Frames the bond dropped, by reason.",
    );
    for (k, v) in [
        ("no_usable_slave", s.runtime.tx_no_slave),
        ("malformed", s.runtime.malformed),
        ("oversize", s.runtime.oversize),
    ] {
        dropped
            .get_or_create(&BondKind {
                master: s.name.clone(),
                kind: k.to_string(),
            })
            .inc_by(v);
    }

    let rx: Family<Slave, Counter> = family(
        &mut reg,
        "xbond_slave_rx_frames",
        "Frames received on the slave and delivered to the bond.",
    );
    let tx: Family<Slave, Counter> = family(
        &mut reg,
        "xbond_slave_tx_frames",
        "Frames sent on the slave.",
    );
    let sdrop: Family<SlaveKind, Counter> = family(
        &mut reg,
        "xbond_slave_dropped_frames",
        "Frames dropped on the slave, by reason.",
    );
    let fails: Family<Slave, Counter> = family(
        &mut reg,
        "xbond_slave_link_failures",
        "Times the slave's link went down (Link Failure Count).",
    );
    let mii: Family<Slave, Gauge> = family(
        &mut reg,
        "xbond_slave_mii_up",
        "Whether the slave's MII status is up.",
    );
    let is_active: Family<Slave, Gauge> = family(
        &mut reg,
        "xbond_slave_active",
        "Whether the slave is the active one.",
    );
    let lacp_state: Family<SlaveKind, Gauge> = family(
        &mut reg,
        "xbond_slave_lacp_state",
        "802.3ad port state bits (kind actor or partner).",
    );
    let lacpdus: Family<SlaveKind, Counter> = family(
        &mut reg,
        "xbond_slave_lacpdus",
        "LACPDUs, by kind: rx, tx, malformed (illegal rx), over_budget.",
    );
    let churn: Family<SlaveKind, Counter> = family(
        &mut reg,
        "xbond_slave_lacp_churned",
        "Churn detections (kind actor or partner).",
    );
    for x in &s.slaves {
        let l = slave(&x.name);
        rx.get_or_create(&l).inc_by(x.runtime.rx_frames);
        tx.get_or_create(&l).inc_by(x.runtime.tx_frames);
        for (k, v) in [
            ("inactive", x.runtime.rx_dropped_inactive),
            ("duplicate", x.runtime.rx_dropped_duplicate),
            ("no_socket", x.runtime.rx_dropped_no_socket),
            ("tx", x.runtime.tx_dropped),
        ] {
            sdrop.get_or_create(&kind(&x.name, k)).inc_by(v);
        }
        fails
            .get_or_create(&l)
            .inc_by(u64::from(x.link_failure_count));
        mii.get_or_create(&l).set(i64::from(x.mii_status == "up"));
        is_active
            .get_or_create(&l)
            .set(i64::from(s.active.as_deref() == Some(x.name.as_str())));
        if let Some(p) = &x.lacp {
            lacp_state
                .get_or_create(&kind(&x.name, "actor"))
                .set(i64::from(p.actor_state));
            lacp_state
                .get_or_create(&kind(&x.name, "partner"))
                .set(i64::from(p.partner_state));
            let c = &p.counters;
            for (k, v) in [
                ("rx", c.lacpdu_rx),
                ("tx", c.lacpdu_tx),
                ("malformed", c.illegal_rx),
                ("over_budget", c.over_budget_rx),
            ] {
                lacpdus.get_or_create(&kind(&x.name, k)).inc_by(v);
            }
            churn
                .get_or_create(&kind(&x.name, "actor"))
                .inc_by(u64::from(p.actor_churned));
            churn
                .get_or_create(&kind(&x.name, "partner"))
                .inc_by(u64::from(p.partner_churned));
        }
    }
    let ring: Family<Socket, Counter> = family(
        &mut reg,
        "xbond_socket_dropped_frames",
        "The kernel's AF_XDP drops per queue and interface (XDP_STATISTICS), by kind.",
    );
    let work: Family<QueueKind, Counter> = family(
        &mut reg,
        "xbond_queue_events",
        "What each queue's worker did: busy_passes (passes that found work), \
         tx_kicks (TX system calls), sleeps (sleeps in poll(2), each ending in a wake-up), \
         coalesce_waits (timed sleeps after a small pass, --coalesce-us).",
    );
    for (q, queue) in s.runtime.queues.iter().enumerate() {
        for (what, v) in [
            ("busy_passes", queue.busy_passes),
            ("tx_kicks", queue.kicks),
            ("sleeps", queue.sleeps),
            ("coalesce_waits", queue.coalesce_waits),
        ] {
            work.get_or_create(&QueueKind {
                master: s.name.clone(),
                queue: q.to_string(),
                kind: what.to_string(),
            })
            .inc_by(v);
        }
        for k in &queue.sockets {
            for (what, v) in [
                ("rx_dropped", k.rx_dropped),
                ("rx_ring_full", k.rx_ring_full),
                ("fill_ring_empty", k.fill_ring_empty),
                ("invalid_descs", k.invalid_descs),
            ] {
                ring.get_or_create(&Socket {
                    master: s.name.clone(),
                    queue: q.to_string(),
                    iface: k.iface.clone(),
                    kind: what.to_string(),
                })
                .inc_by(v);
            }
        }
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// The endpoint's thread; stops when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` and answers `/metrics` with the status that
    /// `status_tx` (the control loop's status channel) gives.
    pub fn start(
        addr: &str,
        status_tx: Sender<Sender<Status>>,
        waker: Arc<Waker>,
    ) -> Result<MetricsServer> {
        let (bound_tx, bound_rx) = crossbeam::channel::bounded(1);
        let listen = addr.to_string();
        let thread = std::thread::Builder::new()
            .name("xbond-metrics".into())
            .spawn(move || {
                // Plain before the server starts its own threads, so that
                // they are born without capabilities too.
                xbond_xdp::privilege::plain_thread();
                let s = match tiny_http::Server::http(&listen) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        let _ = bound_tx.send(Err(anyhow!(
                            "metrics_listen = {listen:?}: cannot listen: {e}"
                        )));
                        return;
                    }
                };
                if bound_tx.send(Ok(s.clone())).is_err() {
                    return;
                }
                for req in s.incoming_requests() {
                    let resp = if req.url() == "/metrics" || req.url().starts_with("/metrics?") {
                        let (tx, rx) = crossbeam::channel::bounded(1);
                        let status = status_tx.send(tx).ok().and_then(|()| {
                            waker.wake();
                            rx.recv_timeout(Duration::from_secs(5)).ok()
                        });
                        match status {
                            Some(st) => tiny_http::Response::from_string(render(&st)).with_header(
                                tiny_http::Header::from_bytes(
                                    "Content-Type",
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .expect("a valid header"),
                            ),
                            None => tiny_http::Response::from_string("the bond did not answer\n")
                                .with_status_code(503),
                        }
                    } else {
                        tiny_http::Response::from_string("xbond: metrics are at /metrics\n")
                            .with_status_code(404)
                    };
                    let _ = req.respond(resp);
                }
            })
            .context("spawning the metrics thread")?;
        let server = bound_rx
            .recv()
            .map_err(|_| anyhow!("metrics_listen = {addr:?}: the metrics thread ended"))??;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
        })
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.server.server_addr().to_ip())
            .finish()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
